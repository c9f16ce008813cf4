"""Secrets and data at rest (issue 14, item 9): private files never follow a planted link,
secrets others can read are tightened and logged, the cloud's and the gateway's databases
are created 0600 (their WAL files too), and an unencrypted CA key is warned about."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from ldt.private_files import check_private, write_private


def _mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_a_planted_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    key = tmp_path / "key.pem"
    (tmp_path / "key.pem.tmp").symlink_to(target)  # an attacker's link under the temp name
    write_private(key, b"secret")
    assert target.read_text() == "keep me"
    assert key.read_bytes() == b"secret"
    assert _mode(key) == 0o600
    assert not key.is_symlink()


def test_a_secret_others_can_read_is_tightened_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "token"
    secret.write_text("x")
    secret.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert check_private(secret) is False
    assert _mode(secret) == 0o600
    assert "readable by others" in caplog.text
    link = tmp_path / "link"
    link.symlink_to(secret)
    with pytest.raises(OSError, match="symbolic link"):
        check_private(link)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask, under which files would be 0644 without care."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_the_cloud_database_is_owner_only(tmp_path: Path) -> None:
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        await store.access.add_tenant("t")  # a write: the WAL exists now
        assert _mode(tmp_path / DB_FILENAME) == 0o600
        assert _mode(tmp_path / (DB_FILENAME + "-wal")) == 0o600


def test_the_gateway_buffer_is_owner_only(tmp_path: Path) -> None:
    buffer = Buffer(path=tmp_path / "buffer.db", max_bytes=1 << 20, max_age_s=3600)
    buffer.open()
    try:
        assert _mode(tmp_path / "buffer.db") == 0o600
    finally:
        buffer.close()


def test_an_unencrypted_ca_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    with caplog.at_level(logging.WARNING):
        CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    assert "not encrypted" in caplog.text
    caplog.clear()
    CertificateAuthority.open(tmp_path / "enc", passphrase=b"a passphrase")
    with caplog.at_level(logging.WARNING):
        CertificateAuthority.open(tmp_path / "enc", passphrase=b"a passphrase")
    assert "not encrypted" not in caplog.text
