"""Reading back what edge control saved across a restart (rule states, write history).

A snapshot comes from our own file, but the file may be from another release or damaged:
it is validated, and a malformed one is refused with one sentence so the caller starts
without it rather than from a state it misread.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["load_saved"]

_M = TypeVar("_M", bound=BaseModel)


def load_saved(model: type[_M], snapshot: Any, what: str) -> _M:
    """``snapshot`` as ``model``; ``ValueError`` naming ``what`` and the first problem."""
    try:
        return model.model_validate(snapshot)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise ValueError(
            f"the saved {what} is malformed ({where}: {first['msg']}); start without it"
        ) from None
