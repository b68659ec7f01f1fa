#!/usr/bin/env python3
"""Checks of the deploy/ files that no schema covers (run by .ci/deploy).

    python3 deploy/tools/check_files.py compose       # cross-references of the compose file
    python3 deploy/tools/check_files.py routes        # the routes ConfigMap equals config/routes/
    python3 deploy/tools/check_files.py routes --write
    python3 deploy/tools/check_files.py context DIR   # copy the Docker build context to DIR
    python3 deploy/tools/check_files.py gateway-configs DIR
                                                      # lay out the compose and Kubernetes gateway
                                                      # configs under DIR for `sentinel check`

Exit status 0 when everything holds, 1 with one line per problem otherwise.
Needs PyYAML (the .ci/deploy venv has it).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy/compose/compose.yaml"
K8S = ROOT / "deploy/kubernetes"
ROUTES_CONFIGMAP = K8S / "11-gateway-routes.yaml"
GATEWAY_CONFIGMAP = K8S / "10-gateway-config.yaml"
ROUTE_FILES = sorted((ROOT / "config/routes").glob("*.toml"))


def load_all(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---------------------------------------------------------------- compose


def check_compose() -> list[str]:
    """What `docker compose config` would refuse, and what it would not check
    at all: bind-mount sources, Dockerfiles and targets, the fixed upstream
    address, the scrape targets."""
    problems: list[str] = []
    doc = load_all(COMPOSE)[0]
    base = COMPOSE.parent
    services: dict = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    networks = doc.get("networks") or {}

    def where(name: str) -> str:
        return f"{COMPOSE.relative_to(ROOT)}: service `{name}`"

    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if dep not in services:
                problems.append(f"{where(name)}: depends_on names no service `{dep}`")
        for net in svc.get("networks") or []:
            if net not in networks:
                problems.append(f"{where(name)}: network `{net}` is not declared")
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                if not (base / source).resolve().exists():
                    problems.append(f"{where(name)}: bind-mount source `{source}` does not exist")
            elif source not in volumes:
                problems.append(f"{where(name)}: volume `{source}` is not declared")
        build = svc.get("build")
        if build:
            context = (base / build["context"]).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{where(name)}: Dockerfile `{dockerfile}` does not exist")
            elif "target" in build:
                stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile.read_text())
                if build["target"] not in stages:
                    problems.append(f"{where(name)}: `{dockerfile.name}` has no stage `{build['target']}`")
        entry = svc.get("entrypoint") or []
        for arg in entry[1:] if isinstance(entry, list) else []:
            if arg.startswith("/") and not any(
                isinstance(v, str) and v.split(":")[1] == arg for v in svc.get("volumes") or []
            ):
                problems.append(f"{where(name)}: entrypoint script `{arg}` is not mounted")

    # The gateways' upstreams are IP:PORT: they must be the stand-in's fixed
    # address, inside the network's subnet.
    subnets = [
        ipaddress.ip_network(c["subnet"])
        for net in networks.values()
        for c in ((net or {}).get("ipam") or {}).get("config") or []
    ]
    fixed = {
        n: cfg.get("ipv4_address")
        for n, s in services.items()
        for cfg in [((s.get("networks") or {}) if isinstance(s.get("networks"), dict) else {}).get("sentinel") or {}]
        if cfg.get("ipv4_address")
    }
    gateway_toml = (base / "gateway/sentinel.toml").read_text()
    upstreams = re.findall(r"(?m)^addresses\s*=\s*\[(.*)\]", gateway_toml)
    for addr in re.findall(r'"(\d+\.\d+\.\d+\.\d+):\d+"', " ".join(upstreams)):
        if addr not in fixed.values():
            problems.append(f"deploy/compose/gateway/sentinel.toml: upstream {addr} is no service's fixed address")
        if not any(ipaddress.ip_address(addr) in s for s in subnets):
            problems.append(f"deploy/compose/gateway/sentinel.toml: upstream {addr} is outside the compose subnet")
    for host in re.findall(r'"(?:https?|redis)://([a-z0-9-]+)[:/]', gateway_toml):
        if host not in services:
            problems.append(f"deploy/compose/gateway/sentinel.toml: `{host}` is no compose service")

    # Prometheus scrapes services that exist, on ports they listen on, and
    # its rule_files find the alert rules where the compose file mounts them.
    prom = load_all(base / "prometheus/prometheus.yml")[0]
    mounts = [v.split(":")[1] for v in services.get("prometheus", {}).get("volumes", []) if isinstance(v, str)]
    for pattern in prom.get("rule_files", []):
        if not any(fnmatch.fnmatchcase(m, pattern) for m in mounts):
            problems.append(f"prometheus.yml: rule_files `{pattern}` matches no file the compose file mounts")
    listens = {"gateway-1": "9090", "gateway-2": "9090", "admin": "8081", "demo": "9190"}
    for job in prom.get("scrape_configs", []):
        for sc in job.get("static_configs", []):
            for target in sc.get("targets", []):
                host, port = target.rsplit(":", 1)
                if host not in services:
                    problems.append(f"prometheus.yml: job `{job['job_name']}` scrapes unknown service `{host}`")
                elif listens.get(host) != port:
                    problems.append(f"prometheus.yml: `{target}`: `{host}` listens on {listens.get(host)}")
    return problems


# ---------------------------------------------------------------- routes ConfigMap

ROUTES_HEADER = """\
# The gateway's route files: config/routes/*.toml of the repository, as keys
# routes-<name>.toml (sentinel.toml reads `routes-*.toml`). Generated:
#   python3 deploy/tools/check_files.py routes --write
# and checked by .ci/deploy to equal config/routes/. Edit the route files and
# regenerate; for your own routes, replace the keys and keep the prefix.
# Route files apply live: kubelet updates the projected volume and the
# gateway reloads them (a broken one is rejected whole; the routes in force
# stay, docs/operations.md).
"""


def render_routes_configmap() -> str:
    out = [ROUTES_HEADER, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"]
    out.append("  name: sentinel-gateway-routes\n  namespace: sentinel\n  labels:\n")
    out.append("    app.kubernetes.io/name: sentinel-gateway\n    app.kubernetes.io/part-of: sentinel\n")
    out.append("data:\n")
    for f in ROUTE_FILES:
        text = f.read_text()
        if not text.endswith("\n") or text.endswith("\n\n") or "\t" in text:
            raise SystemExit(f"{f}: needs exactly one final newline and no tabs to be embedded")
        out.append(f"  routes-{f.stem}.toml: |\n")
        out.extend(f"    {line}\n" if line else "\n" for line in text[:-1].split("\n"))
    return "".join(out)


def check_routes(write: bool) -> list[str]:
    rendered = render_routes_configmap()
    if write:
        ROUTES_CONFIGMAP.write_text(rendered)
        return []
    problems = []
    if not ROUTES_CONFIGMAP.exists() or ROUTES_CONFIGMAP.read_text() != rendered:
        problems.append(f"{ROUTES_CONFIGMAP.relative_to(ROOT)} differs from config/routes/: "
                        "run `python3 deploy/tools/check_files.py routes --write`")
    # Whatever the text, the data must be the files byte for byte.
    data = load_all(ROUTES_CONFIGMAP)[0]["data"] if ROUTES_CONFIGMAP.exists() else {}
    for f in ROUTE_FILES:
        if data.get(f"routes-{f.stem}.toml") != f.read_text():
            problems.append(f"ConfigMap key routes-{f.stem}.toml is not {f.relative_to(ROOT)}")
    return problems


# ---------------------------------------------------------------- Docker build context


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    pats = [l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#")]
    for p in pats:
        # The subset of Docker's syntax this copy understands; anything else
        # must fail here rather than be misread.
        if p.startswith("!") or "[" in p or "\\" in p:
            raise SystemExit(f".dockerignore: pattern `{p}` is outside what check_files.py understands")
    return pats


def ignored(rel: str, pats: list[str]) -> bool:
    """Docker's rule for the patterns used: a path is excluded when it or one
    of its parent directories matches; `**/x` matches x at any depth."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for p in pats:
            if p.startswith("**/"):
                if fnmatch.fnmatchcase(prefix, p[3:]) or fnmatch.fnmatchcase(prefix, p) or \
                        fnmatch.fnmatchcase(parts[i - 1], p[3:]):
                    return True
            elif fnmatch.fnmatchcase(prefix, p):
                return True
    return False


def copy_context(dest: Path) -> list[str]:
    pats = dockerignore_patterns()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = [d for d in dirnames if not ignored(f"{rel_dir}/{d}".lstrip("/"), pats)]
        for name in filenames:
            rel = f"{rel_dir}/{name}".lstrip("/")
            if ignored(rel, pats):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel, follow_symlinks=False)
    problems = []
    for df in sorted((ROOT / "deploy/docker").glob("*.Dockerfile")):
        for src in re.findall(r"(?m)^COPY\s+(?:--chmod=\S+\s+)?(?!--from)(\S+)\s+\S+\s*$", df.read_text()):
            if src != "." and not (dest / src).exists():
                problems.append(f"{df.relative_to(ROOT)}: COPY source `{src}` is not in the build context")
    for must in ["Cargo.toml", "Cargo.lock", "migrations", "config/routes", "examples/upstream.rs",
                 "console/package.json", "console/package-lock.json", "console/src", "console/index.html",
                 "console/vite.config.ts"]:
        if not (dest / must).exists():
            problems.append(f".dockerignore leaves `{must}` out of the build context")
    # The console is built in the image from its sources and lock, never from
    # a build or node_modules of the machine that runs `docker build`.
    for never in ["console/dist", "console/node_modules", "console/test-output"]:
        if (dest / never).exists():
            problems.append(f".dockerignore lets `{never}` into the build context")
    return problems


# ---------------------------------------------------------------- gateway configs for `sentinel check`


def layout_gateway_configs(dest: Path) -> list[str]:
    """Builds, under DEST, the directories the compose file and the
    Kubernetes Deployment mount, with stand-ins for what only exists at run
    time (the snapshot JWKS: the demo issuer's; the gateway key: a dummy; the
    assertion key: the demo's), and the cache directory moved under DEST.
    Prints one config path per line for `sentinel check`."""
    if dest.exists():
        shutil.rmtree(dest)
    keys = ROOT / "config/keys"
    cache = dest / "var-lib-sentinel"
    cache.mkdir(parents=True)

    def write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def retarget(text: str) -> str:
        if "/var/lib/sentinel/" not in text:
            raise SystemExit("expected the snapshot cache under /var/lib/sentinel/")
        return text.replace("/var/lib/sentinel/", f"{cache}/")

    # compose: /etc/sentinel as compose.yaml mounts it
    c = dest / "compose"
    write(c / "sentinel.toml", retarget((ROOT / "deploy/compose/gateway/sentinel.toml").read_text()))
    shutil.copytree(ROOT / "config/routes", c / "routes")
    shutil.copytree(keys, c / "keys")
    write(c / "bootstrap/snapshot-keys.jwks.json", (keys / "demo-issuer.jwks.json").read_text())
    write(c / "bootstrap/gateway.key", "sk_checkkey_0000000000000000000000000000000000000000\n")

    # Kubernetes: /etc/sentinel as the projected volume lays it out
    k = dest / "kubernetes"
    config = load_all(GATEWAY_CONFIGMAP)[0]["data"]
    write(k / "sentinel.toml", retarget(config["sentinel.toml"]))
    for name, text in load_all(ROUTES_CONFIGMAP)[0]["data"].items():
        write(k / name, text)
    write(k / "snapshot-keys.jwks.json", (keys / "demo-issuer.jwks.json").read_text())
    write(k / "secrets/admin-api-key", "sk_checkkey_0000000000000000000000000000000000000000\n")
    write(k / "secrets/assertion.pem", (keys / "gateway-assertion.pem").read_text())
    print(c / "sentinel.toml")
    print(k / "sentinel.toml")
    return []


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "compose":
        problems = check_compose()
    elif cmd == "routes":
        problems = check_routes(write="--write" in rest)
    elif cmd == "context" and len(rest) == 1:
        problems = copy_context(Path(rest[0]))
    elif cmd == "gateway-configs" and len(rest) == 1:
        problems = layout_gateway_configs(Path(rest[0]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
