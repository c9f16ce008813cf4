"""Where in a document a validation error is, written the way the user wrote the document.

Pydantic reports locations as tuples (``("rules", 2, "when")``); users read
``rules[2].when``. One spelling for every file ldt validates (gateway configs, rule sets,
model manifests), so an error points the same way wherever it comes from.
"""

from __future__ import annotations

__all__ = ["error_location"]


def error_location(loc: tuple[int | str, ...]) -> str:
    """``("rules", 2, "when")`` -> ``rules[2].when``; the empty tuple -> ``(top level)``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"
