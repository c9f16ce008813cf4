"""The ``ldt`` command stays light: parsing it loads no protocol stack.

A gateway runs ``ldt agent run``; every protocol library it does not use
costs resident memory on a 1 GB box for ten years (asyncua alone is 38 MiB).
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("asyncua", "aiomqtt", "paho", "bleak", "cryptography", "uvicorn", "starlette")


def test_parsing_the_cli_imports_no_protocol_library() -> None:
    code = (
        "import sys, ldt.cli; ldt.cli._parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
