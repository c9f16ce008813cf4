"""Why a server refused the gateway, in a technician's words.

A server that refuses the secure channel (an untrusted certificate, a wrong key, an
expired certificate) answers with a ServiceFault or an ErrorMessage. asyncua 2.1 cannot
decode a ServiceFault in answer to OpenSecureChannel (it fails on an ``assert``, so the
reason read ``AssertionError``), and it drops an ErrorMessage's ``Reason`` text. The
``RefusalTrap`` watches the client's messages while it connects and keeps the last
refusal; ``explain`` turns it, or any status code, into a sentence that names the
status code and what to do about it.

The trap wraps two private methods of asyncua's client (``UaClient._make_protocol`` and
the protocol's ``_process_received_message``) on one client instance only. asyncua is
pinned in ``constraints.txt``, and the tests against node-opcua fail if an upgrade
changes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.ua_binary import nodeid_from_binary, struct_from_binary
from asyncua.ua.uaerrors._base import UaStatusCodeError

from ldt.drivers.opcua.codec import status_name

__all__ = ["ClientIdentity", "RefusalTrap", "explain_status", "thumbprint"]

_SERVICE_FAULT = ObjectIds.ServiceFault_Encoding_DefaultBinary


def thumbprint(der: bytes) -> str:
    """A certificate's OPC UA thumbprint: SHA-1 of its DER, hex (how servers name files)."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """What the gateway presented: its certificate (when secured), policy and user."""

    policy: str = "None"
    mode: str = "None"
    certificate: str | None = None  # the file, for the sentence
    thumbprint: str | None = None
    application_uri: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    username: str | None = None


class RefusalTrap:
    """The last refusal the server sent on one client's connection (or None)."""

    def __init__(self, client: Client) -> None:
        self.status: int | None = None
        self.detail: str | None = None
        self.watching = True
        """Cleared by ``stop`` once connected: the session's messages are not inspected."""
        uaclient = client.uaclient
        make = uaclient._make_protocol

        def make_watched() -> Any:
            protocol = make()
            handle = protocol._process_received_message

            def watched(msg: Any) -> None:
                if self.watching:
                    self._inspect(msg)
                handle(msg)

            setattr(protocol, "_process_received_message", watched)  # noqa: B010
            return protocol

        setattr(uaclient, "_make_protocol", make_watched)  # noqa: B010 - see the docstring

    def stop(self) -> None:
        """Stop looking at messages (the connection is open; refusals are behind us)."""
        self.watching = False

    def _inspect(self, msg: Any) -> None:
        if isinstance(msg, ua.ErrorMessage):
            if msg.Error is not None and msg.Error.is_bad():
                self.status = msg.Error.value
                self.detail = (msg.Reason or "").strip()[:200] or None  # the server's words
            return
        if not isinstance(msg, ua.Message):
            return
        try:
            body = msg.body()  # type: ignore[no-untyped-call]
            type_id = nodeid_from_binary(body.copy())
            if type_id.Identifier != _SERVICE_FAULT or type_id.NamespaceIndex != 0:
                return
            nodeid_from_binary(body)
            header = struct_from_binary(ua.ResponseHeader, body)
        except Exception:  # noqa: BLE001 - not a fault we can read: asyncua handles it
            return
        if header.ServiceResult.is_bad():
            self.status = header.ServiceResult.value
            self.detail = None

    def explain(self, exc: BaseException, who: ClientIdentity) -> str | None:
        """The sentence for a failed connect, when the server refused (else None)."""
        code = exc.code if isinstance(exc, UaStatusCodeError) else None
        if self.status is not None and (code is None or code == self.status):
            return explain_status(self.status, who, self.detail)
        if code is not None:
            return explain_status(code, who, None)
        return None


def _certificate(who: ClientIdentity) -> str:
    if who.certificate is None:
        return "this gateway's certificate"
    return f"this gateway's certificate {who.certificate}"


def _sentence(code: int, who: ClientIdentity) -> str | None:
    cert = _certificate(who)
    s = StatusCodes
    if code in (s.BadSecurityChecksFailed, s.BadCertificateUntrusted):
        if who.thumbprint is None:
            return "the server refused the connection's security checks"
        return (
            f"the server does not trust {cert}; trust {who.thumbprint} on the server "
            "(it is usually in the server's rejected-certificates folder)"
        )
    if code == s.BadCertificateTimeInvalid:
        span = ""
        if who.not_before is not None and who.not_after is not None:
            span = f" (valid {who.not_before:%Y-%m-%d} to {who.not_after:%Y-%m-%d})"
        return f"the server says {cert} is expired or not yet valid{span}; check both clocks"
    if code == s.BadCertificateIssuerTimeInvalid:
        return f"the server says the issuer of {cert} is expired or not yet valid"
    if code == s.BadCertificateUriInvalid:
        return (
            f"the server refused the application URI {who.application_uri} of {cert}; "
            "the certificate's URI and the connection's application_uri must match"
        )
    if code in (s.BadCertificateRevoked, s.BadCertificateIssuerRevoked):
        return f"the server has revoked {cert} or its issuer; issue a new one"
    if code in (s.BadCertificateRevocationUnknown, s.BadCertificateIssuerRevocationUnknown):
        return f"the server cannot check whether {cert} is revoked; give it the issuer's CRL"
    if code in (s.BadCertificateUseNotAllowed, s.BadCertificateIssuerUseNotAllowed):
        return f"the key usage of {cert} does not allow an OPC UA client"
    if code in (s.BadCertificateInvalid, s.BadCertificateChainIncomplete):
        return f"the server cannot accept {cert} (invalid, or its issuer chain is incomplete)"
    if code == s.BadCertificateHostNameInvalid:
        return "the server's certificate does not name the host in the endpoint URL"
    if code in (s.BadSecurityPolicyRejected, s.BadSecurityModeRejected):
        return f"the server does not accept security policy {who.policy} with mode {who.mode}"
    if code in (s.BadIdentityTokenRejected, s.BadIdentityTokenInvalid, s.BadUserAccessDenied):
        user = f"user {who.username!r}" if who.username else "anonymous sessions"
        return f"the server refused {user}; check the username and password_file"
    return None


def explain_status(code: int, who: ClientIdentity, detail: str | None = None) -> str:
    """``BadSecurityChecksFailed: the server does not trust …``; the status name alone for a
    code without advice, with the server's own text when it sent one."""
    name = status_name(code)
    sentence = _sentence(code, who)
    if sentence is None and detail:
        return f"{name}: the server says {detail!r}"
    if sentence is None:
        return name
    return f"{name}: {sentence}"
