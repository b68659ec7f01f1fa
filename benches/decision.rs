//! Decision latency at scale: a generated policy with 1,000 tenants, 100,000
//! users, 10,000 roles and 1,000,000 permission rows, compiled once, then
//! `Snapshot::authorize` for an allowed, a denied-by-default and an
//! explicitly denied request. The aim is < 2 µs per decision.
//!
//! Run: `cargo bench --bench decision -- --warm-up-time 1 --measurement-time 3`
//! (prints compile time and approximate memory first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sentinel_policy::source::*;
use sentinel_policy::{compile, AccessRequest, PolicySource, Reason, RequestContext, Snapshot};
use std::time::Instant;
use uuid::Uuid;

const TENANTS: usize = 1_000;
const USERS_PER_TENANT: usize = 100;
const ROLES_PER_TENANT: usize = 10;
const PERMS_PER_ROLE: usize = 100;
const TYPES: [&str; 5] = ["vessel", "voyage", "crew", "cargo", "invoice"];
const NOW: i64 = 1_795_003_200;

fn tenant_id(t: usize) -> Uuid {
    Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000_0000 + t as u128)
}

fn user_id(t: usize, u: usize) -> Uuid {
    Uuid::from_u128(0xa000_0000_0000_0000_0000_0000_0000_0000 + (t * USERS_PER_TENANT + u) as u128)
}

/// The permission row `j` of role `k` of tenant `t`.
fn permission(t: usize, k: usize, j: usize) -> PermissionSource {
    let ty = TYPES[j % TYPES.len()];
    // 10% wildcard, 60% exact, 30% prefix.
    let resource = match j % 10 {
        0 => "*".to_string(),
        1..=6 => format!("{ty}-{t}-{k}-{j}"),
        _ => format!("{ty}-{t}-{}*", j % 7),
    };
    let actions: Vec<String> = match j % 4 {
        0 => vec!["read".into()],
        1 => vec!["read".into(), "update".into()],
        2 => vec!["*".into()],
        _ => vec!["delete".into()],
    };
    let mut conditions = Vec::new();
    if j % 13 == 12 {
        conditions.push(ConditionSource::ClientIp {
            cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
        });
    }
    if j % 19 == 18 {
        conditions.push(ConditionSource::Attribute {
            name: "dept".into(),
            op: AttributeOp::In,
            value: serde_json::json!(["eng", "ops"]),
        });
    }
    PermissionSource {
        id: format!("t{t}-r{k}-p{j}"),
        // About 6% deny rows.
        effect: if j % 17 == 16 {
            Effect::Deny
        } else {
            Effect::Allow
        },
        resource_type: ty.into(),
        resource,
        actions,
        conditions,
        tenant_scope: if j % 11 == 10 {
            TenantScope::OwnAndChildren
        } else {
            TenantScope::Own
        },
        fields: FieldRulesSource::default(),
        description: String::new(),
    }
}

fn generate() -> PolicySource {
    let mut src = PolicySource {
        version: 1,
        ..PolicySource::default()
    };
    src.tenants.reserve(TENANTS);
    src.permissions
        .reserve(TENANTS * ROLES_PER_TENANT * PERMS_PER_ROLE);
    src.roles.reserve(TENANTS * ROLES_PER_TENANT);
    src.principals.reserve(TENANTS * USERS_PER_TENANT);
    for t in 0..TENANTS {
        let tid = tenant_id(t);
        src.tenants.push(TenantSource {
            id: tid,
            code: format!("T{t:04}"),
            name: format!("Tenant {t}"),
            // Every tenant not divisible by 10 is a sub-tenant of the one that is.
            parent: (t % 10 != 0).then(|| tenant_id(t - t % 10)),
            status: TenantStatus::Active,
            settings: Default::default(),
        });
        for k in 0..ROLES_PER_TENANT {
            let perms = (0..PERMS_PER_ROLE)
                .map(|j| permission(t, k, j))
                .collect::<Vec<_>>();
            src.roles.push(RoleSource {
                id: format!("t{t}-r{k}"),
                name: format!("role-{k}"),
                tenant: Some(tid),
                // Chains r0 <- r1 <- r2, r3 <- r4 <- r5, …
                parent: (k % 3 != 0).then(|| format!("t{t}-r{}", k - 1)),
                permissions: perms.iter().map(|p| p.id.clone()).collect(),
            });
            src.permissions.extend(perms);
        }
        for g in 0..2 {
            src.groups.push(GroupSource {
                id: format!("t{t}-g{g}"),
                name: format!("group-{g}"),
                tenant: tid,
                roles: vec![format!("t{t}-r{}", 5 + g * 3)],
            });
        }
        for u in 0..USERS_PER_TENANT {
            let mut roles = vec![
                format!("t{t}-r{}", u % 10),
                format!("t{t}-r{}", (u + 3) % 10),
            ];
            if u % 2 == 0 {
                roles.push(format!("t{t}-r{}", (u + 7) % 10));
            }
            let groups = match u % 4 {
                0 => vec![format!("t{t}-g0")],
                1 => vec![format!("t{t}-g1")],
                _ => Vec::new(),
            };
            let mut attributes = std::collections::BTreeMap::new();
            attributes.insert(
                "dept".to_string(),
                serde_json::json!(if u % 3 == 0 { "eng" } else { "sales" }),
            );
            src.principals.push(PrincipalSource {
                id: user_id(t, u),
                tenant: tid,
                name: format!("user-{t}-{u}"),
                service_account: false,
                status: PrincipalStatus::Active,
                locked: false,
                locked_until: None,
                attributes,
                roles,
                groups,
                api_keys: Vec::new(),
            });
        }
    }
    src
}

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
