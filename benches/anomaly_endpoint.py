#!/usr/bin/env python3
"""Anomaly scoring measured THROUGH A RUNNING GATEWAY: generated traffic
(models/anomaly/traffic.py) replayed as HTTP requests through the proxy,
counting 401 STEP_UP_REQUIRED / 403 RISK_BLOCKED per attack scenario and the
share of normal requests stepped up (docs/PERFORMANCE.md, "Risk signals").

    python3 benches/anomaly_endpoint.py                      # tenant T01 of --seed 7, dev build
    python3 benches/anomaly_endpoint.py --tenants T01,T02 --profile release
    python3 benches/anomaly_endpoint.py --traffic /tmp/traffic.csv --rules

It starts `sentinel run` on free loopback ports with: one route per traffic
route (sensitivity as in the traffic, `risk = { step_up_above = 0.85,
block_above = 0.95 }`), a policy with the traffic's tenants and principals
(admin routes allowed only to principals the traffic shows allowed there), an
HS256 issuer whose tokens this script signs, `trusted_proxies = 127.0.0.1`
(the row's client goes in `X-Forwarded-For`), the committed model (or none
with --rules), and `[risk] replay_clock = true`, which makes the gateway
keep anomaly state at the row's time (`sentinel-replay-time`): a 21-day
replay in minutes. Failed logins are requests with a bad token from the
row's client. A normal principal stepped up gets an MFA token for the next
8 h of traffic time (as the in-process replay assumes). Differences from the
in-process replay (benches/anomaly_eval.py): biometric scores of the traffic
are not replayed (no telemetry is posted), failed logins that name a
principal count only for the address, and only the chosen tenants' rows are
replayed. Standard library only.
"""

import argparse
import base64
import collections
import csv
import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "anomaly"))
import traffic as gen  # noqa: E402  (the generator's route table)

NS = uuid.UUID("5e7e1a1e-0000-4000-8000-000000000000")
SECRET = "bench-anomaly-endpoint-hs256-secret-0123456789"
MFA_SECONDS = 8 * 3600


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(sub, tid, mfa):
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iss": "bench", "aud": "sentinel", "sub": sub, "tid": tid, "iat": now,
              "nbf": now - 5, "exp": now + 86400, "jti": str(uuid.uuid4()), "mfa": mfa}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


def uid(name):
    return str(uuid.uuid5(NS, name))


def route_of(key):
    """`/vessels/{id}:PUT` → (path, method, resource type)."""
    path = key.split(":")[0]
    method = gen.ROUTES[key][0]
    rtype = "_".join(p for p in path.strip("/").split("/") if not p.startswith("{")) or "root"
    return path, method, rtype


def key_of(row):
    """The generator's route key of a traffic row (`/voyages` + POST → `/voyages:POST`)."""
    r = row["route"]
    return r if r in gen.ROUTES and gen.ROUTES[r][0] == row["method"] else r + ":" + row["method"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_config(work, rows, model):
    tenants = sorted({r["tenant"] for r in rows if r["tenant"]})
    principals = {}
    allowed_admin = collections.defaultdict(set)
    for r in rows:
        if r["kind"] == "request" and r["principal"]:
            principals[r["principal"]] = (r["tenant"], r["service_account"] == "1")
            if gen.ROUTES[key_of(r)][3] and r["status"] == "200":
                allowed_admin[r["principal"]].add(route_of(key_of(r))[2])
    types = sorted({route_of(k)[2] for k in gen.ROUTES})
    admin_types = sorted({route_of(k)[2] for k, v in gen.ROUTES.items() if v[3]})
    pol = []
    for t in tenants:
        pol.append(f'[[tenants]]\nid = "{uid(t)}"\ncode = "{t}"\nname = "Tenant {t}"\n')
    for t in types:
        pol.append(f'[[permissions]]\nid = "bench-{t}"\nresource_type = "{t}"\n'
                   f'actions = ["read", "create", "update", "delete"]\n')
    user_types = [t for t in types if t not in admin_types]
    pol.append('[[roles]]\nid = "bench-user"\nname = "bench-user"\npermissions = [%s]\n'
               % ", ".join(f'"bench-{t}"' for t in user_types))
    for t in admin_types:
        pol.append(f'[[roles]]\nid = "bench-admin-{t}"\nname = "bench-admin-{t}"\n'
                   f'permissions = ["bench-{t}"]\n')
    for p, (t, sa) in sorted(principals.items()):
        roles = ["bench-user"] + [f"bench-admin-{a}" for a in sorted(allowed_admin[p])]
        pol.append(f'[[principals]]\nid = "{uid(p)}"\ntenant = "{uid(t)}"\nname = "{p}"\n'
                   f'roles = [{", ".join(chr(34) + x + chr(34) for x in roles)}]\n'
                   + ("service_account = true\n" if sa else ""))
    os.makedirs(os.path.join(work, "policy"))
    os.makedirs(os.path.join(work, "routes"))
    os.makedirs(os.path.join(work, "keys"))
    with open(os.path.join(work, "policy", "bench.toml"), "w") as f:
        f.write("\n".join(pol))
    rts = []
    seen = set()
    for k, (method, sens, has_id, _) in gen.ROUTES.items():
        path, method, rtype = route_of(k)
        rid = (path.strip("/").replace("/", "-").replace("{", "").replace("}", "")
               + "-" + method.lower())
        if rid in seen:
            continue
        seen.add(rid)
        resource = f"{rtype}:{{id}}" if has_id else rtype
        rts.append(f'[[routes]]\nid = "{rid}"\npath = "{path}"\nmethods = ["{method}"]\n'
                   f'upstream = "msw"\nauth = "any"\nresource = "{resource}"\n'
                   f'sensitivity = "{sens}"\n'
                   f'risk = {{ step_up_above = 0.85, block_above = 0.95 }}\n')
    with open(os.path.join(work, "routes", "bench.toml"), "w") as f:
        f.write("\n".join(rts))
    for name in ("demo-issuer.jwks.json", "gateway-assertion.pem"):
        with open(os.path.join(ROOT, "config", "keys", name)) as src, \
                open(os.path.join(work, "keys", name), "w") as dst:
            dst.write(src.read())
    proxy, ops = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    text = open(os.path.join(ROOT, "config", "sentinel.toml")).read()
    text = (text.replace("127.0.0.1:8080", proxy).replace("127.0.0.1:9090", ops)
            .replace("127.0.0.1:7101", ops).replace("trusted_proxies = []",
                                                     'trusted_proxies = ["127.0.0.1/32"]'))
    text += ('\n[[issuers]]\nissuer = "bench"\naudiences = ["sentinel"]\nalgorithms = ["HS256"]\n'
             'hmac_secret_env = "BENCH_HS256"\n\n[risk]\nreplay_clock = true\n')
    if model:
        text += f'model = "{model}"\n'
    with open(os.path.join(work, "sentinel.toml"), "w") as f:
        f.write(text)
    return proxy, ops


def start(work, binary, ops):
    env = dict(os.environ, BENCH_HS256=SECRET, SENTINEL_LOG="warn")
    log = open(os.path.join(work, "gateway.log"), "w")
    proc = subprocess.Popen([binary, "run", "--config", os.path.join(work, "sentinel.toml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)
    host, port = ops.split(":")
    for _ in range(300):
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit("gateway did not become ready: " + open(os.path.join(work, "gateway.log")).read())


def replay(rows, proxy):
    host, port = proxy.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    tokens, mfa_tokens, mfa_until = {}, {}, {}
    results = []
    counts = collections.Counter()
    t0 = time.time()
    for n, r in enumerate(rows):
        ts = int(r["ts"])
        headers = {"x-forwarded-for": r["client"], "sentinel-replay-time": str(ts)}
        if r["kind"] == "auth_failure":
            method, path = "GET", "/dashboard"
            headers["authorization"] = "Bearer not.a.token"
        else:
            p = r["principal"]
            path, method, _ = route_of(key_of(r))
            if "{id}" in path:
                path = path.replace("{id}", urllib.parse.quote(r["resource"] or "x", safe=""))
            if mfa_until.get(p, 0) > ts:
                tok, minted = mfa_tokens.get(p, (None, 0))
                if tok is None or time.time() - minted > 600:
                    tok = jwt(uid(p), uid(r["tenant"]), True)
                    mfa_tokens[p] = (tok, time.time())
            else:
                if p not in tokens:
                    tokens[p] = jwt(uid(p), uid(r["tenant"]), False)
                tok = tokens[p]
            headers["authorization"] = "Bearer " + tok
        body = b"{}" if method in ("POST", "PUT") else None
        if body is not None:
            headers["content-type"] = "application/json"
        for attempt in range(3):
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
        else:
            sys.exit(f"row {n}: the gateway does not answer")
        code = ""
        if resp.status in (401, 403):
            try:
                code = json.loads(data)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = ""
        verdict = {"STEP_UP_REQUIRED": "step_up", "RISK_BLOCKED": "block",
                   "BIOMETRIC_AUTH_FAILED": "block"}.get(code, "normal")
        counts[code or str(resp.status)] += 1
        if r["kind"] == "request":
            if verdict != "normal" and r["label"] == "0":
                mfa_until[r["principal"]] = ts + MFA_SECONDS
            if r["split"]:
                results.append((r["label"], r["scenario"], r["session"], r["split"], verdict))
        if n and n % 50000 == 0:
            print(f"  {n} rows, {n / (time.time() - t0):.0f} req/s", file=sys.stderr)
    return results, counts, time.time() - t0


def figures(results, split):
    sessions = collections.defaultdict(dict)
    normal = collections.Counter()
    for label, scenario, session, sp, verdict in results:
        if split != "all" and sp != split:
            continue
        if label == "1":
            hit = sessions[scenario].get(session, False)
            sessions[scenario][session] = hit or verdict in ("step_up", "block")
        else:
            normal["total"] += 1
            normal[verdict] += 1
    out = {}
    for scenario, ss in sorted(sessions.items()):
        out[scenario] = (sum(ss.values()), len(ss))
    return out, normal


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traffic", help="a traffic file (default: generate --seed 7)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tenants", default="T01", help="comma-separated tenants to replay, or all")
    ap.add_argument("--split", default="test")
    ap.add_argument("--rules", action="store_true", help="no model: the rule fallback")
    ap.add_argument("--profile", choices=["dev", "release"], default="dev")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sentinel-anomaly-endpoint-")
    traffic = args.traffic
    if not traffic:
        traffic = os.path.join(work, "traffic.csv")
        subprocess.run([sys.executable, os.path.join(ROOT, "models", "anomaly", "traffic.py"),
                        "--seed", str(args.seed), "--out", traffic], check=True)
    keep = None if args.tenants == "all" else set(args.tenants.split(","))
    rows = [r for r in csv.DictReader(open(traffic)) if keep is None or r["tenant"] in keep]
    cargo = ["cargo", "build", "-p", "sentinel", "--bin", "sentinel"]
    if args.profile == "release":
        cargo.append("--release")
    subprocess.run(["flock", "/tmp/cargo-build.lock"] + cargo, check=True, cwd=ROOT)
    binary = os.path.join(ROOT, "target", "debug" if args.profile == "dev" else "release",
                          "sentinel")
    model = None if args.rules else os.path.join(ROOT, "models", "anomaly", "model.onnx")
    proxy, ops = write_config(work, rows, model)
    proc = start(work, binary, ops)
    try:
        print(f"== anomaly replay through the proxy at {proxy}: {len(rows)} rows of tenants "
              f"{args.tenants}, scorer {'rules' if args.rules else 'model + rules'}")
        results, counts, secs = replay(rows, proxy)
    finally:
        proc.kill()
    print(f"{len(rows)} requests in {secs:.0f} s ({len(rows) / secs:.0f} req/s); answers: "
          + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    per, normal = figures(results, args.split)
    print(f"split {args.split}: attack sessions stepped up or blocked")
    for scenario, (hit, total) in per.items():
        print(f"  {scenario:20} {hit}/{total} = {100 * hit / max(total, 1):.1f} %")
    total = max(normal["total"], 1)
    print(f"  normal requests stepped up {100 * normal['step_up'] / total:.2f} %, blocked "
          f"{100 * normal['block'] / total:.2f} % (of {normal['total']})")


if __name__ == "__main__":
    main()
