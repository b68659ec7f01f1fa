//! Decision latency at scale: a generated policy with 1,000 tenants, 100,000
//! users, 10,000 roles and 1,000,000 permission rows, compiled once, then
//! `Snapshot::authorize` for an allowed, a denied-by-default and an
//! explicitly denied request. The aim is < 2 µs per decision.
//!
//! Run: `cargo bench --bench decision -- --warm-up-time 1 --measurement-time 3`
//! (prints compile time and approximate memory first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sentinel_policy::{compile, AccessRequest, Reason, RequestContext, Snapshot};
use std::time::Instant;
use uuid::Uuid;

#[path = "support/scale.rs"]
mod scale;
use scale::*;

/// Resident set size in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this thread has run, in ns (Linux `schedstat`; `None` elsewhere).
/// On a shared machine wall-clock figures include time spent descheduled;
/// this one does not.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Mean on-CPU ns per decision over `iters` decisions.
fn cpu_ns_per_decision(snap: &Snapshot, req: &AccessRequest<'_>, iters: u32) -> Option<f64> {
    for _ in 0..iters / 10 {
        black_box(snap.authorize(black_box(req)));
    }
    let before = thread_cpu_ns()?;
    for _ in 0..iters {
        black_box(snap.authorize(black_box(req)));
    }
    let after = thread_cpu_ns()?;
    Some(after.saturating_sub(before) as f64 / f64::from(iters))
}

struct Probe {
    resource_type: &'static str,
    resource_id: String,
    action: &'static str,
}

fn request<'a>(snap: &'a Snapshot, user: &Uuid, probe: &'a Probe) -> AccessRequest<'a> {
    let principal = snap.principal(user).unwrap();
    AccessRequest {
        principal,
        resource_type: probe.resource_type,
        resource_id: Some(&probe.resource_id),
        action: probe.action,
        target_tenant: principal.tenant,
        approval_chain: None,
        context: RequestContext {
            now: NOW,
            client_ip: Some("10.1.2.3".parse().unwrap()),
            method: "GET",
            mfa: true,
            risk_score: Some(0.1),
        },
    }
}

/// Finds, for `user`, a request with the wanted outcome among ids the policy names.
fn find(snap: &Snapshot, user: &Uuid, t: usize, want: Reason) -> Probe {
    for k in 0..ROLES_PER_TENANT {
        for j in 0..PERMS_PER_ROLE {
            for (ty_i, ty) in TYPES.iter().enumerate() {
                for action in ["read", "update", "delete", "approve"] {
                    let ids = [
                        format!("{ty}-{t}-{k}-{j}"),
                        format!("{ty}-{t}-{}-x", j % 7),
                        format!("{ty}-{}-{k}-{j}", t + 1),
                    ];
                    for id in ids {
                        let probe = Probe {
                            resource_type: TYPES[ty_i],
                            resource_id: id,
                            action,
                        };
                        if snap.authorize(&request(snap, user, &probe)).reason == want {
                            return probe;
                        }
                    }
                }
            }
        }
    }
    panic!("no request with outcome {want:?}");
}

fn bench(c: &mut Criterion) {
    let rss0 = rss_mib();
    let started = Instant::now();
    let src = generate();
    let generated = started.elapsed();
    let rss1 = rss_mib();
    let started = Instant::now();
    let snap = match compile(&src) {
        Ok(s) => s,
        Err(e) => panic!(
            "generated policy does not compile: {} errors, first {}",
            e.len(),
            e[0]
        ),
    };
    let compiled = started.elapsed();
    let rss2 = rss_mib();
    let stats = snap.stats();
    drop(src);
    let rss3 = rss_mib();
    println!(
        "policy: {} tenants, {} principals, {} roles, {} permissions",
        stats.tenants, stats.principals, stats.roles, stats.permissions
    );
    println!("generate: {generated:.2?}, source ≈ {:.0} MiB", rss1 - rss0);
    println!(
        "compile: {compiled:.2?}, snapshot ≈ {:.0} MiB (RSS {:.0} MiB with source, {:.0} MiB without)",
        rss2 - rss1,
        rss2,
        rss3
    );

    // A user of tenant 42 holding three roles directly and one more through a group.
    let (t, u) = (42, 4);
    let user = user_id(t, u);
    let principal = snap.principal(&user).unwrap();
    println!("user roles: {}", principal.role_names);
    let allowed = find(&snap, &user, t, Reason::Allowed);
    let no_match = find(&snap, &user, t, Reason::NoMatchingPermission);
    let denied = find(&snap, &user, t, Reason::ExplicitDeny);
    for (name, probe) in [
        ("allowed", &allowed),
        ("no_match", &no_match),
        ("explicit_deny", &denied),
    ] {
        let req = request(&snap, &user, probe);
        let d = snap.authorize(&req);
        let cpu = cpu_ns_per_decision(&snap, &req, 200_000)
            .map_or_else(|| "n/a".to_string(), |ns| format!("{ns:.0} ns"));
        println!(
            "{name}: {} {} {} -> {} ({} rules), on-CPU time per decision {cpu}",
            probe.resource_type,
            probe.resource_id,
            probe.action,
            d.reason.name(),
            d.rules.len()
        );
    }

    let mut group = c.benchmark_group("authorize");
    for (name, probe) in [
        ("allowed", &allowed),
        ("deny_by_default", &no_match),
        ("explicit_deny", &denied),
    ] {
        let req = request(&snap, &user, probe);
        group.bench_function(name, |b| b.iter(|| snap.authorize(black_box(&req))));
    }
    // The whole per-request path a gateway runs: principal lookup, then decide.
    let req = request(&snap, &user, &allowed);
    group.bench_function("lookup_and_allowed", |b| {
        b.iter(|| {
            let principal = snap.principal(black_box(&user)).unwrap();
            snap.authorize(&AccessRequest { principal, ..req })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
