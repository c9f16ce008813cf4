"""Edge control: models, rules and commands on the gateway, online or not.

Every reading the devices produce is also handed here (``observe``, never blocking the
acquisition: a full queue drops the oldest evaluation, counted, while the reading itself is
already on its way to the buffer). The consumer task feeds it to the models (their outputs
are buffered as derived readings and evaluated too) and to the rule engine; a firing writes
a device point through the ``Actuator`` (safety bounds, dry run, audit) and may raise or
clear an alert. All of this works without the cloud: rules and models run from the copies
installed on disk (``DATA/control/installed``), verified again with the pinned signing key
at every start.

With an https cloud and a certificate, a second task keeps the control exchange going
(``ControlLink``): it declares the writable points as command attributes, sends command
results, audit lines and alerts, installs newly assigned artifacts (report ``downloaded``,
``verified``, then ``running`` or ``failed`` with the reason; a refused version never
replaces the running one) and executes commands (EXPIRED if their time is up, else the
write's OK or ERROR with the reason).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from ldt.agent.control.actuator import ActuationError, Actuator, DeviceDownError, WritablePoint
from ldt.agent.control.audit import AuditLog
from ldt.agent.control.cloud_link import ControlLink, ControlLinkError
from ldt.agent.control.safety import SafetyGuard, combine
from ldt.agent.identity import Identity, IdentityError
from ldt.agent.inference import Derived, InferenceEngine
from ldt.contract.control import (
    AlertEvent,
    Assignment,
    AuditEvent,
    CommandOrder,
    CommandResult,
    ControlSync,
)
from ldt.contract.rules import PointLimit
from ldt.private_files import write_private
from ldt.reading import Reading, Structured

if TYPE_CHECKING:  # cryptography comes with these: loaded only once artifacts are used
    from ldt.agent.artifacts import ArtifactFetcher
    from ldt.agent.control.rules import Firing, RuleEngine
    from ldt.contract.artifacts import Artifact
    from ldt.contract.rules import RuleSet
    from ldt.models.manifest import ModelManifest

__all__ = ["EdgeControl", "EdgeStats"]

_log = logging.getLogger("ldt.agent.control")

QUEUE_SIZE: Final = 10_000
TICK_S: Final = 1.0
LONG_POLL_S: Final = 20.0
REPORT_EVERY_S: Final = 10.0
"""Audit lines nobody hurried (e.g. refused writes) reach the cloud at least this often."""
AUDIT_BATCH: Final = 500
RETRY_S: Final = 5.0
COMMAND_RETRY_S: Final = 2.0
"""How often a command whose device was unreachable is tried again, within its lifetime: a
TCP connect per device every two seconds, so a device that reboots is written within about
that of accepting connections, and one that stays down sees no storm."""
MAX_WAITING: Final = 1000
"""Commands waiting for their devices at most; more are answered ERROR at once."""

SeriesOf = Callable[[Derived], Awaitable[int]]
"""The buffer series id of a derived reading (created on first use)."""
Store = Callable[[int, Reading], Awaitable[None]]
"""Hands a derived reading to the buffer writer."""


@dataclass
class EdgeStats:
    """What the status view shows of edge control."""

    evaluated: int = 0
    dropped: int = 0
    derived: int = 0
    firings: int = 0
    commands: int = 0
    last_error: str | None = None
    installed: dict[str, int] = field(default_factory=dict)
    """``kind/name`` -> artifact version in service."""


@dataclass
class _Waiting:
    """A command whose device could not be reached yet, tried again until it expires."""

    order: CommandOrder
    target: tuple[str, str]
    reason: str
    next_try: float  # loop time


@dataclass
class _Pending:
    """What the next exchange tells the cloud."""

    results: list[CommandResult] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    declare: bool = True


class EdgeControl:
    """Models, rules, commands and their audit for one gateway."""

    def __init__(
        self,
        *,
        folder: Path,
        points: Mapping[tuple[str, str], WritablePoint],
        entities: Mapping[str, str],
        store: Store,
        series_of: SeriesOf,
        identity: Identity | None = None,
        cloud_url: str | None = None,
        local_limits: Sequence[PointLimit] = (),
    ) -> None:
        """``local_limits``: the gateway's own safety bounds (``[[safety]]``): they hold with
        or without a rule set, and a rule set can only tighten them."""
        self.folder = folder
        self.local_limits = list(local_limits)
        self.entities = dict(entities)
        """device id -> its entity id (command points, alert sources)."""
        self.audit = AuditLog(folder / "audit.sqlite")
        self.actuator = Actuator(points, self.audit, SafetyGuard(self.local_limits))
        self.inference = InferenceEngine()
        self.rules: RuleEngine | None = None
        """Evaluates the installed rule set (None until one is installed)."""
        self.ruleset: RuleSet | None = None
        self.stats = EdgeStats()
        self._store = store
        self._series_of = series_of
        self._identity = identity
        self._cloud_url = cloud_url
        self._queue: asyncio.Queue[Reading] = asyncio.Queue(QUEUE_SIZE)
        self._pending = _Pending()
        self._deferred: list[Firing] = []
        """Firings of a rule-set update (closing alerts of removed rules), sent by the ticker."""
        self._writes = asyncio.Lock()
        self._waiting: dict[str, _Waiting] = {}
        """Commands whose device was down, by id, in arrival order (``COMMAND_RETRY_S``)."""
        self._installing = asyncio.Lock()
        self._news = asyncio.Event()
        """Set when there is something to tell the cloud (a result, an alert, a firing)."""
        self._news.set()  # the command points, at the first exchange

    def status(self) -> dict[str, Any]:
        """What the technician's local API shows: what runs, how fast, what it did."""
        models = {}
        for name, running in self.inference.models.items():
            latency = running.model.latency()
            models[name] = {
                "provenance": running.provenance,
                "artifact_version": running.artifact_version,
                "runs": running.runs,
                "failures": running.failures,
                "p50_ms": round(latency.p50_ms, 4),
                "p95_ms": round(latency.p95_ms, 4),
                "over_budget": latency.over_budget,
            }
        return {
            "installed": dict(self.stats.installed),
            "models": models,
            "rules": self.rules.states() if self.rules is not None else {},
            "readings_evaluated": self.stats.evaluated,
            "evaluations_dropped": self.stats.dropped,
            "derived_readings": self.stats.derived,
            "rule_transitions": self.stats.firings,
            "commands": self.stats.commands,
            "last_error": self.stats.last_error,
        }

    # --- readings -------------------------------------------------------------------------
    def observe(self, reading: Reading) -> None:
        """A reading was handed to the buffer: evaluate it soon (never blocks)."""
        if self._queue.full():
            self._queue.get_nowait()
            self.stats.dropped += 1
        self._queue.put_nowait(reading)

    async def run(self) -> None:
        """Until cancelled: restore what is installed, evaluate, keep the cloud exchange."""
        self._restore()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._consume(), name="edge-evaluate")
                tg.create_task(self._ticker(), name="edge-tick")
                tg.create_task(self._retry_commands(), name="edge-command-retry")
                if self._identity is not None and self._cloud_url:
                    tg.create_task(self._exchange_forever(), name="edge-cloud")
        finally:
            self.inference.close()
            self.audit.close()

    async def _consume(self) -> None:
        while True:
            reading = await self._queue.get()
            try:
                await self._evaluate(reading)
            except Exception as exc:  # noqa: BLE001 - one bad evaluation must not stop control
                self.stats.last_error = repr(exc)
                _log.exception("edge evaluation failed", extra={"device": reading.device_id})

    async def _evaluate(self, reading: Reading) -> None:
        self.stats.evaluated += 1
        for derived in self.inference.observe(reading):
            self.stats.derived += 1
            await self._store(await self._series_of(derived), derived.reading)
            await self._rules_on(derived.reading)
        await self._rules_on(reading)

    async def _rules_on(self, reading: Reading) -> None:
        if self.rules is None:
            return
        firings = self.rules.observe(
            reading.device_id,
            reading.point,
            None if isinstance(reading.value, Structured) else reading.value,
            str(reading.quality),
            reading.observed_at_ms,
            _now_ms(),
        )
        for firing in firings:
            await self._fire(firing)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            deferred, self._deferred = self._deferred, []
            for firing in deferred:
                await self._fire(firing)
            if self.rules is not None:
                for firing in self.rules.tick(_now_ms()):
                    await self._fire(firing)

    async def _fire(self, firing: Firing) -> None:
        """One rule transition: audit, write (or dry-run), alert."""
        self.stats.firings += 1
        rule_id = str(firing.rule_id)
        detail = {"reason": firing.reason, "value": firing.value, "dry_run": firing.dry_run}
        await self.audit.record(f"rule.{firing.transition}", rule_id, detail, at_ms=firing.at_ms)
        action = firing.action
        if action is not None:
            try:
                async with self._writes:
                    await self.actuator.write(
                        action.device,
                        action.point,
                        action.value,
                        origin=f"rule {rule_id}",
                        dry_run=firing.dry_run,
                    )
            except ActuationError:
                pass  # audited and logged by the actuator
        self._save_state()
        self._alert(firing, rule_id)
        self._news.set()

    def _alert(self, firing: Firing, rule_id: str) -> None:
        """Queue the alert a firing raises or clears (named by rule and firing time)."""
        state = firing.alert_state
        if state is None:
            return
        spec = firing.alert
        assert spec is not None  # alert_state is None without one
        self._pending.alerts.append(
            AlertEvent(
                rule_id=rule_id,
                fired_at_ms=firing.fired_at_ms,
                state=state,
                at_ms=firing.at_ms,
                severity=spec.severity,
                category=spec.category,
                sub_category=spec.sub_category,
                description=f"{spec.description} ({firing.reason})"[:1000],
                source_entity=self._source_entity(rule_id),
            )
        )

    def _source_entity(self, rule_id: str) -> str | None:
        rules = self.ruleset.rules if self.ruleset is not None else []
        for rule in rules:
            if rule.id == rule_id:
                return self.entities.get(rule.when.device)
        return None

    # --- artifacts ------------------------------------------------------------------------
    @property
    def _installed_dir(self) -> Path:
        return self.folder / "installed"

    def install(self, artifact: Artifact) -> None:
        """Put a verified artifact in service; ``ArtifactError`` (the reason) if refused.

        The running version stays in service when this raises.
        """
        from ldt.contract.artifacts import ArtifactError

        if artifact.kind == "model":
            self._install_model(artifact)
        elif artifact.kind == "rules":
            self._install_rules(artifact)
        else:
            raise ArtifactError(f"{artifact.kind} artifacts are not run by edge control")
        self.stats.installed[f"{artifact.kind}/{artifact.name}"] = artifact.version

    def _install_model(self, artifact: Artifact) -> None:
        from ldt.contract.artifacts import ArtifactError
        from ldt.models.bundle import read_bundle
        from ldt.models.manifest import ModelError

        try:
            bundle = read_bundle(artifact.content)
        except ModelError as exc:
            raise ArtifactError(str(exc)) from None
        problem = self._model_problem(bundle.manifest, artifact.name)
        if problem is not None:
            raise ArtifactError(problem)
        try:
            self.inference.install(bundle, artifact.version)
        except ModelError as exc:
            raise ArtifactError(str(exc)) from None

    def _model_problem(self, manifest: ModelManifest, published_as: str) -> str | None:
        """Why a model cannot run on this gateway (its points are not here), or None."""
        if manifest.name != published_as:
            return f"the bundle is model {manifest.name}, published as {published_as}"
        known = set(self.actuator.points) | self.inference.outputs()
        for spec in manifest.inputs:
            if (spec.device, spec.point) not in known:
                return f"input {spec.device}/{spec.point} is not a point of this gateway"
        for out in manifest.outputs:
            if out.device not in self.entities:
                return f"output device {out.device} is not on this gateway"
        return None

    def _install_rules(self, artifact: Artifact) -> None:
        from ldt.agent.control.rules import RuleEngine
        from ldt.agent.control.validation import validate_ruleset
        from ldt.contract.artifacts import ArtifactError
        from ldt.contract.rules import RuleError, parse_ruleset

        try:
            ruleset = parse_ruleset(artifact.content)
            validate_ruleset(ruleset, self.actuator.infos(), self.inference.outputs())
        except RuleError as exc:
            raise ArtifactError(str(exc)) from None
        if self.rules is None:
            self.rules = RuleEngine(ruleset)
        else:
            self._deferred.extend(self.rules.replace(ruleset, now_ms=_now_ms()))
        self.ruleset = ruleset
        guard = SafetyGuard(combine(self.local_limits, ruleset.limits))
        guard.restore(self.actuator.guard.snapshot())  # the last hour's changes still count
        self.actuator.guard = guard
        _log.info("rules running", extra={"ruleset": ruleset.name, "rules": len(ruleset.rules)})

    def _keep(self, artifact: Artifact, envelope: Mapping[str, Any]) -> None:
        """Save an installed artifact so it runs after a restart without the cloud."""
        body = {
            "envelope": dict(envelope),
            "content": base64.b64encode(artifact.content).decode("ascii"),
        }
        self._installed_dir.mkdir(parents=True, exist_ok=True)
        path = self._installed_dir / f"{artifact.kind}-{artifact.name}.json"
        write_private(path, orjson.dumps(body))

    @property
    def _state_path(self) -> Path:
        return self.folder / "state.json"

    def _save_state(self) -> None:
        """Keep the rules' states and the writes counted against rate limits across restarts.

        Without it a restart would forget that a pump already switched its three times
        this hour (a crash loop would lift the limit) and that a rule is active (its
        "otherwise" would never be written).
        """
        state = {
            "guard": self.actuator.guard.snapshot(),
            "rules": self.rules.snapshot() if self.rules is not None else None,
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_private(self._state_path, orjson.dumps(state))
        except OSError as exc:
            _log.error("control state not saved", extra={"reason": str(exc)})

    def _restore_state(self) -> None:
        try:
            state = orjson.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            _log.error("control state unreadable; starting afresh", extra={"reason": str(exc)})
            return
        try:
            self.actuator.guard.restore(state.get("guard"))
            if self.rules is not None and state.get("rules") is not None:
                self.rules.restore(state["rules"])
        except (ValueError, AttributeError, TypeError) as exc:
            _log.error("control state refused; starting afresh", extra={"reason": str(exc)})

    def _restore(self) -> None:
        """Install what was running before the restart (rules after the models they watch)."""
        if self._identity is None or not self._installed_dir.is_dir():
            return
        from ldt.contract.artifacts import ArtifactError, verify_artifact

        try:
            key = self._identity.signing_key()
        except IdentityError as exc:
            _log.error("installed artifacts not restored", extra={"reason": str(exc)})
            return
        paths = sorted(self._installed_dir.glob("*.json"), key=lambda p: p.name.startswith("rules"))
        for path in paths:
            try:
                body = orjson.loads(path.read_bytes())
                content = base64.b64decode(str(body["content"]), validate=True)
                artifact = verify_artifact(body["envelope"], content, key)
                self.install(artifact)
            except (OSError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
                _log.error(
                    "installed artifact unreadable", extra={"path": str(path), "reason": repr(exc)}
                )
            except ArtifactError as exc:
                _log.error(
                    "installed artifact refused", extra={"path": str(path), "reason": str(exc)}
                )
        self._restore_state()

    # --- the cloud ------------------------------------------------------------------------
    def command_points(self) -> dict[str, list[str]]:
        """Entity id -> the attributes (writable points) commands may target."""
        out: dict[str, list[str]] = {}
        for (device, _), target in sorted(self.actuator.points.items()):
            entity = self.entities.get(device)
            if entity is not None and getattr(target.point, "writable", False):
                out.setdefault(entity, []).append(str(target.point.attribute_name))
        return out

    async def _exchange_forever(self) -> None:
        """Two loops on one connection pool: a long poll for commands and new assignments,
        and short exchanges that carry results, alerts and audit lines as soon as they exist
        (a long poll in flight cannot carry them, and cancelling it could lose a command
        the cloud already handed out)."""
        from ldt.agent.artifacts import ArtifactFetcher

        assert self._identity is not None
        assert self._cloud_url is not None
        link = ControlLink(self._cloud_url, self._identity)
        fetcher = ArtifactFetcher(self._cloud_url, self._identity)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._keep_exchanging(link, fetcher, long_poll=True))
                tg.create_task(self._keep_exchanging(link, fetcher, long_poll=False))
        finally:
            await link.aclose()

    async def _keep_exchanging(
        self, link: ControlLink, fetcher: ArtifactFetcher, *, long_poll: bool
    ) -> None:
        assert self._identity is not None
        while True:
            if not self._identity.provisioned:
                await asyncio.sleep(RETRY_S)
                continue
            if not long_poll:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REPORT_EVERY_S):
                        await self._news.wait()
                self._news.clear()
            try:
                more = await self.exchange(link, fetcher, long_poll=long_poll)
            except (ControlLinkError, IdentityError) as exc:
                self.stats.last_error = str(exc)
                _log.info("control exchange failed; retrying", extra={"reason": str(exc)})
                await asyncio.sleep(RETRY_S)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug here must not end control
                self.stats.last_error = repr(exc)
                _log.exception("control exchange failed unexpectedly; retrying")
                await asyncio.sleep(RETRY_S)
                continue
            if more:
                self._news.set()

    async def exchange(
        self, link: ControlLink, fetcher: ArtifactFetcher, *, long_poll: bool = False
    ) -> bool:
        """One exchange and what it brings; True if there is more to say right away.

        A ``long_poll`` carries nothing and waits at the cloud for a command; the other
        kind carries what is pending and returns at once.
        """
        unsent: list[tuple[int, AuditEvent]] = []
        if long_poll:
            pending = _Pending(declare=False)
        else:
            pending, self._pending = self._pending, _Pending(declare=False)
            unsent = await self.audit.unsent()
        message = ControlSync(
            command_points=self.command_points() if pending.declare else None,
            results=pending.results,
            audit=[event for _, event in unsent],
            alerts=pending.alerts,
            wait_s=LONG_POLL_S if long_poll else 0,
        )
        try:
            answer = await link.exchange(message)
        except BaseException:
            # nothing was acknowledged: say it all again next time
            self._pending.results[:0] = pending.results
            self._pending.alerts[:0] = pending.alerts
            self._pending.declare = self._pending.declare or pending.declare
            raise
        await self.audit.mark_sent([i for i, _ in unsent])
        async with self._installing:
            await self._apply_assignments(answer.assignments, fetcher)
        for order in answer.commands:
            await self._execute(order)
        return len(unsent) >= AUDIT_BATCH or bool(self._pending.results or self._pending.alerts)

    async def _apply_assignments(
        self, assignments: list[Assignment], fetcher: ArtifactFetcher
    ) -> None:
        from ldt.contract.artifacts import ArtifactError

        # models first: a rule set may watch a model's outputs
        for item in sorted(assignments, key=lambda a: a.kind != "model"):
            key = f"{item.kind}/{item.name}"
            if fetcher.ledger.current(item.kind, item.name) >= item.version:
                continue  # running it already, or refused it already (reported then)
            try:
                artifact = await fetcher.fetch(item.kind, item.name)
            except ArtifactError:
                continue  # refused and reported by the fetcher
            except IdentityError as exc:
                _log.warning("artifact not fetched", extra={"artifact": key, "reason": str(exc)})
                continue
            try:
                self.install(artifact)
            except ArtifactError as exc:
                await fetcher.report(item.kind, item.name, artifact.version, "failed", str(exc))
                await self.audit.record(
                    "artifact.failed", key, {"version": artifact.version, "reason": str(exc)}
                )
                _log.error("artifact not installed", extra={"artifact": key, "reason": str(exc)})
                continue
            if fetcher.last_envelope is not None:
                self._keep(artifact, fetcher.last_envelope)
            await fetcher.report(item.kind, item.name, artifact.version, "running")
            await self.audit.record("artifact.running", key, {"version": artifact.version})

    async def _execute(self, order: CommandOrder) -> None:
        """Run one command and queue its result for the next exchange."""
        self.stats.commands += 1
        await self.audit.record(
            "command.received",
            order.id,
            {"entity": order.entity_id, "attr": order.attr, "value": order.value}
            | ({} if order.by is None else {"by": order.by}),
        )
        target = self._point_of(order.entity_id, order.attr)
        if target is not None:
            self._supersede(target, order.id)
        outcome = await self._command_outcome(order, target)
        if outcome is None:
            return  # its device is down: it waits (``_retry_commands``)
        self._answer(order, *outcome)

    def _answer(
        self, order: CommandOrder, status: Literal["OK", "ERROR", "EXPIRED"], info: str
    ) -> None:
        self._save_state()
        self._pending.results.append(
            CommandResult(id=order.id, status=status, info=info, at_ms=_now_ms())
        )
        self._news.set()

    def _supersede(self, target: tuple[str, str], by: str) -> None:
        """A newer command to a point ends the older ones still waiting for its device:
        written later, an older value would undo the newer one."""
        for key, waiting in list(self._waiting.items()):
            if waiting.target == target:
                del self._waiting[key]
                self._answer(
                    waiting.order,
                    "ERROR",
                    f"superseded by command {by} while waiting: {waiting.reason}",
                )

    async def _command_outcome(
        self, order: CommandOrder, target: tuple[str, str] | None, *, retry: bool = False
    ) -> tuple[Literal["OK", "ERROR", "EXPIRED"], str] | None:
        """The command's result, or None when its device is down and it now waits."""
        left_s = (order.expires_at_ms - _now_ms()) / 1000
        if left_s <= 0:
            return "EXPIRED", "expired before it reached the device"
        if target is None:
            return "ERROR", f"{order.entity_id} has no command {order.attr}"
        try:
            async with self._writes, asyncio.timeout(left_s):
                info = await self.actuator.write(
                    target[0], target[1], order.value, origin=f"command {order.id}", retry=retry
                )
        except DeviceDownError as exc:
            return self._wait(order, target, str(exc), retry=retry)
        except ActuationError as exc:
            return "ERROR", str(exc)
        except TimeoutError:
            waited = self._waiting.get(order.id)
            if waited is not None:
                return "EXPIRED", f"expired while the device was down: {waited.reason}"
            return "EXPIRED", "expired while waiting for an earlier write"
        return "OK", info

    def _wait(
        self, order: CommandOrder, target: tuple[str, str], reason: str, *, retry: bool
    ) -> tuple[Literal["ERROR"], str] | None:
        next_try = asyncio.get_running_loop().time() + COMMAND_RETRY_S
        waiting = self._waiting.get(order.id)
        if retry:
            if waiting is not None:  # else it was superseded meanwhile: never re-queued
                waiting.reason, waiting.next_try = reason, next_try
            return None
        if len(self._waiting) >= MAX_WAITING:
            return "ERROR", f"{reason} (and {MAX_WAITING} commands already wait for devices)"
        self._waiting[order.id] = _Waiting(order, target, reason, next_try)
        return None

    async def _retry_commands(self) -> None:
        """Try waiting commands again every ``COMMAND_RETRY_S`` until written, refused or
        expired; a command is answered EXPIRED with the last reason its device gave."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(COMMAND_RETRY_S / 4)
            for key, waiting in list(self._waiting.items()):
                if self._waiting.get(key) is not waiting:
                    continue  # answered meanwhile (superseded)
                order = waiting.order
                if order.expires_at_ms <= _now_ms():
                    del self._waiting[key]
                    self._answer(
                        order, "EXPIRED", f"expired while the device was down: {waiting.reason}"
                    )
                    continue
                if loop.time() < waiting.next_try:
                    continue
                try:
                    outcome = await self._command_outcome(order, waiting.target, retry=True)
                except Exception as exc:  # noqa: BLE001 - one command must not end control
                    outcome = "ERROR", f"the write failed unexpectedly: {exc!r}"
                    _log.exception("command retry failed", extra={"command": order.id})
                if self._waiting.get(key) is not waiting:
                    continue  # superseded (and answered) while it was being written
                if outcome is not None:
                    del self._waiting[key]
                    self._answer(order, *outcome)

    def _point_of(self, entity_id: str, attr: str) -> tuple[str, str] | None:
        for (device, point), target in self.actuator.points.items():
            if self.entities.get(device) == entity_id and target.point.attribute_name == attr:
                return device, point
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)
