"""``ldt demo`` as a user runs it: values reach the broker within 10 s, Ctrl-C stops it cleanly."""

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
        while url is None and time.monotonic() - started < 30:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                match = re.search(r"broker\) on (https://\S+)", line)
                url = match.group(1) if match else None
        assert url, "the demo never printed its broker URL"
        api = httpx.Client(
            base_url=url,
            timeout=2,
            verify=ssl.create_default_context(cafile=str(tmp_path / "cloud/pki/ca.pem")),
        )
        values: dict[str, object] = {}
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
        assert api.patch(f"{relay}/attrs/relay2", json={"value": True}).status_code == 204
        status = None
        while status != "OK" and time.monotonic() - started < 30:
            status = api.get(relay).json().get("relay2_status", {}).get("value")
            time.sleep(0.3)
        assert status == "OK", f"command status {status}"
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
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped cleanly" in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
