//! Cost of scoring one telemetry batch against a fitted profile: 1,000 mouse
//! events, and 200 key events (validation of the parsed body included, as
//! the endpoint runs it; JSON parsing is the gateway's and not included).
//!
//! Run: `flock /tmp/cargo-build.lock cargo bench -p sentinel-risk --bench biometrics --no-run`
//! then `cargo bench -p sentinel-risk --bench biometrics -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sentinel_risk::biometrics::{
    accept, validate, Batch, BiometricsConfig, KeyEvent, Profile, SessionState,
};
use support::{gestures, style};

fn enrolled(cfg: &BiometricsConfig) -> (Profile, Vec<Profile>) {
    let mut all: Vec<Profile> = Vec::new();
    for u in 0..4u64 {
        let mut p = Profile::default();
        for s in 0..2u64 {
            let mut session = SessionState::default();
            let ev = gestures(style(u), 10 * u + s, 300, 0.0);
            for (i, chunk) in ev.chunks(1000).enumerate() {
                let keys: Vec<KeyEvent> = typing(u, i as f64 * 1e6, 200);
                let b = Batch {
                    session_id: "e".into(),
                    seq: Some(i as u64),
                    mouse: chunk.to_vec(),
                    keys,
                };
                accept(cfg, &mut p, &mut session, &b, 0);
            }
        }
        all.push(p);
    }
    let parts: Vec<_> = all.iter().map(Profile::background_part).collect();
    let mut owner = all.remove(0);
    if let Err(e) = owner.fit(cfg, &parts[1..]) {
        eprintln!("fit: {e}");
        std::process::exit(1);
    }
    (owner, all)
}

fn typing(user: u64, t0: f64, n: usize) -> Vec<KeyEvent> {
    let mut r = support::Rng(user + 1);
    let mut t = t0;
    (0..n)
        .map(|i| {
            let k = (i * 5 + user as usize) % 20;
            let e = KeyEvent {
                field: "f1".into(),
                key: format!("k{k}"),
                down: t,
                up: t + 70.0 + 40.0 * r.uniform(),
            };
            t += 120.0 + 150.0 * r.uniform();
            e
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cfg = BiometricsConfig::default();
    let (mut profile, _) = enrolled(&cfg);
    // A session already scored, then one more batch of each kind.
    let mut warm = SessionState::default();
    let first = gestures(style(0), 999, 60, 0.0);
    let b = Batch {
        session_id: "s".into(),
        seq: Some(0),
        mouse: first.clone(),
        keys: typing(0, 0.0, 200),
    };
    accept(&cfg, &mut profile, &mut warm, &b, 0);
    let t0 = first.last().map_or(0.0, |e| e.t) + 10.0;
    let mut mouse = gestures(style(0), 1000, 60, t0);
    mouse.truncate(1000);
    let mouse_body = serde_json::to_value(Batch {
        session_id: "s".into(),
        seq: Some(1),
        mouse,
        keys: Vec::new(),
    })
    .unwrap_or_default();
    let keys_body = serde_json::to_value(Batch {
        session_id: "s".into(),
        seq: Some(1),
        mouse: Vec::new(),
        keys: typing(0, 1e7, 200),
    })
    .unwrap_or_default();

    let mut group = c.benchmark_group("biometrics");
    for (name, body) in [
        ("mouse_1000_events", &mouse_body),
        ("keys_200_events", &keys_body),
    ] {
        group.bench_function(name, |bench| {
            bench.iter_batched_ref(
                || warm.clone(),
                |session| match validate(body, &session.clock) {
                    Ok(batch) => accept(&cfg, &mut profile, session, &batch, 1).answer.score,
                    Err(_) => None,
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
