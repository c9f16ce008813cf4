"""Summarise a Robot Framework ``output.xml`` from ETSI's NGSI-LD conformance suite.

``scripts/conformance`` runs the suite and then this tool. It prints Markdown: a per-area pass
table (the areas issue 4 sets targets for), the failing cases grouped by reason, and the failing
cases themselves with their failure message. Reasons are derived from what the broker answered,
which Robot keeps in output.xml (RequestsLibrary logs every request and response): the first
request a case made to an endpoint the broker does not route says "endpoint not implemented",
which is what tells us which endpoint unlocks the most cases. Otherwise the reason is the
failure message with ids and numbers normalised, so that equal failures group together.

Usage: python tools/conformance_report.py OUTPUT_XML [--suite-commit C] [--wall-time S]
       [--no-cases] [--top N]
Only the standard library is used: it runs under the project's venv, not the suite's.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AREAS", "Case", "Response", "area_of", "endpoint_template", "main", "parse", "reason"]

# Area -> suite folders under TP/NGSI-LD (keep in sync with scripts/conformance).
AREAS: dict[str, tuple[str, ...]] = {
    "provision": (
        "ContextInformation/Provision/BatchEntities",
        "ContextInformation/Provision/Entities",
        "ContextInformation/Provision/EntityAttributes",
        "ContextInformation/Provision/PurgeEntities",
    ),
    "consumption": (
        "ContextInformation/Consumption/Entity",
        "ContextInformation/Consumption/Discovery",
    ),
    "subscription": ("ContextInformation/Subscription",),
    "temporal": (
        "ContextInformation/Provision/TemporalEntity",
        "ContextInformation/Provision/TemporalEntityAttributes",
        "ContextInformation/Consumption/TemporalEntity",
    ),
    "jsonldContexts": ("jsonldContext",),
    "common": ("CommonBehaviours",),
}

_API_ROOT = "/ngsi-ld/v1"
_RESPONSE = re.compile(
    r"^(?P<method>[A-Z]+) Response : url=(?P<url>\S+)\s*\n\s*status=(?P<status>\d+)"
    r".*?\bbody=(?P<body>.*)$",
    re.DOTALL,
)
_STATUS_MISMATCH = re.compile(r"expected, actual\) ->: (\d{3}) != (\d{3})")
# Path segments kept as they are; any other segment is an identifier named after its parent.
_LITERAL = frozenset(
    {
        "entities", "temporal", "attrs", "subscriptions", "csourceRegistrations",
        "csourceSubscriptions", "types", "attributes", "jsonldContexts", "entityOperations",
        "create", "upsert", "update", "delete", "merge", "query", "purge", "info",
    }
)  # fmt: skip
_PLACEHOLDER = {
    "entities": "{entityId}",
    "attrs": "{attrId}",
    "{attrId}": "{instanceId}",
    "subscriptions": "{subscriptionId}",
    "csourceRegistrations": "{registrationId}",
    "csourceSubscriptions": "{subscriptionId}",
    "types": "{type}",
    "attributes": "{attrId}",
    "jsonldContexts": "{contextId}",
}
_NOISE = (
    (re.compile(r"urn:ngsi-ld:[^\s'\"]+"), "URN"),
    (re.compile(r"https?://127\.0\.0\.1:\d+"), "BROKER"),
    (re.compile(r"\b\d+(\.\d+)?\b"), "N"),
)


@dataclass(frozen=True, slots=True)
class Response:
    """One response RequestsLibrary logged: what the broker answered to which request."""

    method: str
    path: str
    status: int
    body: str

    @property
    def not_routed(self) -> bool:
        """True for the broker's router-level answers (no such endpoint or method)."""
        return (self.status == 405 and "is not supported on" in self.body) or (
            self.status == 404 and "no resource at" in self.body
        )


@dataclass(slots=True)
class Case:
    """A test case: its id and name, the suite file it came from, outcome and responses."""

    test_id: str
    name: str
    source: str
    status: str = "NOT RUN"
    message: str = ""
    responses: list[Response] = field(default_factory=list)
    setup_responses: list[Response] = field(default_factory=list)


def area_of(source: str) -> str:
    """The area a suite file belongs to, from its path under ``TP/NGSI-LD/``."""
    _, sep, rel = source.replace("\\", "/").partition("TP/NGSI-LD/")
    if not sep:
        return "other"
    for area, folders in AREAS.items():
        if any(rel == f or rel.startswith(f + "/") for f in folders):
            return area
    return "other"


def endpoint_template(url: str) -> str:
    """A request URL as an endpoint: ids become placeholders, the query string goes.

    ``http://h:p/ngsi-ld/v1/entities/urn:x/attrs/a?q=1`` -> ``/entities/{entityId}/attrs/{attrId}``.
    """
    path = url.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if path.startswith(_API_ROOT):
        path = path[len(_API_ROOT) :]
    out: list[str] = []
    for seg in (s for s in path.split("/") if s):
        if seg in _LITERAL:
            out.append(seg)
        else:
            out.append(_PLACEHOLDER.get(out[-1] if out else "", "{id}"))
    return "/" + "/".join(out)


def _normalise(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "(no message)"
    for pattern, repl in _NOISE:
        first = pattern.sub(repl, first)
    return first[:140]


def reason(case: Case) -> str:
    """Why a failed case failed, phrased so that equal causes group together."""
    message = case.message
    responses = case.responses
    if message.startswith(("Parent suite setup failed", "Suite setup failed")):
        responses = case.setup_responses + responses
    for resp in responses:
        if resp.not_routed:
            return f"endpoint not implemented: {resp.method} {endpoint_template(resp.path)}"
    if "timeout" in message.lower() and "exceeded" in message.lower():
        return "test timed out"
    if "ConnectionError" in message or "Connection refused" in message:
        return "broker unreachable"
    if m := _STATUS_MISMATCH.search(message):
        expected, actual = m.groups()
        culprit = next((r for r in reversed(responses) if str(r.status) == actual), None)
        where = f" on {culprit.method} {endpoint_template(culprit.path)}" if culprit else ""
        return f"wrong status: expected {expected}, got {actual}{where}"
    if "KeyError" in message and "response_body" in message:
        return "response lacks an expected member (term compaction / @context)"
    return _normalise(message)


def _response(text: str) -> Response | None:
    m = _RESPONSE.match(text)
    if m is None:
        return None
    return Response(
        method=m["method"], path=m["url"], status=int(m["status"]), body=m["body"].strip()
    )


def parse(path: Path) -> list[Case]:
    """Every test case in ``output.xml``, streamed (a full run's file is tens of megabytes)."""
    cases: list[Case] = []
    sources: list[str] = []
    setups: list[list[Response]] = []
    current: Case | None = None
    depth_in_test = 0
    # output.xml is written by our own robot run on this machine, not untrusted input
    for event, elem in ET.iterparse(path, events=("start", "end")):  # noqa: S314
        tag = elem.tag
        if event == "start":
            if tag == "suite":
                sources.append(elem.get("source", sources[-1] if sources else ""))
                setups.append([])
            elif tag == "test":
                current = Case(
                    test_id=elem.get("id", ""),
                    name=elem.get("name", ""),
                    source=sources[-1] if sources else "",
                    setup_responses=[r for s in setups for r in s],
                )
                depth_in_test = 0
            elif current is not None and tag == "kw":
                depth_in_test += 1
            continue
        if tag == "msg":
            resp = _response(elem.text or "")
            if resp is not None:
                if current is not None:
                    current.responses.append(resp)
                elif setups:
                    setups[-1].append(resp)
        elif tag == "kw" and current is not None:
            depth_in_test -= 1
        elif tag == "status" and current is not None and depth_in_test == 0:
            current.status = elem.get("status", "NOT RUN")
            current.message = elem.text or ""
        elif tag == "test" and current is not None:
            cases.append(current)
            current = None
            elem.clear()
        elif tag == "suite":
            sources.pop()
            setups.pop()
            elem.clear()
        elif tag in ("kw", "msg"):
            elem.clear()
    return cases


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def render(
    cases: list[Case],
    *,
    suite_commit: str | None,
    wall_time_s: int | None,
    with_cases: bool,
    top: int,
) -> str:
    """The Markdown summary."""
    lines: list[str] = ["# NGSI-LD conformance summary", ""]
    facts = []
    if suite_commit:
        facts.append(f"suite commit `{suite_commit}`")
    if wall_time_s is not None:
        facts.append(f"robot wall time {wall_time_s // 60} min {wall_time_s % 60} s")
    if facts:
        lines += [", ".join(facts), ""]
    order = [*AREAS, "other"]
    by_area: dict[str, list[Case]] = {a: [] for a in order}
    for case in cases:
        by_area[area_of(case.source)].append(case)
    lines += [
        "| area | cases run | passed | failed | skipped | pass % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = Counter[str]()
    for area in order:
        group = by_area[area]
        if not group:
            continue
        st = Counter(case.status for case in group)
        run = len(group) - st["NOT RUN"]
        totals.update(st)
        totals["run"] += run
        lines.append(
            f"| {area} | {run} | {st['PASS']} | {st['FAIL']} | {st['SKIP']} "
            f"| {_pct(st['PASS'], run)} |"
        )
    lines.append(
        f"| **all** | {totals['run']} | {totals['PASS']} | {totals['FAIL']} | {totals['SKIP']} "
        f"| {_pct(totals['PASS'], totals['run'])} |"
    )
    # A pass that only ever met the router's 404 (which reads like ResourceNotFound) proves
    # nothing about the endpoint it tested: count those so the pass rate is not over-read.
    hollow = [
        c
        for c in cases
        if c.status == "PASS" and c.responses and all(r.not_routed for r in c.responses)
    ]
    if hollow:
        lines += [
            "",
            f"{len(hollow)} of the passes only met unrouted endpoints (the router's 404 reads "
            "like ResourceNotFound): " + ", ".join(f"`{c.name.split()[0]}`" for c in hollow),
        ]
    failed = [c for c in cases if c.status == "FAIL"]
    reasons = {id(c): reason(c) for c in failed}
    counts = Counter(reasons.values())
    areas_of_reason: dict[str, Counter[str]] = {}
    for c in failed:
        areas_of_reason.setdefault(reasons[id(c)], Counter())[area_of(c.source)] += 1
    lines += ["", f"## Failing cases by reason ({len(failed)} cases, {len(counts)} reasons)", ""]
    lines += ["| cases | reason | areas |", "|---:|---|---|"]
    for text, n in counts.most_common(top if top > 0 else None):
        spread = ", ".join(f"{a} {k}" for a, k in areas_of_reason[text].most_common())
        lines.append(f"| {n} | {text.replace('|', '/')} | {spread} |")
    if top > 0 and len(counts) > top:
        rest = sum(n for _, n in counts.most_common()[top:])
        lines.append(f"| {rest} | ({len(counts) - top} other reasons) | |")
    if with_cases:
        lines += ["", "## Failing cases", ""]
        for area in order:
            group = [c for c in by_area[area] if c.status == "FAIL"]
            if not group:
                continue
            lines += [f"### {area} ({len(group)})", ""]
            for c in group:
                msg = " ".join(c.message.split())[:200] or "(no message)"
                lines.append(f"- `{c.name}` ({Path(c.source).name}): {reasons[id(c)]}; `{msg}`")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the summary of one output.xml; exit 1 if it cannot be read."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("output_xml", type=Path)
    parser.add_argument("--suite-commit")
    parser.add_argument("--wall-time", type=int, help="the run's wall time in seconds")
    parser.add_argument("--no-cases", action="store_true", help="omit the per-case list")
    parser.add_argument("--top", type=int, default=25, help="reasons listed (0: all)")
    args = parser.parse_args(argv)
    try:
        cases = parse(args.output_xml)
    except (OSError, ET.ParseError) as exc:
        print(f"conformance_report: cannot read {args.output_xml}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(
        render(
            cases,
            suite_commit=args.suite_commit,
            wall_time_s=args.wall_time,
            with_cases=not args.no_cases,
            top=args.top,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
