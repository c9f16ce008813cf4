"""Does a rule set fit this gateway? Checked before it replaces the running one.

The schema (``ldt.contract.rules``) says a rule set is well formed; only the gateway knows
its devices and points. A signed rule set that names a point the gateway lacks, writes a
read-only one or asks for a value its own limits forbid is refused whole, with the first
problem as the reason reported to the cloud: half a rule set running is worse than the
previous one running.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from ldt.agent.control.safety import bound_breach
from ldt.agent.control.values import written_value
from ldt.contract.rules import Action, PointLimit, Rule, RuleError, RuleSet

__all__ = ["PointInfo", "validate_ruleset"]


@dataclass(frozen=True, slots=True)
class PointInfo:
    """What validation needs to know of one point of one device on this gateway."""

    writable: bool
    numeric: bool
    """Its values are numbers, so ``above``/``below`` and ``min``/``max`` apply."""


def validate_ruleset(
    ruleset: RuleSet,
    points: Mapping[tuple[str, str], PointInfo],
    extra_sources: Set[tuple[str, str]] = frozenset(),
) -> None:
    """Raise ``RuleError`` with the first reason ``ruleset`` cannot run on this gateway.

    ``points`` maps (device id, point name) to what the gateway knows of the point;
    ``extra_sources`` are other (device, point) pairs a condition may read, such as model
    outputs (their type is not known here, so any comparison is allowed). Limits are
    checked first, then the rules in order; disabled rules too, since enabling one must
    not need a new check.
    """
    for limit in ruleset.limits:
        if (limit.device, limit.point) not in points:
            raise RuleError(f"limits: {limit.device}/{limit.point} is not a point on this gateway")
    limits = {(limit.device, limit.point): limit for limit in ruleset.limits}
    for rule in ruleset.rules:
        _check_condition(rule, points, extra_sources)
        for label, action in (("action", rule.then), ("otherwise action", rule.otherwise)):
            if action is not None:
                _check_action(rule, label, action, points, limits)


def _check_condition(
    rule: Rule,
    points: Mapping[tuple[str, str], PointInfo],
    extra_sources: Set[tuple[str, str]],
) -> None:
    cond = rule.when
    source = (cond.device, cond.point)
    where = f"{cond.device}/{cond.point}"
    info = points.get(source)
    if info is None:
        if source in extra_sources:
            return
        raise RuleError(
            f"rule {rule.id}: condition reads {where}, which is neither a point on this "
            "gateway nor a model output"
        )
    if info.numeric:
        if isinstance(cond.equals, str):
            raise RuleError(
                f"rule {rule.id}: condition compares {where}, a numeric point, with the text "
                f"{cond.equals!r}: it would never match"
            )
        return
    comparison = "above" if cond.above is not None else "below" if cond.below is not None else ""
    if comparison:
        raise RuleError(
            f"rule {rule.id}: condition compares {where} with {comparison}, but it is not "
            "a numeric point (use equals)"
        )


def _check_action(
    rule: Rule,
    label: str,
    action: Action,
    points: Mapping[tuple[str, str], PointInfo],
    limits: Mapping[tuple[str, str], PointLimit],
) -> None:
    key = (action.device, action.point)
    where = f"{action.device}/{action.point}"
    info = points.get(key)
    if info is None:
        raise RuleError(
            f"rule {rule.id}: {label} writes to {where}, which is not a point on this gateway"
        )
    if not info.writable:
        raise RuleError(f"rule {rule.id}: {label} writes to {where}, which is read-only")
    value = action.value
    shown = written_value(value)
    if info.numeric and isinstance(value, str):
        raise RuleError(
            f"rule {rule.id}: {label} writes the text {shown} to {where}, a numeric point"
        )
    limit = limits.get(key)
    if limit is None or (limit.min is None and limit.max is None):
        return
    if isinstance(value, str):
        raise RuleError(
            f"rule {rule.id}: {label} writes {shown} to {where}, which has safety bounds "
            "and takes numbers only"
        )
    breach = bound_breach(limit, float(value))
    if breach is not None:
        raise RuleError(f"rule {rule.id}: {label} writes {shown} to {where}, {breach}")
