"""How rules and safety bounds read a point's value: one meaning of "number" and "same".

A rule comparing ``above 30`` and a safety bound ``max 90`` must agree on what a boolean
or a text is worth, or a rule could fire on a value the guard then judges differently.
"""

from __future__ import annotations

import math

from ldt.reading import Value

__all__ = ["as_number", "same_value", "threshold_text", "written_value"]


def as_number(value: Value) -> float | None:
    """A value as a number (booleans as 0/1); None for text, NaN and infinity."""
    if isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def same_value(a: Value, b: Value) -> bool:
    """Texts match texts exactly; numbers and booleans compare as numbers (True == 1)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return float(a) == float(b)


def threshold_text(x: float) -> str:
    """A threshold as an author wrote it: ``100``, not ``100.0``."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def written_value(value: Value) -> str:
    """A value in a message about writing it: texts quoted, ``true``/``false`` lower-case."""
    return repr(value) if isinstance(value, str) else str(value).lower()
