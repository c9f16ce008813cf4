"""Alerts raised by a gateway's rules, kept as FIWARE Smart Data Models ``Alert`` entities.

Written through the NGSI-LD write path (``Notifier.write_entities``), so a subscription on
type ``Alert`` notifies people the moment the gateway reports it. The entity id names the
gateway (from its certificate, never from the message), the rule and the firing, so a
gateway can raise and clear only its own alerts, and a report sent twice changes nothing.

Attributes (https://github.com/smart-data-models/dataModel.Alert): ``category``,
``subCategory``, ``severity``, ``description``, ``dateIssued``, ``validFrom``, ``validTo``
(set when the rule clears), ``alertSource`` (the device's entity) and ``alertStatus``
(``raised``/``cleared``, ours: lets a subscription ask for open alerts only).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ldt.cloud.ngsild import entity_ops as ops
from ldt.cloud.ngsild.notifier import Notifier
from ldt.cloud.ngsild.timestamps import iso_ms
from ldt.contract.control import AlertEvent

__all__ = ["AlertService", "alert_id"]

_log = logging.getLogger("ldt.cloud.alerts")


def alert_id(gateway_id: str, rule_id: str, fired_at_ms: int) -> str:
    """The Alert entity of one firing of one rule on one gateway."""
    return f"urn:ngsi-ld:Alert:{gateway_id}:{rule_id}:{fired_at_ms}"


def _prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _date(ms: int) -> dict[str, Any]:
    return _prop({"@type": "DateTime", "@value": iso_ms(ms)})


class AlertService:
    """Turns gateways' alert events into ``Alert`` entities."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def apply(self, gateway_id: str, event: AlertEvent) -> str:
        """Create (raised) or close (cleared) the alert; its entity id."""
        entity_id = alert_id(gateway_id, event.rule_id, event.fired_at_ms)
        now = iso_ms(int(time.time() * 1000))
        fragment: dict[str, Any] = {"id": entity_id, "type": "Alert"}
        if event.state == "raised":
            fragment |= {
                "category": _prop(event.category),
                "severity": _prop(event.severity),
                "description": _prop(event.description or f"rule {event.rule_id} fired"),
                "dateIssued": _date(event.at_ms),
                "validFrom": _date(event.fired_at_ms),
                "alertStatus": _prop("raised"),
                "rule": _prop(event.rule_id),
                "gateway": _prop(gateway_id),
            }
            if event.sub_category:
                fragment["subCategory"] = _prop(event.sub_category)
            if event.source_entity:
                fragment["alertSource"] = {"type": "Relationship", "object": event.source_entity}
        else:
            fragment |= {"validTo": _date(event.at_ms), "alertStatus": _prop("cleared")}
        results = await self.notifier.write_entities(
            [(entity_id, ops.upsert(fragment, now, replace=False))]
        )
        for outcome in results:
            if not isinstance(outcome, str):
                _log.warning("alert not stored", extra={"alert": entity_id, "reason": str(outcome)})
        _log.info("alert %s", event.state, extra={"alert": entity_id, "severity": event.severity})
        return entity_id
