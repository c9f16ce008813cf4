"""``ldt demo`` as a user runs it: values reach the broker within 10 s of its banner, the printed
sign-in works (the operator commands the relay, the viewer and anonymous callers are refused),
and Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import re
import select
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_demo_shows_every_protocol_within_seconds_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ldt", "demo", "--port", "0", "--data", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        started = time.monotonic()
        url = None
        passwords: dict[str, str] = {}
        while time.monotonic() - started < 30:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                continue
            line = proc.stdout.readline()
            match = re.search(r"broker\) on (https://\S+)", line)
            url = match.group(1) if match else url
            person = re.fullmatch(r"\s+(\w+) \((\w+)\): (\S+)\s*", line)
            if person:
                passwords[person.group(1)] = person.group(3)
            if "Ctrl-C" in line:
                break
        assert url, "the demo never printed its broker URL"
        assert set(passwords) == {"admin", "operator", "viewer"}, passwords
        trust = ssl.create_default_context(cafile=str(tmp_path / "cloud/pki/ca.pem"))
        anonymous = httpx.Client(base_url=url, timeout=2, verify=trust)
        assert anonymous.get("/ngsi-ld/v1/entities", params={"type": "Device"}).status_code == 401

        def token(name: str) -> dict[str, str]:
            form = {"grant_type": "password", "username": name, "password": passwords[name]}
            resp = anonymous.post("/auth/token", data=form)
            assert resp.status_code == 200, resp.text
            return {"Authorization": f"Bearer {resp.json()['access_token']}"}

        api = httpx.Client(base_url=url, timeout=2, verify=trust, headers=token("operator"))
        viewer = token("viewer")
        values: dict[str, object] = {}
        started = time.monotonic()  # the demo has printed how to sign in: it is up
        while time.monotonic() - started < 10 and not values:
            resp = api.get("/ngsi-ld/v1/entities", params={"type": "Device"})
            assert resp.status_code == 200
            for ent in resp.json():
                if "voltage" in ent:
                    values[ent["id"]] = ent["voltage"]["value"]
            time.sleep(0.2)
        assert values, "no meter values in the broker within 10 s of starting the demo"
        assert all(200 < float(v) < 260 for v in values.values())  # type: ignore[arg-type]
        # one device per protocol that needs no radio (and BLE through its seam)
        wanted = {
            "urn:ngsi-ld:PumpingStation:gw-demo:station-1": "pump1Speed",  # OPC UA
            "urn:ngsi-ld:AirQualityObserved:gw-demo:air-1": "temperature",  # MQTT UL
            "urn:ngsi-ld:Device:gw-demo:th-1": "temperature",  # Modbus RTU
            "urn:ngsi-ld:Device:gw-demo:tag-1": "temperature",  # BLE
        }
        missing = dict(wanted)
        while missing and time.monotonic() - started < 20:
            for entity_id, attr in list(missing.items()):
                resp = api.get(f"/ngsi-ld/v1/entities/{entity_id}")
                if resp.status_code == 200 and attr in resp.json():
                    del missing[entity_id]
            time.sleep(0.3)
        assert not missing, f"no values within 20 s for {sorted(missing)}"
        # edge control: a command through the NGSI-LD API, the model's forecasts
        relay = "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:gw-demo:relay-1"
        command = {"value": True}
        assert anonymous.patch(f"{relay}/attrs/relay2", json=command).status_code == 401
        refused = anonymous.patch(f"{relay}/attrs/relay2", json=command, headers=viewer)
        assert refused.status_code == 403
        assert api.patch(f"{relay}/attrs/relay2", json=command).status_code == 204
        status = None
        while status != "OK" and time.monotonic() - started < 30:
            status = api.get(relay).json().get("relay2_status", {}).get("value")
            time.sleep(0.3)
        assert status == "OK", f"command status {status}"
        sent = api.get("/ldt/v1/commands").json()
        assert [c["issued_by"] for c in sent if c["attr"] == "relay2"] == ["user:operator"]
        # the gateway's own audit line names the operator too (sent back with an exchange)
        admin = token("admin")
        received: list[dict[str, object]] = []
        while not received and time.monotonic() - started < 40:
            lines = anonymous.get("/ldt/v1/audit", headers=admin).json()
            received = [
                e for e in lines if e["origin"] == "gateway" and e["action"] == "command.received"
            ]
            time.sleep(0.3)
        assert received, "no gateway audit line for the command"
        assert received[0]["detail"]["by"] == "user:operator"  # type: ignore[index]
        forecast: dict[str, object] = {}
        while not forecast and time.monotonic() - started < 40:
            meter = api.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:gw-demo:dev-1").json()
            forecast = meter.get("activePowerForecast", {})
            time.sleep(0.5)
        assert forecast, "no forecast within 40 s"
        assert forecast["provenance"] == {
            "type": "Property",
            "value": "model meter-forecast 1.0.0",
            "observedAt": forecast["observedAt"],
        }
        api.close()
        anonymous.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped cleanly" in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
