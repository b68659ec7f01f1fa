//! Replays a traffic file (models/anomaly/traffic.py) through the anomaly
//! features and a scorer, exactly as a gateway would, and writes one line per
//! scored request: its score, verdict and (with `--features`) its features.
//! The training script reads the features from here, so training and serving
//! share one feature code.
//!
//! ```sh
//! cargo run -p sentinel-risk --example anomaly_replay -- \
//!     --traffic /tmp/traffic.csv --out /tmp/scores.csv \
//!     [--model models/anomaly/model.onnx] [--features] [--all] [--check-tract N]
//! ```
//!
//! `--check-tract N` recomputes every Nth model-scored request's probability
//! with tract's plan (the reference; milliseconds per call for a forest) and
//! fails if the native walk that served it differs by more than 1e-5.
//!
//! Rows outside the `train`/`test` split (warm-up, and the other half's
//! principals) only build baselines; unless `--all`, the rules score them
//! (cheaper than the model, and their scores are not reported).
//!
//! Every route is taken to carry a `risk` slot with the seeds' thresholds: a
//! request above `step_up` is answered `STEP_UP_REQUIRED` and teaches
//! nothing. A normal user who is stepped up is taken to complete the MFA, so
//! their next eight hours of requests carry a fresh MFA; an attacker never
//! does.

use sentinel_risk::anomaly::{
    observe, record_auth_failure, settle, AddressState, AnomalyConfig, Method, OnnxModel, Outcome,
    PrincipalState, RequestFacts, Scorer, Sensitivity, Thresholds, Verdict, FEATURE_NAMES,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::IpAddr;

const MFA_SECONDS: u64 = 8 * 3600;

struct Args {
    traffic: String,
    out: String,
    model: Option<String>,
    features: bool,
    all: bool,
    check_tract: u64,
}

/// Largest difference allowed between the served probability and tract's.
const TRACT_TOLERANCE: f32 = 1e-5;

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        traffic: String::new(),
        out: String::new(),
        model: None,
        features: false,
        all: false,
        check_tract: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--traffic" => a.traffic = it.next().unwrap_or_default(),
            "--out" => a.out = it.next().unwrap_or_default(),
            "--model" => a.model = it.next(),
            "--features" => a.features = true,
            "--all" => a.all = true,
            "--check-tract" => a.check_tract = it.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument `{other}`"),
        }
    }
    if a.traffic.is_empty() || a.out.is_empty() {
        anyhow::bail!(
            "usage: anomaly_replay --traffic FILE --out FILE [--model FILE] [--features] [--all] [--check-tract N]"
        );
    }
    Ok(a)
}

fn sensitivity(s: &str) -> Sensitivity {
    match s {
        "low" => Sensitivity::Low,
        "high" => Sensitivity::High,
        "critical" => Sensitivity::Critical,
        _ => Sensitivity::Normal,
    }
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let (scorer, reference) = match &args.model {
        Some(path) => {
            let bytes = std::fs::read(path)?;
            let model =
                OnnxModel::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            eprintln!("model engine: {}", model.engine().as_str());
            (Scorer::with_model(model.clone()), Some(model))
        }
        None => (Scorer::rules(), None),
    };
    eprintln!("scorer: {}", scorer.kind().as_str());
    let (mut checked, mut worst) = (0u64, 0.0f32);
    let rules = Scorer::rules();
    let config = AnomalyConfig::default();
    let thresholds = Thresholds::default();

    let input = BufReader::new(std::fs::File::open(&args.traffic)?);
    let mut out = BufWriter::new(std::fs::File::create(&args.out)?);
    write!(
        out,
        "ts,principal,label,scenario,session,split,score,by,verdict"
    )?;
    if args.features {
        for name in FEATURE_NAMES {
            write!(out, ",{name}")?;
        }
    }
    writeln!(out)?;

    let mut principals: HashMap<String, PrincipalState> = HashMap::new();
    let mut addresses: HashMap<IpAddr, AddressState> = HashMap::new();
    let mut mfa_until: HashMap<String, u64> = HashMap::new();
    let mut lines = input.lines();
    let header = lines.next().transpose()?.unwrap_or_default();
    anyhow::ensure!(header.starts_with("ts,kind,"), "not a traffic file");
    let mut n = 0u64;
    for line in lines {
        let line = line?;
        let c: Vec<&str> = line.split(',').collect();
        let [ts, kind, _tenant, principal, sa, client, method, route, resource, sens, status, bio, label, scenario, session, split] =
            c[..]
        else {
            anyhow::bail!("bad line: {line}");
        };
        let now: u64 = ts.parse()?;
        let ip: IpAddr = client.parse()?;
        if kind == "auth_failure" {
            let a = addresses.remove(&ip).unwrap_or_default();
            addresses.insert(ip, a.record_auth_failure(now, &config));
            if !principal.is_empty() {
                let p = principals.remove(principal).unwrap_or_default();
                principals.insert(principal.to_owned(), record_auth_failure(p, now, &config));
            }
            continue;
        }
        let (a, signals) = addresses
            .remove(&ip)
            .unwrap_or_default()
            .observe(principal, now, &config);
        addresses.insert(ip, a);
        let facts = RequestFacts {
            client: ip,
            route,
            resource: (!resource.is_empty()).then_some(resource),
            method: Method::from_http(method),
            sensitivity: sensitivity(sens),
            service_account: sa == "1",
            biometric: bio.parse().ok(),
            mfa: mfa_until.get(principal).is_some_and(|&t| now < t),
            address: signals,
        };
        let state = principals.remove(principal).unwrap_or_default();
        let (state, features) = observe(state, &facts, now, &config);
        let by_model = !split.is_empty() || args.all;
        let score = if by_model {
            scorer.score(&features)
        } else {
            rules.score(&features)
        };
        if let Some(model) = reference
            .as_ref()
            .filter(|_| by_model && args.check_tract > 0)
        {
            if n.is_multiple_of(args.check_tract) {
                let served = model.raw(&features)?;
                let tract = model.raw_tract(&features)?;
                worst = worst.max((served - tract).abs());
                checked += 1;
            }
        }
        let verdict = thresholds.verdict(score.value);
        let outcome = match verdict {
            Verdict::Block => Outcome::Blocked,
            Verdict::StepUp => Outcome::SteppedUp,
            _ if status == "403" => Outcome::Denied,
            _ => Outcome::Served,
        };
        if verdict >= Verdict::StepUp && label == "0" {
            mfa_until.insert(principal.to_owned(), now + MFA_SECONDS);
        }
        let state = settle(state, &facts, now, score.value, outcome, &config);
        principals.insert(principal.to_owned(), state);
        if split.is_empty() && !args.all {
            continue;
        }
        n += 1;
        let verdict = match verdict {
            Verdict::Normal => "normal",
            Verdict::Anomalous => "anomalous",
            Verdict::StepUp => "step_up",
            Verdict::Block => "block",
        };
        write!(
            out,
            "{now},{principal},{label},{scenario},{session},{split},{:.6},{},{verdict}",
            score.value,
            score.by.as_str()
        )?;
        if args.features {
            for v in features.values {
                write!(out, ",{v}")?;
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    eprintln!("{n} scored requests -> {}", args.out);
    if checked > 0 {
        eprintln!("tract reference: {checked} requests, max |served - tract| {worst:e}");
        anyhow::ensure!(
            worst <= TRACT_TOLERANCE,
            "the served probability differs from tract's by {worst}"
        );
    }
    Ok(())
}
