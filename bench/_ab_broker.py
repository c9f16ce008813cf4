"""Compare ``bench/broker.py --quick`` between another checkout and this one, in one run.

    git worktree add ../ldt-base d49703f && (cd ../ldt-base && ./scripts/bootstrap)
    .venv/bin/python bench/_ab_broker.py --base ../ldt-base --rounds 6

Each round runs the base checkout's bench, then this checkout's, so both see the same
machine state; the table gives each row's median per side, after/before, and the spread
(max/min) of the base's own runs, which is the noise a difference must exceed. Not part
of ``scripts/check`` (the leading underscore): it takes ~3 minutes a round.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _run(checkout: Path) -> dict[tuple[str, str], float]:
    """One quick broker bench in ``checkout`` (with its own venv): row -> requests/s."""
    done = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "bench/broker.py", "--quick"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return parse(done.stdout)


def parse(text: str) -> dict[tuple[str, str], float]:
    """The rates of a ``bench/broker.py`` output, by (engine or ``auth``, row name)."""
    rows: dict[tuple[str, str], float] = {}
    engine = ""
    for line in text.splitlines():
        found = re.match(r"NGSI-LD broker on (\w+)", line)
        if found:
            engine = found.group(1)
        elif line.startswith("Authentication"):
            engine = "auth"
        if not line.startswith("| ") or line.startswith(("| operation", "|--")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rate = cells[2] if engine == "auth" else cells[3]
        try:
            rows[(engine, cells[0])] = float(rate.replace(",", ""))
        except ValueError:
            continue
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    before: list[dict[tuple[str, str], float]] = []
    after: list[dict[tuple[str, str], float]] = []
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds}", file=sys.stderr, flush=True)
        before.append(_run(args.base))
        after.append(_run(HERE))
    rows = [k for k in before[0] if all(k in r for r in before + after)]
    print("| engine | operation | before /s | after /s | after/before | before's spread |")
    print("|---|---|---:|---:|---:|---:|")
    for key in rows:
        if key[1].startswith("raw SQLite"):
            continue
        b = statistics.median(r[key] for r in before)
        a = statistics.median(r[key] for r in after)
        spread = max(r[key] for r in before) / max(min(r[key] for r in before), 1e-9)
        print(f"| {key[0]} | {key[1]} | {b:,.0f} | {a:,.0f} | {a / b:.2f} | {spread:.2f} |")


if __name__ == "__main__":
    main()
