"""Behind a reverse proxy (issue 14, item 10): ``X-Forwarded-For`` changes the address the
cloud throttles and logs sign-ins by only when it comes from a proxy the operator named
(``--trusted-proxy``); by default it is ignored, so a client cannot pick the address its
failed sign-ins count against."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from ldt.cloud.server import running_cloud

FORM = {"grant_type": "password", "username": "nobody", "password": "wrong password, long"}


async def _refused_address(url: str, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ldt.cloud.access"):
        async with httpx.AsyncClient(base_url=url) as client:
            resp = await client.post(
                "/auth/token", data=FORM, headers={"X-Forwarded-For": "203.0.113.9"}
            )
    assert resp.status_code == 400
    (record,) = [r for r in caplog.records if r.getMessage() == "sign-in refused"]
    return str(record.__dict__["address"])


async def test_forwarded_for_is_believed_only_from_a_named_proxy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_cloud(tmp_path / "a") as cloud:
        assert await _refused_address(cloud.url, caplog) == "127.0.0.1"
    async with running_cloud(tmp_path / "b", trusted_proxies=["127.0.0.1"]) as cloud:
        assert await _refused_address(cloud.url, caplog) == "203.0.113.9"
