#!/usr/bin/env python3
"""Writes deploy/grafana/sentinel.json, the Grafana dashboard over the
gateways' and the admin API's Prometheus metrics, and checks it.

    python3 deploy/tools/dashboard.py                  # (re)write the JSON
    python3 deploy/tools/dashboard.py --check          # the JSON is what this script writes
    python3 deploy/tools/dashboard.py --rules-file F   # every query of the JSON as a
                                                       # recording rule, for `promtool check rules`
    python3 deploy/tools/dashboard.py --queries        # every query of the JSON: where<TAB>PromQL

The dashboard is written from the tables below rather than edited in
Grafana's UI, so that every query is reviewable text and every metric it
names is checked against the code (deploy/tools/metric_names.py). To change
it: edit this file, run it, commit both. Import the JSON in any Grafana 10+
(a data-source variable picks the Prometheus), or let the compose stack
provision it. Standard library only.

No rows for audit and risk yet: neither exports metrics today.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy/grafana/sentinel.json"

DS = {"type": "prometheus", "uid": "${datasource}"}
G = 'job="$gateway_job", instance=~"$instance"'
GR = G + ', route=~"$route"'
A = 'job="$admin_job"'
RI = "$__rate_interval"


def q(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legend": legend}


def stat(title: str, unit: str, expr: str, description: str, thresholds=None) -> dict:
    return {"kind": "stat", "title": title, "unit": unit, "targets": [q(expr)],
            "description": description, "thresholds": thresholds}


def ts(title: str, unit: str, targets: list[dict], description: str, stack: bool = False,
       bars: bool = False) -> dict:
    return {"kind": "timeseries", "title": title, "unit": unit, "targets": targets,
            "description": description, "stack": stack, "bars": bars}


def quantiles(metric: str, sel: str, by: str = "") -> list[dict]:
    by_le = f"{by}, le" if by else "le"
    return [
        q(f"histogram_quantile({p}, sum by ({by_le}) (rate({metric}_bucket{{{sel}}}[{RI}])))",
          f"p{int(p * 100)}" + (f" {{{{{by}}}}}" if by else ""))
        for p in (0.5, 0.9, 0.99)
    ]


RED = [{"color": "green", "value": None}, {"color": "red", "value": 1}]

# (row title, panels per line, panels)
ROWS: list[tuple[str, int, list[dict]]] = [
    ("Overview", 8, [
        stat("Gateways up", "none", f'sum(up{{job="$gateway_job"}})',
             "Gateway targets Prometheus scraped successfully."),
        stat("Requests/s", "reqps", f"sum(rate(sentinel_requests_total{{{G}}}[{RI}]))",
             "Every request the selected gateways answered."),
        stat("Denied", "percentunit",
             f'sum(rate(sentinel_requests_total{{{G}, outcome="denied"}}[{RI}])) / '
             f"sum(rate(sentinel_requests_total{{{G}}}[{RI}]))",
             "Share of requests refused with a 4xx (authentication, authorization, limits, bad input)."),
        stat("Errors", "percentunit",
             f'sum(rate(sentinel_requests_total{{{G}, code=~"UPSTREAM_UNAVAILABLE|UPSTREAM_TIMEOUT|UPSTREAM_5XX|POLICY_UNAVAILABLE|INTERNAL_ERROR"}}[{RI}])) / '
             f"sum(rate(sentinel_requests_total{{{G}}}[{RI}]))",
             "Share of requests that ended in a 5xx: the gateway's own (502, 503, 504, 500) or the upstream's (UPSTREAM_5XX)."),
        stat("p99 latency", "s",
             f"histogram_quantile(0.99, sum by (le) (rate(sentinel_request_duration_seconds_bucket{{{G}}}[{RI}])))",
             "Request to response end, upstream included."),
        stat("Oldest snapshot version", "none", f"min(sentinel_snapshot_version{{{G}}})",
             "The lowest policy version any selected gateway enforces."),
        stat("Stale gateways", "none", f"sum(sentinel_snapshot_stale{{{G}}})",
             "Gateways whose snapshot the admin API has not confirmed within max_age.", RED),
        stat("Admin API up", "none", f"sum(up{{{A}}})",
             "Admin API replicas Prometheus scraped successfully."),
    ]),
    ("Requests and decisions", 2, [
        ts("Requests by outcome", "reqps",
           [q(f"sum by (outcome) (rate(sentinel_requests_total{{{GR}}}[{RI}]))", "{{outcome}}")],
           "allowed (forwarded, whatever the upstream answered), denied (4xx from the gateway), error (5xx from the gateway).",
           stack=True),
        ts("Denials and errors by code", "reqps",
           [q(f'sum by (code) (rate(sentinel_requests_total{{{GR}, code!="OK"}}[{RI}]))', "{{code}}")],
           "The SPEC error codes the gateway answered, and UPSTREAM_5XX for upstream 5xx answers."),
        ts("Authorization decisions", "reqps",
           [q(f"sum by (decision, reason) (rate(sentinel_decisions_total{{{GR}}}[{RI}]))",
              "{{decision}} {{reason}}")],
           "Decisions of the policy evaluator by decision and reason (deny reasons say why)."),
        ts("Requests by route (top 10)", "reqps",
           [q(f"topk(10, sum by (route) (rate(sentinel_requests_total{{{GR}}}[{RI}])))", "{{route}}")],
           "Busiest routes; requests that matched no route are route=\"none\"."),
    ]),
    ("Latency", 2, [
        ts("Request duration", "s", quantiles("sentinel_request_duration_seconds", GR),
           "Request to response end through the gateway, upstream included."),
        ts("p99 by route", "s",
           [q(f"histogram_quantile(0.99, sum by (route, le) (rate(sentinel_request_duration_seconds_bucket{{{GR}}}[{RI}])))",
              "{{route}}")],
           "The slowest routes are usually the slowest upstreams."),
    ]),
    ("Upstreams", 2, [
        ts("Upstream failures", "ops",
           [q(f"sum by (upstream, kind) (rate(sentinel_upstream_errors_total{{{G}}}[{RI}]))",
              "{{upstream}} {{kind}}")],
           "Exchanges the gateway could not complete: UPSTREAM_UNAVAILABLE (refused, reset), UPSTREAM_TIMEOUT."),
        ts("Upstream 5xx answers by route", "reqps",
           [q(f'sum by (route) (rate(sentinel_requests_total{{{GR}, code="UPSTREAM_5XX"}}[{RI}]))', "{{route}}")],
           "Requests the upstream itself answered with a 5xx."),
    ]),
    ("Rate limits", 3, [
        ts("Checks by limit and outcome", "ops",
           [q(f"sum by (limit, outcome) (rate(sentinel_rate_limit_checks_total{{{G}}}[{RI}]))",
              "{{limit}} {{outcome}}")],
           "Each check is counted once, under the tightest limit."),
        ts("Checks by what decided", "ops",
           [q(f"sum by (source) (rate(sentinel_rate_limit_checks_total{{{G}}}[{RI}]))", "{{source}}")],
           "local, cluster (Redis), fast_path (known over limit, Redis not asked); fallback and fail_closed mean Redis was unreachable.",
           stack=True),
        ts("429 by route", "reqps",
           [q(f'sum by (route) (rate(sentinel_requests_total{{{GR}, code="RATE_LIMITED"}}[{RI}]))', "{{route}}")],
           "Requests refused with 429 RATE_LIMITED."),
        ts("Redis (cluster mode)", "none",
           [q(f"sentinel_rate_limit_redis_up{{{G}}}", "{{instance}} up"),
            q(f"sum by (instance) (rate(sentinel_rate_limit_redis_errors_total{{{G}}}[{RI}]))",
              "{{instance}} errors/s")],
           "1 while the gateway's last Redis call succeeded; failed or late Redis calls per second. Gateways in local mode have no series."),
        ts("Subjects in gateway memory", "none",
           [q(f"sentinel_rate_limit_local_keys{{{G}}}", "{{instance}}")],
           "Local limits (or the fail-open fallback): one entry per active (limit, subject), about 36 bytes each."),
    ]),
    ("Policy snapshots (gateways)", 3, [
        ts("Version", "none",
           [q(f"sentinel_snapshot_version{{{G}}}", "{{instance}}"),
            q(f"max(sentinel_admin_snapshot_version{{{A}}})", "admin API (latest)")],
           "Version each gateway enforces, beside the latest the admin API published."),
        ts("Since last confirmed current", "s",
           [q(f"sentinel_snapshot_check_age_seconds{{{G}}}", "{{instance}}")],
           "Seconds since the admin API last answered 200/304 for the snapshot in force; past max_age the snapshot is stale."),
        ts("Stale", "none", [q(f"sentinel_snapshot_stale{{{G}}}", "{{instance}}")],
           "1 while the snapshot is past max_age."),
        ts("Age", "s",
           [q(f"sentinel_snapshot_age_seconds{{{G}}}", "swapped in {{instance}}"),
            q(f"sentinel_snapshot_publication_age_seconds{{{G}}}", "published {{instance}}")],
           "Since the snapshot in force was swapped in, and since it was published (large is normal when nothing changes)."),
        ts("Apply time", "s", quantiles("sentinel_snapshot_apply_seconds", G),
           "Verifying a fetched bundle and compiling its changed parts, before the swap."),
        ts("Fetches by outcome", "ops",
           [q(f"sum by (outcome) (rate(sentinel_snapshot_fetches_total{{{G}}}[{RI}]))", "{{outcome}}")],
           "Long polls of the admin API: updated, not_modified, unavailable, error, rejected.", stack=True),
        ts("Rejected snapshots", "none",
           [q(f"sum by (reason) (increase(sentinel_snapshot_rejected_total{{{G}}}[{RI}]))", "{{reason}}")],
           "Bundles or policy files refused whole, by reason; any is worth a look.", bars=True),
        ts("Parts compiled", "none",
           [q(f"sum by (kind) (increase(sentinel_snapshot_parts_compiled_total{{{G}}}[{RI}]))", "{{kind}}")],
           "Parts compiled from fetched bundles: a one-tenant change compiles one shard.", bars=True),
        ts("Last bundle size", "bytes",
           [q(f"sentinel_snapshot_bundle_bytes{{{G}}}", "{{instance}}")],
           "Size of the last bundle swapped in (a delta carries only the changed parts)."),
        ts("Config reloads", "none",
           [q(f"sum by (outcome) (increase(sentinel_config_reloads_total{{{G}}}[{RI}]))", "{{outcome}}")],
           "sentinel.toml and route-file reloads: applied or rejected (the log says why).", bars=True),
    ]),
    ("Field security", 2, [
        ts("Unfilterable upstream answers", "none",
           [q(f"sum by (route, reason) (increase(sentinel_field_filter_failures_total{{{GR}}}[{RI}]))",
              "{{route}} {{reason}}")],
           "Bound-route answers refused with 502 because they could not be filtered.", bars=True),
        ts("Writes with forbidden fields", "none",
           [q(f"sum by (route, outcome) (increase(sentinel_field_writes_total{{{GR}}}[{RI}]))",
              "{{route}} {{outcome}}")],
           "denied: refused with 403 FIELD_WRITE_DENIED; dropped: the fields were removed (on_write_denied = \"drop\").",
           bars=True),
    ]),
    ("Admin API", 3, [
        ts("Requests by status", "reqps",
           [q(f"sum by (status) (rate(sentinel_admin_requests_total{{{A}}}[{RI}]))", "{{status}}")],
           "Every admin API request by HTTP status.", stack=True),
        ts("p99 by route", "s",
           [q(f"histogram_quantile(0.99, sum by (route, le) (rate(sentinel_admin_request_seconds_bucket{{{A}}}[{RI}])))",
              "{{route}}")],
           "Login is argon2-bound (tens of ms) by design."),
        ts("Snapshot version", "none",
           [q(f"sentinel_admin_snapshot_version{{{A}}}", "{{instance}}")],
           "Latest version each replica knows; replicas should agree within seconds."),
        ts("Publications", "none",
           [q(f"sum by (instance) (increase(sentinel_admin_snapshot_publish_total{{{A}}}[{RI}]))", "published {{instance}}"),
            q(f"sum by (reason) (increase(sentinel_admin_snapshot_publish_failures_total{{{A}}}[{RI}]))", "failed: {{reason}}")],
           "Versions published, and failures (compile: the policy does not compile; error: database or signing).",
           bars=True),
        ts("Compile and sign time (p99)", "s",
           [q(f"histogram_quantile(0.99, sum by (le) (rate(sentinel_admin_snapshot_compile_seconds_bucket{{{A}}}[{RI}])))", "compile"),
            q(f"histogram_quantile(0.99, sum by (le) (rate(sentinel_admin_snapshot_sign_seconds_bucket{{{A}}}[{RI}])))", "sign")],
           "Compile: the parts a publication rebuilt. Sign: hash and sign the manifest."),
        ts("Bytes added per publication", "bytes",
           [q(f"sentinel_admin_snapshot_payload_bytes{{{A}}}", "{{instance}}")],
           "The manifest plus the new parts of the last publication."),
    ]),
]


def variable(name: str, label: str, query: str, default: str | None, multi: bool) -> dict:
    v = {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
        "refresh": 2, "sort": 1, "hide": 0, "multi": multi, "includeAll": multi,
    }
    if multi:
        v["allValue"] = ".*"
        v["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    elif default:
        v["current"] = {"selected": True, "text": default, "value": default}
    return v


def panel(p: dict, pid: int, x: int, y: int, w: int) -> dict:
    targets = [
        {"refId": chr(ord("A") + i), "datasource": DS, "expr": t["expr"],
         "legendFormat": t["legend"] or "__auto", "range": True, "editorMode": "code"}
        for i, t in enumerate(p["targets"])
    ]
    out = {"id": pid, "type": p["kind"], "title": p["title"], "description": p["description"],
           "datasource": DS, "targets": targets}
    if p["kind"] == "stat":
        out["gridPos"] = {"h": 4, "w": w, "x": x, "y": y}
        steps = p["thresholds"] or [{"color": "green", "value": None}]
        out["fieldConfig"] = {"defaults": {"unit": p["unit"], "thresholds": {"mode": "absolute", "steps": steps},
                                           "color": {"mode": "thresholds"}}, "overrides": []}
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                          "orientation": "auto", "textMode": "auto"}
    else:
        out["gridPos"] = {"h": 8, "w": w, "x": x, "y": y}
        custom = {"drawStyle": "bars" if p["bars"] else "line", "lineWidth": 1,
                  "fillOpacity": 80 if p["bars"] else (20 if p["stack"] else 10),
                  "showPoints": "never", "spanNulls": False,
                  "stacking": {"mode": "normal" if p["stack"] else "none", "group": "A"}}
        out["fieldConfig"] = {"defaults": {"unit": p["unit"], "custom": custom, "min": 0,
                                           "color": {"mode": "palette-classic"}}, "overrides": []}
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                          "tooltip": {"mode": "multi", "sort": "desc"}}
    return out


def build() -> dict:
    panels, pid, y = [], 1, 0
    for title, per_line, items in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        w = 24 // per_line
        for i, p in enumerate(items):
            if i and i % per_line == 0:
                y += 4 if p["kind"] == "stat" else 8
            panels.append(panel(p, pid, (i % per_line) * w, y, w))
            pid += 1
        y += 4 if items[-1]["kind"] == "stat" else 8
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": "Sentinel gateways and admin API (generated by deploy/tools/dashboard.py; docs/deploy.md).",
        "editable": True,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["sentinel"],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "hide": 0, "refresh": 1, "current": {}},
            variable("gateway_job", "Gateway job", "label_values(sentinel_snapshot_version, job)",
                     "sentinel-gateway", False),
            variable("admin_job", "Admin API job", "label_values(sentinel_admin_snapshot_version, job)",
                     "sentinel-admin", False),
            variable("instance", "Gateway", 'label_values(sentinel_snapshot_version{job="$gateway_job"}, instance)',
                     None, True),
            variable("route", "Route", 'label_values(sentinel_requests_total{job="$gateway_job"}, route)',
                     None, True),
        ]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "Sentinel",
        "uid": "sentinel-overview",
        "version": 1,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


# ---------------------------------------------------------------- queries of the JSON

SUBSTITUTE = {"$__rate_interval": "5m", "$__range": "1h", "$gateway_job": "sentinel-gateway",
              "$admin_job": "sentinel-admin", "$instance": ".*", "$route": ".*"}


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of a
    dashboard JSON, Grafana variables replaced by plausible values;
    `label_values(SELECTOR, label)` yields its selector."""
    found = []

    def walk(panels: list[dict]) -> None:
        for p in panels:
            for t in p.get("targets", []):
                found.append((f"panel `{p.get('title')}` {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard.get("panels", []))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            text = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
            found.append((f"variable `{v['name']}`", m.group(1) if m else text))
    out = []
    for where, expr in found:
        for k, val in sorted(SUBSTITUTE.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(k, val)
        if "$" in expr:
            raise SystemExit(f"{where}: unknown Grafana variable in `{expr}`")
        out.append((where, expr))
    return out


def rules_file(path: Path) -> None:
    dashboard = json.loads(OUT.read_text())
    lines = ["# Generated by deploy/tools/dashboard.py --rules-file: the dashboard's queries,", "groups:",
             "  - name: dashboard-queries", "    rules:"]
    for i, (where, expr) in enumerate(queries(dashboard)):
        lines.append(f"      - record: dashboard:query_{i}")
        lines.append(f"        expr: {json.dumps(expr)}   # {where}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if not OUT.exists() or OUT.read_text() != render():
            print(f"{OUT.relative_to(ROOT)} is not what deploy/tools/dashboard.py writes: run it and commit",
                  file=sys.stderr)
            return 1
        return 0
    if len(argv) == 2 and argv[0] == "--rules-file":
        rules_file(Path(argv[1]))
        return 0
    if argv == ["--queries"]:
        for where, expr in queries(json.loads(OUT.read_text())):
            print(f"{where}\t{' '.join(expr.split())}")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
