#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the audit trail adds to a request (docs/audit-gateway.md): one event
//! serialized into the per-thread buffer, and serialized and appended to the
//! spool (one `write(2)` into the page cache, `fsync = "never"` so the
//! background sync of the default policy is not in the loop). The spool is a
//! temporary directory, removed afterwards.
//!
//! Run: `cargo bench --bench audit -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion};
use sentinel::audit::{event, Audit, Event, Outcome, PrincipalKind, Rules, Time};
use sentinel::config::{AuditConfig, Fsync};
use std::hint::black_box;
use std::time::Duration;
use uuid::Uuid;

fn sample<'a>() -> Event<'a> {
    Event {
        id: Uuid::now_v7(),
        time: Time(1_796_652_191_123),
        source: "gateway",
        request_id: Some("5b0e9c1e-8a7e-4c43-9d0c-2a7b6c1f0e11"),
        tenant_id: Some(Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111)),
        principal_id: Some(Uuid::from_u128(0xaaaa_aaaa_0000_4000_8000_0000_0000_0002)),
        principal_kind: Some(PrincipalKind::User),
        method: Some("GET"),
        route: Some("msw-vessels-list"),
        path: Some("/msw/vessels"),
        resource: Some("vessel"),
        resource_id: None,
        action: Some("read"),
        outcome: Outcome::Allowed,
        code: None,
        reason: Some("allowed"),
        rules: Rules(None),
        client_ip: Some([127, 0, 0, 1].into()),
        user_agent: Some("wrk"),
        status: Some(200),
        latency_ms: Some(0.412),
        risk_score: None,
        snapshot_version: Some(1),
        after: None,
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sentinel-bench-audit-{}", Uuid::new_v4()));
    let audit = Audit::open(
        &AuditConfig {
            spool_dir: dir.clone(),
            max_spool_bytes: 16 << 30,
            segment_bytes: 64 << 20,
            batch_events: 1000,
            flush: Duration::from_millis(200),
            fsync: Fsync::Never,
        },
        None,
    )
    .unwrap();
    let e = sample();
    println!(
        "one event: {} bytes",
        event::with_line(&e, |l| l.len()).unwrap()
    );
    c.bench_function("audit/serialize", |b| {
        b.iter(|| event::with_line(black_box(&e), |l| l.len()))
    });
    c.bench_function("audit/serialize_and_append", |b| {
        b.iter(|| audit.record(black_box(&e)))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
