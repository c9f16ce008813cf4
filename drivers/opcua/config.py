"""The OPC UA part of a device profile and of a device instance's connection.

A point names its variable either by NodeId string (``ns=2;s=Pump1.Speed``,
``i=2258``) or by browse path from the Root folder
(``/Objects/2:PumpingStation/2:Pump1/2:Speed``; a segment without ``N:`` is in
namespace 0). Browse paths survive servers that renumber their numeric
NodeIds; the driver resolves them once per session.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

__all__ = [
    "BrowseSegment",
    "OpcUaConnection",
    "OpcUaPoint",
    "OpcUaProfileSettings",
    "PointMode",
    "SecurityMode",
    "SecurityPolicy",
    "parse_browse_path",
    "parse_node_ref",
]

_Unit = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,3}$")]
_Attr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]

_NODEID = re.compile(
    r"^(?:ns=(\d{1,5});)?(?:i=\d{1,10}|s=.+|g=[0-9A-Fa-f-]{36}|b=[A-Za-z0-9+/=]+)$"
)
_SEGMENT = re.compile(r"^(?:(\d{1,5}):)?(.+)$")

BrowseSegment = tuple[int, str]
"""One browse path step: (namespace index, browse name)."""


def parse_browse_path(path: str) -> list[BrowseSegment]:
    """``/Objects/2:PumpingStation/2:Speed`` -> ``[(0, "Objects"), (2, "PumpingStation"), ...]``.

    Raises ``ValueError`` for a path that does not start with ``/`` or has an empty step.
    """
    if not path.startswith("/") or path == "/":
        raise ValueError(f"browse path {path!r} must start with '/' and name at least one node")
    out: list[BrowseSegment] = []
    for part in path[1:].split("/"):
        match = _SEGMENT.match(part)
        if not part or match is None:
            raise ValueError(f"browse path {path!r} has an empty step")
        out.append((int(match.group(1) or 0), match.group(2)))
    return out


def parse_node_ref(ref: str) -> str | list[BrowseSegment]:
    """A point's ``node``: the NodeId string as is, or the parsed browse path.

    Raises ``ValueError`` when it is neither.
    """
    if ref.startswith("/"):
        return parse_browse_path(ref)
    if _NODEID.match(ref) is None:
        raise ValueError(
            f"node {ref!r} is neither a NodeId string (ns=2;s=Name, i=85) "
            "nor a browse path (/Objects/2:Name)"
        )
    return ref


class PointMode(StrEnum):
    """How a point's value reaches the driver."""

    SUBSCRIBE = "subscribe"  # a monitored item: the server pushes changes
    POLL = "poll"  # the agent reads it on its poll schedule


class SecurityPolicy(StrEnum):
    """OPC UA security policies the driver offers (others are deprecated or rare)."""

    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"


class SecurityMode(StrEnum):
    """Message security mode of the secure channel."""

    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class OpcUaPoint(BaseModel):
    """One variable of the device: which node, and how its value is fetched.

    ``deadband`` is an absolute DataChangeFilter deadband (in the variable's
    unit): the server reports a change only when it exceeds it. It applies to
    subscribed numeric variables only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Attr
    attribute: _Attr | None = None
    """NGSI-LD attribute name; defaults to ``name``."""
    node: Annotated[str, StringConstraints(min_length=3, max_length=1024)]
    mode: PointMode = PointMode.SUBSCRIBE
    sampling_interval_ms: Annotated[float, Field(ge=0, le=3_600_000)] | None = None
    """``None``: the profile's ``[opcua] sampling_interval_ms``."""
    deadband: Annotated[float, Field(ge=0)] | None = None
    unit: _Unit | None = None
    poll_interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    writable: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaPoint:
        parse_node_ref(self.node)
        if self.deadband is not None and self.mode is not PointMode.SUBSCRIBE:
            raise ValueError("'deadband' applies only to points with mode = 'subscribe'")
        return self

    @property
    def attribute_name(self) -> str:
        """The NGSI-LD attribute this point becomes."""
        return self.attribute or self.name


class OpcUaProfileSettings(BaseModel):
    """The ``[opcua]`` table of a profile: subscription defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publishing_interval_ms: Annotated[float, Field(ge=10, le=3_600_000)] = 500.0
    """How often the server sends a subscription's queued changes."""
    sampling_interval_ms: Annotated[float, Field(ge=0, le=3_600_000)] = 250.0
    """How often the server samples a monitored variable (0: as fast as it can)."""
    keepalive_count: Annotated[int, Field(ge=1, le=1000)] = 10
    """Publishing intervals without changes after which the server sends a keepalive."""
    queue_size: Annotated[int, Field(ge=1, le=1000)] = 10
    """Changes the server queues per monitored item between publishes (oldest dropped)."""


class OpcUaConnection(BaseModel):
    """How to reach one OPC UA server (one device instance).

    With a security policy other than ``None`` the client presents
    ``client_certificate`` (DER or PEM) signed with ``client_private_key``
    (PEM); ``server_certificate`` pins the server's certificate (the session is
    refused if the server presents another). The password comes from
    ``password`` or, better, from ``password_file`` (first line; keep it out of
    the config).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["opcua"] = "opcua"
    endpoint: Annotated[str, StringConstraints(pattern=r"^opc\.tcp://[^/\s:]+(:\d{1,5})?(/\S*)?$")]
    security_policy: SecurityPolicy = SecurityPolicy.NONE
    security_mode: SecurityMode = SecurityMode.NONE
    client_certificate: Path | None = None
    client_private_key: Path | None = None
    server_certificate: Path | None = None
    username: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    application_uri: str | None = None
    """``None``: the URI in the client certificate's subjectAltName, else ``urn:ldt:gateway``."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Deadline of each request; connecting may take two of these."""
    watchdog_interval_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    """How often the session is probed; a dead session is noticed within about twice this."""

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaConnection:
        secure = self.security_policy is not SecurityPolicy.NONE
        if secure != (self.security_mode is not SecurityMode.NONE):
            raise ValueError(
                "security_policy and security_mode go together: both 'None', "
                "or a policy with mode 'Sign' or 'SignAndEncrypt'"
            )
        if secure and (self.client_certificate is None or self.client_private_key is None):
            raise ValueError("a secure connection needs client_certificate and client_private_key")
        if not secure and self.server_certificate is not None:
            raise ValueError("server_certificate pinning needs a security policy other than 'None'")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        return self
