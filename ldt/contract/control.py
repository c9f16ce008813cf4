"""The control exchange: what a gateway and the cloud tell each other besides readings.

One request carries everything the gateway has to say, and its answer everything the cloud
has for it (``POST /ldt/v1/control/sync``, mutual TLS)::

    gateway -> {"v": 1, "command_points": {"urn:...:relay-1": ["switch"]},
                "results": [{"id": "...", "status": "OK", "info": "written", "at_ms": ...}],
                "audit": [{"at_ms": ..., "action": "rule.fire", "subject": "pump-on",
                           "detail": {...}}],
                "alerts": [{"rule_id": "pump-on", "fired_at_ms": ..., "state": "raised", ...}],
                "wait_s": 20}
    cloud   -> {"assignments": [{"kind": "model", "name": "meter-forecast", "version": 4}],
                "commands": [{"id": "...", "entity_id": "urn:...", "attr": "switch",
                              "value": true, "expires_at_ms": ...}]}

The cloud holds the answer up to ``wait_s`` seconds while it has no command for the gateway
(a long poll), so a command reaches a gateway within a round trip without the gateway
keeping a second connection open. ``command_points`` declares the writable points the
gateway executes commands for: an NGSI-LD update of any other attribute stays data.
Results and audit events are sent until the cloud has answered once (at least once; the
cloud ignores a result for a command already settled).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "COMMAND_STATUSES",
    "CONTROL_SYNC_PATH",
    "AlertEvent",
    "Assignment",
    "AuditEvent",
    "CommandOrder",
    "CommandResult",
    "ControlAnswer",
    "ControlSync",
]

CONTROL_SYNC_PATH = "/ldt/v1/control/sync"
COMMAND_STATUSES = ("PENDING", "DELIVERED", "OK", "ERROR", "EXPIRED")
"""A command's life, as FIWARE IoT Agents report it (``DELIVERED``: handed to the gateway)."""

_Text = Annotated[str, StringConstraints(max_length=1000)]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_Attr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
_Urn = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+:\S+$")]
CommandValue = bool | int | float | str


class CommandResult(BaseModel):
    """How one command ended on the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Name
    status: Literal["OK", "ERROR", "EXPIRED"]
    info: _Text | None = None
    at_ms: int


class AuditEvent(BaseModel):
    """One line of the gateway's audit log: a rule firing, a command, an artifact change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_ms: int
    action: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    subject: _Name
    detail: dict[str, Any] = Field(default_factory=dict)


class AlertEvent(BaseModel):
    """A rule raised or cleared an alert; the cloud keeps it as a Smart Data Models ``Alert``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_id: _Name
    fired_at_ms: int
    """When the rule fired: with the rule id, names the alert (a clear finds its raise)."""
    state: Literal["raised", "cleared"]
    at_ms: int
    severity: Literal["informational", "low", "medium", "high", "critical"] = "medium"
    category: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "environment"
    sub_category: Annotated[str, StringConstraints(max_length=64)] | None = None
    description: _Text = ""
    source_entity: _Urn | None = None
    """The entity of the device whose reading fired the rule."""


class ControlSync(BaseModel):
    """The gateway's side of one exchange."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1, 2] = 2
    """2: the gateway accepts ``CommandOrder.by``. Upgrade the cloud before its gateways: a
    cloud that knows only 1 refuses 2."""
    command_points: dict[_Urn, list[_Attr]] | None = None
    """Sent when it changes (and at start); None: unchanged since the last exchange."""
    results: Annotated[list[CommandResult], Field(max_length=1000)] = Field(default_factory=list)
    audit: Annotated[list[AuditEvent], Field(max_length=1000)] = Field(default_factory=list)
    alerts: Annotated[list[AlertEvent], Field(max_length=1000)] = Field(default_factory=list)
    wait_s: Annotated[float, Field(ge=0, le=30)] = 0


class Assignment(BaseModel):
    """An artifact this gateway should run, at its newest version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["config", "model", "rules"]
    name: _Name
    version: int


class CommandOrder(BaseModel):
    """A command for the gateway to execute before ``expires_at_ms``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Name
    entity_id: _Urn
    attr: _Attr
    value: CommandValue
    expires_at_ms: int
    by: _Name | None = None
    """Who sent it (``user:alice``), for the gateway's audit log. Sent only to gateways
    speaking ``v: 2``: an agent of ``v: 1`` refuses fields it does not know."""


class ControlAnswer(BaseModel):
    """The cloud's side of one exchange."""

    model_config = ConfigDict(extra="forbid")

    assignments: list[Assignment] = Field(default_factory=list)
    commands: list[CommandOrder] = Field(default_factory=list)
