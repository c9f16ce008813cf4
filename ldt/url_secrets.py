"""URLs with credentials in them, made fit to show.

A PostgreSQL URL in the ready line, a notification endpoint in a log line or in what a
client reads back: each may carry a password (or, for MQTT, an access token as the user
name), and none of them may print it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact"]


def redact(url: str, *, keep_lone_user: bool = True) -> str:
    """``url`` with any password replaced by ``***`` (for logs, the ready line, and what a
    client reads back). ``keep_lone_user=False`` hides a user name that comes without a
    password too: MQTT brokers take an access token there."""
    parts = urlsplit(url)
    if parts.username is None or (parts.password is None and keep_lone_user):
        return url
    userinfo = "***@" if parts.password is None else f"{parts.username}:***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=userinfo + host))
