//! Per-request cost of anomaly scoring: address update, feature update,
//! inference (the committed ONNX model through tract, or the rule fallback)
//! and settle, as the gateway will run them.
//!
//! ```sh
//! taskset -c 1 cargo bench -p sentinel-risk --bench anomaly
//! ```
//!
//! Criterion's estimates are followed by a per-call latency distribution
//! (p50, p99, p99.9) over 200,000 calls of each scorer. `onnx` is the
//! committed model as the gateway runs it (the tree ensemble walked
//! natively); `onnx_tract_reference_inference_only` is the same model through
//! tract's plan, the reference the native walk is checked against.
//! `ANOMALY_BENCH_MODEL=path.onnx` adds another model file (an MLP, say) as
//! `extra`.

use criterion::{black_box, BatchSize, Criterion};
use sentinel_risk::anomaly::{
    observe, settle, AddressState, AnomalyConfig, Features, Method, OnnxModel, Outcome,
    PrincipalState, RequestFacts, Scorer, Sensitivity, Thresholds, Verdict,
};
use std::net::IpAddr;
use std::time::Instant;

const MONDAY: u64 = 1_767_571_200;

struct World {
    principal: PrincipalState,
    address: AddressState,
    config: AnomalyConfig,
    resources: Vec<String>,
    clients: [IpAddr; 2],
}

/// A principal with two weeks of office hours behind it.
fn world(scorer: &Scorer) -> World {
    let mut w = World {
        principal: PrincipalState::default(),
        address: AddressState::default(),
        config: AnomalyConfig::default(),
        resources: (0..64).map(|i| format!("vessel-{i}")).collect(),
        clients: [
            "192.0.2.17".parse().unwrap_or(IpAddr::from([0; 4])),
            "203.0.113.5".parse().unwrap_or(IpAddr::from([0; 4])),
        ],
    };
    for i in 0..2000u64 {
        let now = MONDAY + (i / 100) * 86_400 + 9 * 3600 + (i % 100) * 250;
        request(&mut w, scorer, now, i);
    }
    w
}

/// One request through the whole anomaly path.
fn request(w: &mut World, scorer: &Scorer, now: u64, i: u64) -> f32 {
    let client = w.clients[usize::from(i.is_multiple_of(97))];
    let (address, signals) = std::mem::take(&mut w.address).observe("T01-u001", now, &w.config);
    w.address = address;
    let facts = RequestFacts {
        client,
        route: "/vessels/{id}",
        resource: w.resources.get((i % 64) as usize).map(String::as_str),
        method: if i.is_multiple_of(5) {
            Method::Write
        } else {
            Method::Read
        },
        sensitivity: Sensitivity::Normal,
        service_account: false,
        biometric: None,
        mfa: false,
        address: signals,
    };
    let (state, features) = observe(std::mem::take(&mut w.principal), &facts, now, &w.config);
    let score = scorer.score(&features);
    let outcome = match Thresholds::default().verdict(score.value) {
        Verdict::Block => Outcome::Blocked,
        Verdict::StepUp => Outcome::SteppedUp,
        _ => Outcome::Served,
    };
    w.principal = settle(state, &facts, now, score.value, outcome, &w.config);
    score.value
}

fn scorers() -> Vec<(&'static str, Scorer)> {
    let mut all = vec![("rules", Scorer::rules())];
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/anomaly/model.onnx");
    match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| OnnxModel::from_bytes(&b).map_err(|e| e.to_string()))
    {
        Ok(model) => all.push(("onnx", Scorer::with_model(model))),
        Err(e) => eprintln!("no model benchmarked ({path}: {e})"),
    }
    if let Ok(extra) = std::env::var("ANOMALY_BENCH_MODEL") {
        match std::fs::read(&extra)
            .map_err(|e| e.to_string())
            .and_then(|b| OnnxModel::from_bytes(&b).map_err(|e| e.to_string()))
        {
            Ok(model) => {
                eprintln!("extra: {extra} ({})", model.engine().as_str());
                all.push(("extra", Scorer::with_model(model)));
            }
            Err(e) => eprintln!("ANOMALY_BENCH_MODEL {extra}: {e}"),
        }
    }
    all
}

/// The committed model through tract's plan (milliseconds per call, so a
/// short criterion run and no latency distribution).
fn tract_reference(c: &mut Criterion, features: Features) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/anomaly/model.onnx");
    let Ok(model) = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| OnnxModel::from_bytes(&b).map_err(|e| e.to_string()))
    else {
        return;
    };
    let mut group = c.benchmark_group("anomaly_request");
    group.sample_size(10);
    group.bench_function("onnx_tract_reference_inference_only", |b| {
        b.iter(|| black_box(model.raw_tract(&features)))
    });
    group.finish();
}

/// The features of one ordinary request of the bench's principal.
fn typical_features(scorer: &Scorer) -> Features {
    let w = world(scorer);
    let facts = RequestFacts {
        client: w.clients[0],
        route: "/vessels/{id}",
        resource: Some("vessel-1"),
        method: Method::Read,
        sensitivity: Sensitivity::Normal,
        service_account: false,
        biometric: None,
        mfa: false,
        address: Default::default(),
    };
    observe(w.principal, &facts, MONDAY + 15 * 86_400, &w.config).1
}

fn criterion_benches(c: &mut Criterion, scorers: &[(&'static str, Scorer)]) {
    let mut group = c.benchmark_group("anomaly_request");
    for (name, scorer) in scorers {
        let mut w = world(scorer);
        let mut i = 10_000u64;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i += 1;
                black_box(request(
                    &mut w,
                    scorer,
                    MONDAY + 15 * 86_400 + 9 * 3600 + i / 4,
                    i,
                ))
            })
        });
        let features = typical_features(scorer);
        group.bench_function(format!("{name}_inference_only"), |b| {
            b.iter_batched(
                || features,
                |f| black_box(scorer.score(&f)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn latency(scorers: &[(&'static str, Scorer)]) {
    for (name, scorer) in scorers {
        let mut w = world(scorer);
        let mut samples = Vec::with_capacity(200_000);
        for i in 0..200_000u64 {
            let now = MONDAY + 15 * 86_400 + 9 * 3600 + i / 4;
            let t = Instant::now();
            black_box(request(&mut w, scorer, now, i));
            samples.push(t.elapsed().as_nanos() as u64);
        }
        samples.sort_unstable();
        let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "anomaly_request/{name}: per call p50 {} ns, p99 {} ns, p99.9 {} ns (200000 calls, Instant overhead included)",
            q(0.5),
            q(0.99),
            q(0.999)
        );
    }
}

fn main() {
    let scorers = scorers();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &scorers);
    tract_reference(&mut c, typical_features(&Scorer::rules()));
    c.final_summary();
    latency(&scorers);
}
