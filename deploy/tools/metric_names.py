#!/usr/bin/env python3
"""Every Prometheus metric name that the dashboard, the alert rules and the
docs name, beside the names the code registers.

    python3 deploy/tools/metric_names.py           # print the table
    python3 deploy/tools/metric_names.py --write   # write deploy/metrics.txt
    python3 deploy/tools/metric_names.py --check   # deploy/metrics.txt is current, and every
                                                   # name is registered (exit 1 otherwise)

deploy/metrics.txt is the list a test of the running binaries compares with
a live /metrics. Here the comparison is with the registrations in the source
(src/metrics.rs, whose registry prefixes `sentinel_`,
admin-api/src/metrics.rs and the admin API's AI metrics in
admin-api/src/ai/query/metrics.rs): the dashboard and the alerts may only use
registered names; the docs may also name the ones listed in NOT_EXPORTED,
which is to shrink, not grow. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard  # noqa: E402  (the same query extraction as the promtool check)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy/metrics.txt"

# Files that register metrics, and the prefix their registry adds.
REGISTRIES = [("src/metrics.rs", None), ("src/risk/mod.rs", "sentinel_"), ("admin-api/src/metrics.rs", ""), ("admin-api/src/ai/query/metrics.rs", "")]

# Names the docs may use although the code registers none (to shrink, not
# grow). Empty since the gateway exports the rate limiter's counters (issue 25).
NOT_EXPORTED: set[str] = set()

# `sentinel_…` words in the docs that are not metrics.
NOT_METRICS = {
    "sentinel_api": "the admin API's database role",
    "sentinel_platform": "the admin API's second database role, for platform-wide work",
    "sentinel_owner": "the migration role in docs/deploy.md's examples",
    "sentinel_policy": "the NOTIFY channel of policy changes",
    "sentinel_snapshot": "the NOTIFY channel of new snapshots",
    "sentinel_bench": "a benchmark database",
    "sentinel_scale_deltas": "a benchmark database",
    "sentinel_audit_bench": "a benchmark database (docs/PERFORMANCE.md, audit ingest)",
    "sentinel_test_": "the tests' database name prefix",
    "sentinel_console_": "the console browser tests' database name prefix",
    "sentinel_upgrade": "the default upgrade socket, /tmp/sentinel_upgrade.sock",
}

CONSTRUCTORS = r"(?:Opts|HistogramOpts|IntGauge|IntCounter|Gauge|Counter|Histogram)::new"
KIND = {"Opts": "counter", "HistogramOpts": "histogram", "IntGauge": "gauge", "Gauge": "gauge",
        "IntCounter": "counter", "Counter": "counter", "Histogram": "histogram"}
# A `sentinel_` word that is not part of a Rust path (`sentinel_policy::compile`).
WORD = re.compile(r"\bsentinel_[a-z0-9_]+(?![a-z0-9_]|::)")


def registered() -> dict[str, str]:
    """name -> kind, from the constructors' first string argument."""
    names: dict[str, str] = {}
    for rel, prefix in REGISTRIES:
        text = (ROOT / rel).read_text()
        if prefix is None:
            m = re.search(r'Registry::new_custom\(\s*Some\("([a-z_]+)"', text)
            if not m:
                raise SystemExit(f"{rel}: no `Registry::new_custom(Some(\"…\"))`: where does the prefix come from?")
            prefix = m.group(1) + "_"
        for ctor, name in re.findall(rf"({CONSTRUCTORS})\(\s*\"([a-z0-9_]+)\"", text):
            kind = KIND[ctor.split("::")[0]]
            names[prefix + name] = kind
        # A labelled gauge names its `Opts` inside `IntGaugeVec::new(`/`GaugeVec::new(`.
        for name in re.findall(r"(?:Int)?GaugeVec::new\(\s*Opts::new\(\s*\"([a-z0-9_]+)\"", text):
            names[prefix + name] = "gauge"
    if len(names) < 20:
        raise SystemExit(f"only {len(names)} metric registrations found: has the code's shape changed?")
    return names


def family(name: str, known: dict[str, str]) -> str:
    """A histogram's series (`_bucket`, `_sum`, `_count`) name its family."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and known.get(base) == "histogram":
            return base
    return name


def named() -> dict[str, set[str]]:
    """name -> where it is named."""
    out: dict[str, set[str]] = {}

    def add(name: str, where: str) -> None:
        out.setdefault(name, set()).add(where)

    for path in sorted((ROOT / "deploy/grafana").glob("*.json")):
        for _, expr in dashboard.queries(json.loads(path.read_text())):
            for w in WORD.findall(expr):
                add(w, str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "deploy/prometheus").glob("*.yml")):
        if path.name.endswith(".test.yml"):
            continue
        for expr in rule_exprs(path.read_text()):
            for w in WORD.findall(expr):
                add(w, str(path.relative_to(ROOT)))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for w in WORD.findall(path.read_text()):
            if w not in NOT_METRICS:
                add(w, str(path.relative_to(ROOT)))
    return out


def rule_exprs(text: str) -> list[str]:
    """The `expr:` values of a rules file (one line, or a `|` block below it),
    read without a YAML library so that the script needs none."""
    exprs, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2).strip() in ("|", ">", "|-", ">-"):
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(m.group(1))):
                block.append(lines[i])
                i += 1
            exprs.append("\n".join(block))
        else:
            exprs.append(m.group(2))
    if not exprs:
        raise SystemExit("no `expr:` in a rules file")
    return exprs


def table() -> tuple[str, list[str]]:
    known = registered()
    rows, problems = [], []
    by_family: dict[str, set[str]] = {}
    for name, wheres in named().items():
        by_family.setdefault(family(name, known), set()).update(wheres)
    for name in sorted(by_family):
        wheres = by_family[name]
        if name in known:
            status = "exported"
            if name in NOT_EXPORTED:
                problems.append(f"{name} is exported now: remove it from NOT_EXPORTED in deploy/tools/metric_names.py")
        elif name in NOT_EXPORTED and all(w.endswith(".md") for w in wheres):
            status = "missing"
        else:
            status = "missing"
            problems.append(f"{name} (named in {', '.join(sorted(wheres))}) is registered nowhere in "
                            f"{' or '.join(r for r, _ in REGISTRIES)}")
        rows.append(f"{name}\t{known.get(name, '-')}\t{status}\t{','.join(sorted(wheres))}")
    header = (
        "# Prometheus metric names that deploy/grafana/, deploy/prometheus/ (alert rules),\n"
        "# README.md and docs/*.md name. Written by deploy/tools/metric_names.py --write;\n"
        "# .ci/deploy checks it is current. One line per name:\n"
        "#   name <TAB> kind (counter|gauge|histogram, from the code; - if unregistered)\n"
        "#   <TAB> exported|missing <TAB> where it is named\n"
        "# `missing` names are registered nowhere in the code today (only docs may name them,\n"
        "# and only those listed in NOT_EXPORTED). A histogram's series are name_bucket,\n"
        "# name_sum and name_count. Labelled series appear in /metrics only once used.\n"
    )
    return header + "\n".join(rows) + "\n", problems


def main(argv: list[str]) -> int:
    text, problems = table()
    if argv == ["--write"]:
        OUT.write_text(text)
    elif argv == ["--check"]:
        if not OUT.exists() or OUT.read_text() != text:
            problems.append(f"{OUT.relative_to(ROOT)} is out of date: run deploy/tools/metric_names.py --write")
    elif argv:
        print(__doc__, file=sys.stderr)
        return 2
    else:
        sys.stdout.write(text)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
