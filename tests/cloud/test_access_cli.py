"""``ldt cloud users|clients|tenants`` as an admin runs them: one line per failure, secrets
printed once and never listed. The CLI's ``main`` runs in-process (a process per command
cost 16 s of CI time); ``tests/cloud/test_cli.py`` covers the installed entry point."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ldt.cli import main


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def ldt(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    def run(data: Path, *args: str, stdin: str | None = None) -> Ran:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = main(["cloud", *args, "--data", str(data)])
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def test_users_clients_and_tenants_from_the_command_line(
    tmp_path: Path, ldt: Callable[..., Ran]
) -> None:
    _ldt = ldt
    added = _ldt(tmp_path, "users", "add", "ada", "--role", "admin", "--tenant", "*")
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    assert len(password) >= 20
    given = _ldt(
        tmp_path, "users", "add", "otto", "--role", "viewer", "--group", "water",
        "--password-stdin", stdin="a chosen password, long\n",
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    assert "password" not in given.stdout  # nothing generated, nothing printed
    again = _ldt(tmp_path, "users", "add", "otto", "--role", "viewer")
    assert again.returncode == 1
    assert again.stderr.strip() == "ldt cloud: user 'otto' exists"
    short = _ldt(tmp_path, "users", "add", "eve", "--role", "viewer", "--password-stdin",
                 stdin="short\n")  # fmt: skip
    assert short.returncode == 1
    assert "at least 12 characters" in short.stderr
    bad_role = _ldt(tmp_path, "users", "add", "eve", "--role", "root")
    assert bad_role.returncode == 1
    assert "no role 'root'" in bad_role.stderr
    assert "Traceback" not in bad_role.stderr
    missing = _ldt(tmp_path, "users", "grant", "otto", "--role", "operator", "--tenant", "water")
    assert missing.returncode == 1
    assert "ldt cloud tenants add water" in missing.stderr
    assert _ldt(tmp_path, "tenants", "add", "water").returncode == 0
    assert _ldt(tmp_path, "tenants", "list").stdout.split() == ["water"]
    scoped = _ldt(
        tmp_path, "users", "grant", "water", "--group", "--role", "operator",
        "--tenant", "water", "--type", "PumpingStation",
    )  # fmt: skip
    assert scoped.returncode == 0, scoped.stderr
    assert "group:water: operator@water types=PumpingStation" in scoped.stdout
    assert _ldt(tmp_path, "users", "disable", "otto").returncode == 0
    listed = _ldt(tmp_path, "users", "list").stdout
    assert "otto\tdisabled\twater\tviewer@(default)" in listed
    assert password not in listed
    assert "argon2" not in listed
    client = _ldt(tmp_path, "clients", "add", "grafana", "--role", "viewer")
    assert client.returncode == 0, client.stderr
    assert "client_secret (shown once): " in client.stdout
    token = _ldt(tmp_path, "clients", "token", "grafana")
    assert token.stdout.startswith("token (shown once): ldt_st_")
    token_id = token.stdout.strip().splitlines()[-1].split(": ", 1)[1].split()[0]
    assert _ldt(tmp_path, "clients", "revoke-token", token_id).returncode == 0
    assert _ldt(tmp_path, "clients", "revoke-token", token_id).returncode == 1
    assert _ldt(tmp_path, "tenants", "remove", "water").returncode == 0
    assert _ldt(tmp_path, "tenants", "list").stdout.split() == []
