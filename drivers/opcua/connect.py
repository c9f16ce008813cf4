"""Opening an asyncua client's session, with every failure told as one sentence.

The device (on each reconnect) and ``ldt opcua browse`` connect the same way: apply the
connection's security, watch for the server's refusal, connect, and turn whatever
asyncua raised into a ``DriverError`` a technician can act on. asyncua's logs are
silenced here too, since each failure is reported once, as the reason.
"""

from __future__ import annotations

import logging

from asyncua.client.client import Client
from asyncua.ua.uaerrors._base import UaStatusCodeError

from ldt.drivers.errors import DriverError
from ldt.drivers.opcua.codec import status_name
from ldt.drivers.opcua.config import OpcUaConnection
from ldt.drivers.opcua.refusals import RefusalTrap
from ldt.drivers.opcua.security import apply_security

__all__ = ["connect", "describe_error", "quiet_asyncua_logging"]


def quiet_asyncua_logging() -> None:
    """Silence asyncua's logs unless the operator configured its logger.

    asyncua logs a traceback for every dropped connection, a warning per clamped
    session timeout and, at CRITICAL, each error message a server sends; the driver
    reports the same facts as reading reasons and health. Setting the ``asyncua``
    logger's level (to anything) before the device starts keeps asyncua's own logs.
    """
    logger = logging.getLogger("asyncua")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL + 1)


def describe_error(exc: BaseException) -> str:
    """A technician's sentence for an exception from asyncua or the socket."""
    if isinstance(exc, UaStatusCodeError):
        return status_name(exc.code)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc)
    if text == "Server certificate mismatch":
        return "the server's certificate is not the pinned server_certificate"
    return text or type(exc).__name__


async def connect(client: Client, conn: OpcUaConnection) -> None:
    """Apply ``conn``'s security to ``client`` and open its session (no auto-reconnect).

    Raises ``DriverError`` for unusable local files and for every refusal or failure,
    with the sentence (``BadSecurityChecksFailed: the server does not trust …``).
    ``TimeoutError`` and cancellation pass through: the caller owns the deadline.
    """
    quiet_asyncua_logging()
    who = await apply_security(client, conn)
    trap = RefusalTrap(client)
    try:
        await client.connect(auto_reconnect=False)
    except (TimeoutError, DriverError):
        raise
    except Exception as exc:  # asyncua raises many types; each becomes a sentence
        raise DriverError(trap.explain(exc, who) or describe_error(exc)) from exc
    trap.stop()
