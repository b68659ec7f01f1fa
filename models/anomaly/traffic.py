#!/usr/bin/env python3
"""Synthetic multi-tenant gateway traffic with labelled attacks, for training
and evaluating the anomaly model (docs/anomaly.md, "Traffic").

Deterministic: the same --seed and --profile give the same file, byte for byte.
Standard library only.

    python3 models/anomaly/traffic.py --seed 7 --out /tmp/traffic.csv
    python3 models/anomaly/traffic.py --seed 8 --profile shifted --out /tmp/shifted.csv

One row per event, in time order:

    ts,kind,tenant,principal,service_account,client,method,route,resource,
    sensitivity,status,biometric,label,scenario,session,split

kind      `request` (an authenticated request) or `auth_failure` (a failed
          authentication; `principal` is the account it named, or empty)
status    what policy answers: 200, or 403 for a denial
biometric the session's biometric score, or empty
label     1 for attack traffic; scenario names it (`normal` otherwise);
          session groups an attack session's requests
split     `train` or `test` for rows that count, empty for warm-up rows.
          Principals are split in two disjoint halves: the train half's rows of
          days [WARMUP, SPLIT_DAY), the test half's rows of days
          [SPLIT_DAY, DAYS). Everybody's traffic is in the stream, so baselines
          build up exactly as a gateway would see them.
"""

import argparse
import csv
import random
import sys

DAY = 86400
# 2026-01-05 00:00 UTC, a Monday.
EPOCH = 1767571200

ROUTES = {
    # route: (method, sensitivity, has_resource, admin_only)
    "/vessels": ("GET", "low", False, False),
    "/vessels/{id}": ("GET", "normal", True, False),
    "/vessels/{id}:PUT": ("PUT", "normal", True, False),
    "/vessels/{id}/crew": ("GET", "high", True, False),
    "/voyages/{id}": ("GET", "normal", True, False),
    "/voyages:POST": ("POST", "normal", False, False),
    "/port-calls/{id}": ("GET", "normal", True, False),
    "/dashboard": ("GET", "low", False, False),
    "/reports/export": ("GET", "critical", False, True),
    "/admin/users": ("GET", "critical", False, True),
    "/admin/roles:PUT": ("PUT", "critical", False, True),
    "/admin/audit": ("GET", "critical", False, True),
    "/billing": ("GET", "high", False, True),
    "/sync/positions:POST": ("POST", "normal", False, False),
    "/telemetry/{id}": ("GET", "low", True, False),
}
USER_ROUTES = [r for r in ROUTES if not r.startswith(("/sync", "/telemetry"))]
ADMIN_ROUTES = [r for r, v in ROUTES.items() if v[3]]

PROFILES = {
    # The shape of the population and of the attacks. `shifted` moves every
    # knob, to check the model on traffic it was not trained on.
    "default": dict(
        tenants=6, users=(15, 45), service_accounts=(1, 3), vessels=(60, 400),
        start_hour=(6, 10), work_hours=(7, 10), sessions=(1, 4), session_requests=(10, 120),
        think_time=(4, 40), networks_extra=(0, 2), travel_day=0.02, late_day=0.03,
        weekend=0.05, denial_rate=(0.0, 0.03), bio_share=0.7, working_set=(5, 40),
        attack_sessions=70, enum_rate=(1.0, 8.0), scrape_rate=(0.3, 3.0),
        probe_requests=(20, 80), probe_denied=(0.6, 0.95), stuffing_failures=(100, 1500),
    ),
    "shifted": dict(
        tenants=9, users=(8, 70), service_accounts=(0, 5), vessels=(30, 800),
        start_hour=(4, 13), work_hours=(5, 12), sessions=(1, 6), session_requests=(5, 200),
        think_time=(2, 80), networks_extra=(0, 3), travel_day=0.05, late_day=0.06,
        weekend=0.10, denial_rate=(0.0, 0.06), bio_share=0.4, working_set=(3, 80),
        attack_sessions=70, enum_rate=(0.5, 4.0), scrape_rate=(0.2, 2.0),
        probe_requests=(12, 60), probe_denied=(0.4, 0.9), stuffing_failures=(40, 800),
    ),
}

DAYS = 21
WARMUP = 3
SPLIT_DAY = 14


class Gen:
    def __init__(self, seed, profile):
        self.r = random.Random(seed)
        self.p = PROFILES[profile]
        self.rows = []
        self.used_nets = set()

    # ---- addresses -------------------------------------------------------
    def new_net(self):
        """A fresh /24 (IPv4) or, one time in five, a /64 (IPv6)."""
        r = self.r
        while True:
            if r.random() < 0.2:
                net = "2001:db8:%x:%x" % (r.randrange(1 << 16), r.randrange(1 << 16))
            else:
                net = "%d.%d.%d" % (r.choice([23, 45, 62, 81, 93, 103, 151, 185, 203]),
                                    r.randrange(256), r.randrange(256))
            if net not in self.used_nets:
                self.used_nets.add(net)
                return net

    def host(self, net, h=None):
        h = self.r.randrange(2, 250) if h is None else h
        return "%s::%x" % (net, h) if ":" in net else "%s.%d" % (net, h)

    # ---- output ------------------------------------------------------------
    def emit(self, ts, kind, tenant, principal, sa, client, route, resource, status,
             bio, label, scenario, session):
        method, sens, _, _ = ROUTES[route] if route else ("", "", False, False)
        self.rows.append((int(ts), kind, tenant, principal, int(sa), client, method,
                          route.split(":")[0] if route else "", resource or "", sens,
                          status, "" if bio is None else "%.3f" % bio, label, scenario,
                          session))

    # ---- population ------------------------------------------------------
    def population(self):
        r, p = self.r, self.p
        tenants = []
        for t in range(p["tenants"]):
            code = "T%02d" % t
            office = self.new_net()
            tenant = dict(code=code, office=office, office_ip=self.host(office, 10),
                          vessels=["%s-v%04d" % (code, i) for i in range(r.randint(*p["vessels"]))],
                          users=[], sas=[])
            for u in range(r.randint(*p["users"])):
                role = r.choices(["viewer", "operator", "manager", "admin"], [5, 6, 3, 1])[0]
                nets = [(office, tenant["office_ip"])]
                for _ in range(r.randint(*p["networks_extra"])):
                    n = self.new_net()
                    nets.append((n, self.host(n)))
                routes = [x for x in USER_ROUTES if role == "admin" or not ROUTES[x][3]]
                weights = [r.paretovariate(1.2) for _ in routes]
                ws = r.randint(*p["working_set"])
                tenant["users"].append(dict(
                    id="%s-u%03d" % (code, u), role=role, nets=nets,
                    start=r.uniform(*p["start_hour"]), length=r.uniform(*p["work_hours"]),
                    sessions=p["sessions"], routes=routes, weights=weights,
                    working_set=r.sample(tenant["vessels"], min(ws, len(tenant["vessels"]))),
                    think=r.uniform(*p["think_time"]), denial=r.uniform(*p["denial_rate"]),
                    browser=r.random() < p["bio_share"], saturday=r.random() < 0.1))
            for s in range(r.randint(*p["service_accounts"])):
                dc = self.new_net()
                tenant["sas"].append(dict(
                    id="%s-sa%02d" % (code, s), ip=self.host(dc), period=r.uniform(60, 600),
                    sweep=r.choice([None, 3600, 3 * 3600, 6 * 3600]),
                    sweep_size=r.randint(20, len(tenant["vessels"]))))
            tenants.append(tenant)
        principals = [u["id"] for t in tenants for u in t["users"]] + \
                     [s["id"] for t in tenants for s in t["sas"]]
        r.shuffle(principals)
        self.train = set(principals[: len(principals) // 2])
        return tenants

    # ---- normal traffic ----------------------------------------------------
    def user_session(self, t, u, start, ip, n):
        r = self.r
        ts = start
        bio = r.betavariate(2, 14) if u["browser"] else None
        for _ in range(n):
            burst = r.random() < 0.15
            for _ in range(r.randint(3, 12) if burst else 1):
                route = r.choices(u["routes"], u["weights"])[0]
                status = 200
                if r.random() < u["denial"]:
                    route = r.choice(ADMIN_ROUTES) if u["role"] != "admin" else route
                    status = 403 if u["role"] != "admin" else 200
                res = None
                if ROUTES[route][2]:
                    ws = u["working_set"]
                    res = ws[min(int(r.paretovariate(1.0)) - 1, len(ws) - 1)] if r.random() < 0.9 \
                        else r.choice(t["vessels"])
                self.emit(ts, "request", t["code"], u["id"], False, ip, route, res, status,
                          bio, 0, "normal", "")
                ts += r.expovariate(1.0)
            ts += r.expovariate(1.0 / u["think"])
        return ts

    def user_day(self, t, u, day):
        r, p = self.r, self.p
        midnight = EPOCH + day * DAY
        weekday = day % 7
        works = weekday < 5 or (weekday == 5 and u["saturday"]) or r.random() < p["weekend"]
        if not works:
            return
        net, ip = r.choice(u["nets"]) if r.random() < 0.8 else u["nets"][0]
        if r.random() < p["travel_day"]:
            n = self.new_net()
            net, ip = n, self.host(n)
        if r.random() < 0.3:
            # An expired token or a mistyped password now and then.
            self.emit(midnight + u["start"] * 3600 - 60, "auth_failure", t["code"], u["id"],
                      False, ip, "", None, 401, None, 0, "normal", "")
        for _ in range(r.randint(*u["sessions"])):
            start = midnight + (u["start"] + r.uniform(0, u["length"] - 0.5)) * 3600
            self.user_session(t, u, start, ip, r.randint(*p["session_requests"]))
        if r.random() < p["late_day"]:
            start = midnight + (u["start"] + u["length"] + r.uniform(2, 6)) * 3600
            self.user_session(t, u, start, ip, r.randint(5, 40))

    def service_account(self, t, s):
        r = self.r
        ts = EPOCH + r.uniform(0, 600)
        end = EPOCH + DAYS * DAY
        while ts < end:
            self.emit(ts, "request", t["code"], s["id"], True, s["ip"], "/sync/positions:POST",
                      None, 200, None, 0, "normal", "")
            ts += r.expovariate(1.0 / s["period"])
        if s["sweep"]:
            ts = EPOCH + r.uniform(0, s["sweep"])
            while ts < end:
                x = ts
                for v in t["vessels"][: s["sweep_size"]]:
                    self.emit(x, "request", t["code"], s["id"], True, s["ip"], "/telemetry/{id}",
                              v, 200, None, 0, "normal", "")
                    x += r.uniform(0.05, 0.5)
                ts += s["sweep"] * r.uniform(0.9, 1.1)

    # ---- attacks -------------------------------------------------------------
    def attack_time(self, split, night=False, u=None):
        r = self.r
        lo, hi = (WARMUP, SPLIT_DAY) if split == "train" else (SPLIT_DAY, DAYS)
        day = r.randrange(lo, hi)
        if night:
            hour = r.uniform(0, 5)
        elif u is not None:
            hour = u["start"] + r.uniform(0.5, u["length"] - 1)
        else:
            hour = r.uniform(0, 24)
        return EPOCH + day * DAY + hour * 3600

    def victims(self, tenants, split, service=False):
        half = self.train if split == "train" else None
        pool = [(t, u) for t in tenants for u in t["users"]
                if (u["id"] in self.train) == (half is not None)]
        return pool

    def credential_stuffing(self, tenants, split, k):
        r, p = self.r, self.p
        pool = self.victims(tenants, split)
        net = self.new_net()
        ips = [self.host(net) for _ in range(r.randint(1, 3))]
        start = self.attack_time(split)
        fails = r.randint(*p["stuffing_failures"])
        duration = r.uniform(300, 1800)
        for i in range(fails):
            t, u = r.choice(pool)
            who = u["id"] if r.random() < 0.5 else ""
            self.emit(start + duration * i / fails, "auth_failure", t["code"], who, False,
                      r.choice(ips), "", None, 401, None, 1, "credential_stuffing", "")
        for h in range(r.randint(1, 4)):
            t, u = r.choice(pool)
            session = "cs-%s-%d-%d" % (split, k, h)
            ts = start + r.uniform(60, duration + 600)
            # One hit in five comes from a neighbour address of the same /24.
            ip = r.choice(ips) if r.random() < 0.8 else self.host(net)
            for _ in range(r.randint(3, 30)):
                route = r.choice(["/vessels", "/vessels/{id}", "/vessels/{id}/crew",
                                  "/reports/export", "/dashboard"])
                res = r.choice(t["vessels"]) if ROUTES[route][2] else None
                status = 403 if ROUTES[route][3] and u["role"] != "admin" else 200
                self.emit(ts, "request", t["code"], u["id"], False, ip, route, res, status,
                          None, 1, "credential_stuffing", session)
                ts += r.expovariate(1 / 4.0)

    def stolen_token(self, tenants, split, k):
        r, p = self.r, self.p
        t, u = r.choice(self.victims(tenants, split))
        net = self.new_net()
        ip = self.host(net)
        ts = self.attack_time(split, night=r.random() < 0.8, u=u)
        rate = r.uniform(*p["enum_rate"])
        session = "st-%s-%d" % (split, k)
        vessels = list(t["vessels"])
        r.shuffle(vessels)
        for v in vessels:
            route = "/vessels/{id}" if r.random() < 0.8 else "/vessels/{id}/crew"
            self.emit(ts, "request", t["code"], u["id"], False, ip, route, v, 200, None, 1,
                      "stolen_token", session)
            ts += r.expovariate(rate)

    def scraping(self, tenants, split, k):
        r, p = self.r, self.p
        t, u = r.choice(self.victims(tenants, split))
        net, ip = u["nets"][0]
        ts = self.attack_time(split, u=u)
        rate = r.uniform(*p["scrape_rate"])
        session = "sc-%s-%d" % (split, k)
        bio = r.betavariate(2, 14) if u["browser"] and r.random() < 0.5 else None
        for _ in range(r.randint(80, 400)):
            route = r.choice(["/vessels/{id}", "/voyages/{id}", "/port-calls/{id}"])
            self.emit(ts, "request", t["code"], u["id"], False, ip, route,
                      r.choice(t["vessels"]), 200, bio, 1, "scraping", session)
            ts += r.expovariate(rate)

    def privilege_probing(self, tenants, split, k):
        r, p = self.r, self.p
        pool = [(t, u) for t, u in self.victims(tenants, split) if u["role"] != "admin"]
        t, u = r.choice(pool)
        if r.random() < 0.5:
            net = self.new_net()
            ip = self.host(net)
        else:
            ip = u["nets"][0][1]
        ts = self.attack_time(split, night=r.random() < 0.3, u=u)
        session = "pp-%s-%d" % (split, k)
        denied = r.uniform(*p["probe_denied"])
        for _ in range(r.randint(*p["probe_requests"])):
            if r.random() < denied:
                route, status = r.choice(ADMIN_ROUTES), 403
            else:
                route, status = r.choice(u["routes"]), 200
            res = r.choice(t["vessels"]) if ROUTES[route][2] else None
            self.emit(ts, "request", t["code"], u["id"], False, ip, route, res, status, None,
                      1, "privilege_probing", session)
            ts += r.expovariate(1 / 6.0)

    def run(self):
        tenants = self.population()
        for t in tenants:
            for u in t["users"]:
                for day in range(DAYS):
                    self.user_day(t, u, day)
            for s in t["sas"]:
                self.service_account(t, s)
        for split in ("train", "test"):
            for k in range(self.p["attack_sessions"]):
                self.credential_stuffing(tenants, split, k)
                self.stolen_token(tenants, split, k)
                self.scraping(tenants, split, k)
                self.privilege_probing(tenants, split, k)
        self.rows.sort(key=lambda row: row[0])
        return self.rows

    def split_of(self, row):
        ts, principal, label, session = row[0], row[3], row[12], row[14]
        day = (ts - EPOCH) // DAY
        if label:
            return session.split("-")[1] if session else ""
        if principal in self.train and WARMUP <= day < SPLIT_DAY:
            return "train"
        if principal and principal not in self.train and day >= SPLIT_DAY:
            return "test"
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="default")
    ap.add_argument("--out", default="-")
    args = ap.parse_args()
    g = Gen(args.seed, args.profile)
    rows = g.run()
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["ts", "kind", "tenant", "principal", "service_account", "client", "method",
                "route", "resource", "sensitivity", "status", "biometric", "label", "scenario",
                "session", "split"])
    for row in rows:
        w.writerow(row + (g.split_of(row),))
    if out is not sys.stdout:
        out.close()
        print("%d events -> %s" % (len(rows), args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
