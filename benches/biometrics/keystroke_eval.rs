//! Keystroke EER on fixed-text typing, with the CMU benchmark's protocol
//! (Killourhy and Maxion 2009, "Comparing anomaly-detection algorithms for
//! keystroke dynamics"): each subject types the same password 400 times in
//! 8 sessions; the first 200 repetitions enrol, the last 200 are the
//! genuine tests and the first 5 repetitions of every other subject the
//! impostor tests; the figure is the mean of the per-subject EERs.
//!
//! Run it with `benches/biometrics.sh`, or:
//!
//! ```text
//! cargo run --release -p sentinel-risk --example keystroke_eval            # generated data
//! cargo run --release -p sentinel-risk --example keystroke_eval -- --cmu DSL-StrongPasswordData.csv
//! ```
//!
//! The CMU file is not reachable from this machine, so without `--cmu` the
//! data is GENERATED: 51 subjects typing `.tie5Roanl` + Return, with timing
//! laws set from the CMU paper's published summary figures (hold ≈ 90 ms,
//! down-down ≈ 250 ms, within-subject spread, per-session drift, practice,
//! occasional hesitations). A figure on generated data checks the pipeline
//! and the detector against a stated model of typing; it is not a claim about
//! real typists.
//!
//! Every repetition is posted as one page session (11 key presses, 31 timing
//! observations) through `validate` and `accept`, the enrolment repetitions
//! as 4 sessions of 50, exactly as the endpoint would see them.

use sentinel_risk::biometrics::{
    self, accept, validate, Answer, Batch, BiometricsConfig, KeyEvent, Profile, SessionState,
};
use std::collections::HashMap;

const KEYS: [&str; 11] = [
    "period", "t", "i", "e", "five", "Shift.r", "o", "a", "n", "l", "Return",
];
const REPS: usize = 400;

/// One repetition: (hold, down-down to next) in ms per key.
type Rep = Vec<(f64, f64)>;

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Generated subjects (see the module comment for what this is and is not).
fn generate(subjects: usize, seed: u64) -> Vec<Vec<Rep>> {
    let mut rng = Rng(seed);
    // Shared difficulty of each digraph (some key pairs are slow for everyone).
    let difficulty: Vec<f64> = (0..KEYS.len())
        .map(|_| (0.30 * rng.normal()).exp())
        .collect();
    let key_hold: Vec<f64> = (0..KEYS.len())
        .map(|_| (0.12 * rng.normal()).exp())
        .collect();
    (0..subjects)
        .map(|_| {
            let hold = 90.0 * (0.22 * rng.normal()).exp();
            let speed = 250.0 * (0.35 * rng.normal()).exp();
            let own_h: Vec<f64> = (0..KEYS.len())
                .map(|_| (0.15 * rng.normal()).exp())
                .collect();
            let own_dd: Vec<f64> = (0..KEYS.len())
                .map(|_| (0.25 * rng.normal()).exp())
                .collect();
            let sd_h = 0.12 + 0.08 * rng.uniform();
            let sd_dd = 0.20 + 0.15 * rng.uniform();
            let mut session_drift = 1.0;
            (0..REPS)
                .map(|r| {
                    if r % 50 == 0 {
                        session_drift = (0.06 * rng.normal()).exp();
                    }
                    let practice = 1.0 - 0.15 * (r as f64 / REPS as f64);
                    (0..KEYS.len())
                        .map(|k| {
                            let h = hold * key_hold[k] * own_h[k] * (sd_h * rng.normal()).exp();
                            let mut dd = speed
                                * difficulty[k]
                                * own_dd[k]
                                * practice
                                * session_drift
                                * (sd_dd * rng.normal()).exp();
                            if rng.uniform() < 0.02 {
                                dd *= 2.5; // a hesitation
                            }
                            (h.max(5.0), dd.max(h * 0.3).max(10.0))
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Reads the CMU `DSL-StrongPasswordData.csv` (subject, sessionIndex, rep,
/// then H / DD / UD columns in seconds).
fn read_cmu(path: &str) -> Vec<Vec<Rep>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("cannot read {path}");
        std::process::exit(2);
    };
    let mut by_subject: Vec<(String, Vec<Rep>)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let v: Vec<f64> = f.iter().skip(3).filter_map(|x| x.parse().ok()).collect();
        if v.len() != 31 {
            continue;
        }
        // Columns: H.k0, DD.k0.k1, UD.k0.k1, H.k1, ... , H.Return
        let rep: Rep = (0..11)
            .map(|k| {
                (
                    v[3 * k] * 1000.0,
                    if k < 10 { v[3 * k + 1] * 1000.0 } else { 0.0 },
                )
            })
            .collect();
        match by_subject.last_mut() {
            Some((s, reps)) if s == f[0] => reps.push(rep),
            _ => by_subject.push((f[0].to_string(), vec![rep])),
        }
    }
    by_subject.into_iter().map(|(_, r)| r).collect()
}

/// A repetition's key events starting at `t0`.
fn events(rep: &Rep, t0: f64) -> (Vec<KeyEvent>, f64) {
    let mut t = t0;
    let mut out = Vec::new();
    for (k, (h, dd)) in rep.iter().enumerate() {
        out.push(KeyEvent {
            field: "password".into(),
            key: KEYS[k].into(),
            down: t,
            up: t + h,
        });
        t += dd;
    }
    (out, t + 2000.0)
}

fn post(
    cfg: &BiometricsConfig,
    profile: &mut Profile,
    sessions: &mut HashMap<String, SessionState>,
    sid: &str,
    keys: Vec<KeyEvent>,
) -> Option<Answer> {
    let batch = Batch {
        session_id: sid.into(),
        seq: None,
        mouse: Vec::new(),
        keys,
    };
    let body = serde_json::to_value(&batch).ok()?;
    let s = sessions.entry(sid.to_string()).or_default();
    let batch = validate(&body, &s.clock).ok()?;
    Some(accept(cfg, profile, s, &batch, 0).answer)
}

fn eer(genuine: &[f64], impostor: &[f64]) -> f64 {
    let mut ts: Vec<f64> = genuine.iter().chain(impostor).copied().collect();
    ts.sort_by(|a, b| a.total_cmp(b));
    let mut best = (f64::INFINITY, 1.0);
    for &t in &ts {
        let frr = genuine.iter().filter(|&&s| s >= t).count() as f64 / genuine.len() as f64;
        let far = impostor.iter().filter(|&&s| s < t).count() as f64 / impostor.len() as f64;
        if (frr - far).abs() < best.0 {
            best = ((frr - far).abs(), (frr + far) / 2.0);
        }
    }
    best.1
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let (data, source) = match argv.iter().position(|a| a == "--cmu") {
        Some(i) => (
            read_cmu(argv.get(i + 1).map_or("", String::as_str)),
            "CMU file",
        ),
        None => (
            generate(51, 2009),
            "GENERATED data (no keystroke data set is reachable here)",
        ),
    };
    let cfg = BiometricsConfig::default();
    // Enrol every subject: repetitions 0..200 as 4 sessions of 50.
    let mut profiles: Vec<Profile> = Vec::new();
    for (s, reps) in data.iter().enumerate() {
        let mut p = Profile::default();
        let mut sessions = HashMap::new();
        for session in 0..4 {
            let mut t = 0.0;
            let mut keys = Vec::new();
            for rep in &reps[session * 50..(session + 1) * 50] {
                let (ev, next) = events(rep, t);
                keys.extend(ev);
                t = next;
            }
            post(
                &cfg,
                &mut p,
                &mut sessions,
                &format!("enrol-{s}-{session}"),
                keys,
            );
        }
        profiles.push(p);
    }
    let parts: Vec<_> = profiles.iter().map(Profile::background_part).collect();
    for (s, p) in profiles.iter_mut().enumerate() {
        let others: Vec<_> = parts
            .iter()
            .enumerate()
            .filter(|(o, _)| *o != s)
            .map(|(_, b)| b.clone())
            .collect();
        if let Err(e) = p.fit(&cfg, &others) {
            eprintln!("subject {s}: {e}");
        }
    }
    let mut eers = Vec::new();
    let (mut all_g, mut all_i) = (Vec::new(), Vec::new());
    let mut unscored = 0;
    for (s, p) in profiles.iter_mut().enumerate() {
        let mut sessions = HashMap::new();
        let mut score = |p: &mut Profile, sid: String, rep: &Rep| {
            let (ev, _) = events(rep, 0.0);
            post(&cfg, p, &mut sessions, &sid, ev).and_then(|a| a.keystroke_score)
        };
        let mut g = Vec::new();
        for (r, rep) in data[s][200..].iter().enumerate() {
            match score(p, format!("g-{r}"), rep) {
                Some(x) => g.push(x),
                None => unscored += 1,
            }
        }
        let mut i = Vec::new();
        for (o, reps) in data.iter().enumerate().filter(|(o, _)| *o != s) {
            for (r, rep) in reps[..5].iter().enumerate() {
                match score(p, format!("i-{o}-{r}"), rep) {
                    Some(x) => i.push(x),
                    None => unscored += 1,
                }
            }
        }
        if !g.is_empty() && !i.is_empty() {
            eers.push(eer(&g, &i));
        }
        all_g.extend(g);
        all_i.extend(i);
    }
    let mean = eers.iter().sum::<f64>() / eers.len().max(1) as f64;
    let sd =
        (eers.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / eers.len().max(1) as f64).sqrt();
    println!("keystroke, {source}: {} subjects", data.len());
    println!(
        "mean per-subject EER {mean:.4} (sd {sd:.4}); global EER {:.4}",
        eer(&all_g, &all_i)
    );
    println!(
        "{} genuine and {} impostor repetitions scored, {unscored} without a score",
        all_g.len(),
        all_i.len()
    );
    let bytes = profiles
        .first()
        .and_then(|p| biometrics::encode(p).ok())
        .map_or(0, |b| b.len());
    println!("profile size {} KiB encoded", bytes / 1024);
}
