//! The Balabit Mouse Dynamics Challenge impostor protocol, replayed through
//! Sentinel's biometric scoring as the endpoint would run it.
//!
//! Run it with `benches/biometrics.sh` (unpacks the data set into /tmp), or:
//!
//! ```text
//! tar -xzf ../shared/datasets/balabit-training.tar.gz -C /tmp/balabit
//! cargo run --release -p sentinel-risk --example balabit_eval -- --data /tmp/balabit/training_files
//! ```
//!
//! Protocol: each user's sessions (sorted by name) are split; the last
//! `--holdout` are held out, the others enrol the user (each replayed as one
//! page session, in batches of at most 1,000 events, through `validate` and
//! `accept`). Profiles that completed enrolment are fitted with the other
//! users as background (what the gateway does when more users enrol). Only
//! held-out data is scored: every held-out session is cut into test pieces
//! (lengths log-uniform between `--min-piece` and `--max-piece` events, like
//! the challenge's short test sessions); each piece is replayed as a new
//! session under its owner's account (genuine) and under the accounts of
//! `--impostor-accounts` other users (impostor), in batches as the collector
//! sends them (`--batch` events or `--flush-ms` of page time, whichever comes
//! first). A piece's score is the last answer's `score`. Printed: global
//! session AUC, EER, FRR and FAR at the shipped thresholds, per length bucket
//! too; the mouse use and events to each replay's first score, the replays
//! that had 20 s of mouse use and no score by then, and AUC and EER of the
//! first scores (the figures at the minimum data a score needs).
//! `--background N` changes how many actions each profile lends to the
//! others' fits; `--set key=value` any `BiometricsConfig` setting.
//!
//! All traffic goes through the [`Replay`] trait: `InProcess` calls the
//! library; `--endpoint HOST:PORT --tokens FILE` posts the same batches to a
//! running gateway's `POST /.sentinel/biometrics` (`Endpoint`: one bearer
//! token per user, `FILE` holding `user token` lines) with the same splits
//! and metrics (`benches/biometrics_endpoint.sh` starts a gateway for it).

use sentinel_risk::biometrics::{
    self, accept, batch::Button, batch::MouseState, validate, Answer, Batch, BiometricsConfig,
    MouseEvent, Profile, SessionState,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where batches go: the library in this process, or (later) the endpoint.
trait Replay {
    /// Posts one batch for `user`; the answer, or the error body's text.
    fn post(&mut self, user: &str, batch: &Batch) -> Result<Answer, String>;
    /// Lets the scorer catch up between enrolment and testing (fits due profiles).
    fn settle(&mut self);
    /// In process only: the session's mean mouse evidence before calibration.
    fn raw_evidence(&self, _user: &str, _session_id: &str) -> Option<f64> {
        None
    }
    /// In process only: the profiles as they stand, one line each.
    fn profiles(&self, _users: &[String]) -> Vec<String> {
        Vec::new()
    }
    /// Fits done and their mean duration (ms), or posts made.
    fn cost(&self) -> String {
        String::new()
    }
}

/// A running gateway: every batch is an HTTP/1.1 `POST /.sentinel/biometrics`
/// with the user's bearer token (plain std TCP, one connection per post).
struct Endpoint {
    addr: String,
    tokens: HashMap<String, String>,
    posts: u64,
}

impl Endpoint {
    fn send(&mut self, user: &str, body: &str) -> Result<(u16, String), String> {
        use std::io::{Read, Write};
        let token = self
            .tokens
            .get(user)
            .ok_or_else(|| format!("no token for {user}"))?;
        let mut s = std::net::TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        let req = format!(
            "POST /.sentinel/biometrics HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        self.posts += 1;
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
        Ok((status, body))
    }
}

impl Replay for Endpoint {
    fn cost(&self) -> String {
        format!("{} posts", self.posts)
    }

    fn post(&mut self, user: &str, batch: &Batch) -> Result<Answer, String> {
        let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
        let (status, text) = self.send(user, &body)?;
        if status != 200 {
            return Err(format!("{status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    /// Fits due profiles: an empty batch per user makes the gateway start
    /// the fits that enrolment of the others made due, and a second waits
    /// for them (a user's batches wait for its profile's fit).
    fn settle(&mut self) {
        let users: Vec<String> = self.tokens.keys().cloned().collect();
        for round in 0..2 {
            for u in &users {
                let b = format!("{{\"session_id\":\"settle-{round}\",\"mouse\":[]}}");
                if let Err(e) = self.send(u, &b) {
                    eprintln!("settle {u}: {e}");
                }
            }
        }
    }
}

struct InProcess {
    cfg: BiometricsConfig,
    profiles: HashMap<String, Profile>,
    sessions: HashMap<(String, String), SessionState>,
    clock_ms: u64,
    fit_ms: Vec<f64>,
    /// Actions each profile lends to other users' fits.
    background: usize,
}

impl InProcess {
    fn new(cfg: BiometricsConfig) -> Self {
        InProcess {
            cfg,
            profiles: HashMap::new(),
            sessions: HashMap::new(),
            clock_ms: 0,
            fit_ms: Vec::new(),
            background: biometrics::profile::BACKGROUND_ACTIONS,
        }
    }

    fn fit(&mut self, user: &str) {
        let background: Vec<_> = self
            .profiles
            .iter()
            .filter(|(u, p)| u.as_str() != user && p.phase != biometrics::Phase::Enrolling)
            .map(|(_, p)| p.background_part_of(self.background))
            .collect();
        let cfg = self.cfg.clone();
        if let Some(p) = self.profiles.get_mut(user) {
            let t = Instant::now();
            if let Err(e) = p.fit(&cfg, &background) {
                eprintln!("fit {user}: {e}");
            }
            self.fit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
}

impl Replay for InProcess {
    fn profiles(&self, users: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for u in users {
            if let Some(p) = self.profiles.get(u) {
                let (m, k) = p.pooled();
                let bytes = biometrics::encode(p).map(|b| b.len()).unwrap_or(0);
                out.push(format!(
                    "profile {u}: phase {:?}, {m} actions pooled, {k} key obs, {} KiB encoded",
                    p.phase,
                    bytes / 1024
                ));
            }
        }
        out
    }

    fn cost(&self) -> String {
        format!(
            "fits {} (mean {:.0} ms)",
            self.fit_ms.len(),
            self.fit_ms.iter().sum::<f64>() / self.fit_ms.len().max(1) as f64
        )
    }

    fn post(&mut self, user: &str, batch: &Batch) -> Result<Answer, String> {
        self.clock_ms += 1000;
        let body = serde_json::to_value(batch).map_err(|e| e.to_string())?;
        let key = (user.to_string(), batch.session_id.clone());
        let session = self.sessions.entry(key).or_default();
        let batch = validate(&body, &session.clock).map_err(|p| format!("{p:?}"))?;
        let profile = self.profiles.entry(user.to_string()).or_default();
        let out = accept(&self.cfg, profile, session, &batch, self.clock_ms);
        if out.fit_due {
            // The gateway fits before the next batch with whatever background it has.
            self.fit(user);
        }
        Ok(out.answer)
    }

    fn raw_evidence(&self, user: &str, session_id: &str) -> Option<f64> {
        self.sessions
            .get(&(user.to_string(), session_id.to_string()))
            .and_then(|s| s.mouse_evidence().0)
    }

    fn settle(&mut self) {
        let n = self
            .profiles
            .values()
            .filter(|p| p.phase != biometrics::Phase::Enrolling)
            .count();
        let due: Vec<String> = self
            .profiles
            .iter()
            .filter(|(_, p)| p.fit_due(n.saturating_sub(1)))
            .map(|(u, _)| u.clone())
            .collect();
        for u in due {
            self.fit(&u);
        }
        self.sessions.clear();
    }
}

/// A user's name and sessions (name, events).
type User = (String, Vec<(String, Vec<MouseEvent>)>);

/// One CSV session as events the endpoint accepts (t in ms, non-decreasing).
fn load_session(path: &Path) -> Vec<MouseEvent> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut last_t = 0.0f64;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            continue;
        }
        let (Ok(t), Ok(x), Ok(y)) = (
            f[1].parse::<f64>(),
            f[4].parse::<f64>(),
            f[5].parse::<f64>(),
        ) else {
            continue;
        };
        let button = match f[2] {
            "Left" => Button::Left,
            "Right" => Button::Right,
            "Scroll" => Button::Scroll,
            "NoButton" => Button::None,
            _ => Button::Middle,
        };
        let state = match f[3] {
            "Move" => MouseState::Move,
            "Drag" => MouseState::Drag,
            "Pressed" => MouseState::Pressed,
            "Released" => MouseState::Released,
            "Up" => MouseState::Up,
            "Down" => MouseState::Down,
            _ => continue,
        };
        let t = (t * 1000.0).max(last_t);
        last_t = t;
        out.push(MouseEvent {
            t,
            x: x.clamp(-65535.0, 65535.0) as i32,
            y: y.clamp(-65535.0, 65535.0) as i32,
            button,
            state,
        });
    }
    out
}

/// What replaying one piece gave.
struct Replayed {
    /// The last answer.
    last: Option<Answer>,
    /// When the first score came: mouse-use time (ms), events sent, and that score.
    first: Option<(f64, usize, f64)>,
    /// Mouse-use time of the whole piece (ms).
    active_ms: f64,
}

/// Mouse-use time: gaps between events longer than a pause (1.5 s) count as
/// 1.5 s, so time away from the mouse is not counted.
const USE_GAP_MS: f64 = 1_500.0;

/// Replays `events` as one session in batches, as the collector sends them:
/// a batch goes when it holds `batch` events or when `flush_ms` of page time
/// have passed since its first event.
fn replay(
    r: &mut dyn Replay,
    user: &str,
    session_id: &str,
    events: &[MouseEvent],
    batch: usize,
    flush_ms: f64,
) -> Replayed {
    let t0 = events.first().map_or(0.0, |e| e.t);
    let mut out = Replayed {
        last: None,
        first: None,
        active_ms: 0.0,
    };
    let mut prev_t = t0;
    let mut sent = 0usize;
    let mut seq = 0u64;
    let mut at = 0usize;
    while at < events.len() {
        let start_t = events[at].t;
        let mut end = at;
        while end < events.len() && end - at < batch && events[end].t - start_t < flush_ms {
            end += 1;
        }
        let chunk = &events[at..end];
        at = end;
        let b = Batch {
            session_id: session_id.to_string(),
            seq: Some(seq),
            mouse: chunk
                .iter()
                .map(|e| MouseEvent { t: e.t - t0, ..*e })
                .collect(),
            keys: Vec::new(),
        };
        seq += 1;
        for e in chunk {
            out.active_ms += (e.t - prev_t).clamp(0.0, USE_GAP_MS);
            prev_t = e.t;
        }
        sent += chunk.len();
        match r.post(user, &b) {
            Ok(a) => {
                if out.first.is_none() {
                    if let Some(s) = a.score {
                        out.first = Some((out.active_ms, sent, s));
                    }
                }
                out.last = Some(a);
            }
            Err(e) => {
                eprintln!("{user}/{session_id}: {e}");
                return out;
            }
        }
    }
    out
}

/// Area under the ROC curve (impostor = positive), ties counted half.
fn auc(genuine: &[f64], impostor: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = genuine
        .iter()
        .map(|&s| (s, false))
        .chain(impostor.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (p, n) = (impostor.len() as f64, genuine.len() as f64);
    if p == 0.0 || n == 0.0 {
        return f64::NAN;
    }
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Equal error rate: where the false-reject and false-accept rates cross.
fn eer(genuine: &[f64], impostor: &[f64]) -> f64 {
    let mut thresholds: Vec<f64> = genuine.iter().chain(impostor).copied().collect();
    thresholds.sort_by(|a, b| a.total_cmp(b));
    let mut best = (f64::INFINITY, 1.0);
    for &t in &thresholds {
        let frr = rate(genuine, |s| s >= t);
        let far = rate(impostor, |s| s < t);
        if (frr - far).abs() < best.0 {
            best = ((frr - far).abs(), (frr + far) / 2.0);
        }
    }
    best.1
}

fn rate(v: &[f64], f: impl Fn(f64) -> bool) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().filter(|&&s| f(s)).count() as f64 / v.len() as f64
}

/// A tiny deterministic generator (the protocol must replay exactly).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Args {
    data: PathBuf,
    holdout: usize,
    min_piece: usize,
    max_piece: usize,
    batch: usize,
    /// Actions each profile lends to other users' fits.
    background: usize,
    /// A test batch goes after this much page time (ms), as the collector sends.
    flush_ms: f64,
    impostor_accounts: usize,
    endpoint: Option<String>,
    /// `--tokens FILE`: `user token` lines for `--endpoint`.
    tokens: Option<PathBuf>,
    /// `--max-pieces N`: score only every k-th piece so that at most N are replayed.
    max_pieces: usize,
    /// `--set key=value`: BiometricsConfig overrides.
    set: serde_json::Map<String, serde_json::Value>,
}

fn args() -> Args {
    let mut a = Args {
        data: PathBuf::from("/tmp/balabit/training_files"),
        holdout: 2,
        min_piece: 300,
        max_piece: 3000,
        batch: 200,
        flush_ms: 2_000.0,
        background: biometrics::profile::BACKGROUND_ACTIONS,
        impostor_accounts: 3,
        endpoint: None,
        tokens: None,
        max_pieces: usize::MAX,
        set: serde_json::Map::new(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        let num = |v: &str| v.parse::<usize>().unwrap_or(0);
        match argv[i].as_str() {
            "--data" => a.data = PathBuf::from(&v),
            "--holdout" => a.holdout = num(&v),
            "--min-piece" => a.min_piece = num(&v).max(1),
            "--max-piece" => a.max_piece = num(&v).max(1),
            "--batch" => a.batch = num(&v).clamp(1, 1000),
            "--background" => a.background = num(&v).max(1),
            "--flush-ms" => a.flush_ms = (num(&v) as f64).max(1.0),
            "--impostor-accounts" => a.impostor_accounts = num(&v),
            "--endpoint" => a.endpoint = Some(v),
            "--tokens" => a.tokens = Some(PathBuf::from(&v)),
            "--max-pieces" => a.max_pieces = num(&v).max(1),
            "--set" => {
                let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                let val = serde_json::from_str(val).unwrap_or(serde_json::Value::Null);
                a.set.insert(k.to_string(), val);
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

fn main() {
    let a = args();
    let cfg: BiometricsConfig =
        match serde_json::from_value(serde_json::Value::Object(a.set.clone())) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("--set: {e}");
                std::process::exit(2);
            }
        };
    if !cfg.check().is_empty() {
        eprintln!("settings: {:?}", cfg.check());
        std::process::exit(2);
    }
    if !a.set.is_empty() {
        println!(
            "settings changed: {}",
            serde_json::Value::Object(a.set.clone())
        );
    }
    let mut users: Vec<User> = Vec::new();
    let Ok(dir) = std::fs::read_dir(&a.data) else {
        eprintln!(
            "cannot read {}: unpack the data set first (benches/biometrics.sh)",
            a.data.display()
        );
        std::process::exit(2);
    };
    let mut names: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for u in names {
        let mut sessions: Vec<PathBuf> = std::fs::read_dir(&u)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        sessions.sort();
        let name = u
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let loaded = sessions
            .iter()
            .map(|s| {
                let sn = s
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (sn, load_session(s))
            })
            .collect();
        users.push((name, loaded));
    }
    let mut in_process = InProcess::new(cfg.clone());
    in_process.background = a.background;
    let mut endpoint = a.endpoint.as_ref().map(|addr| {
        let text = a
            .tokens
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let tokens = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(u, t)| (u.to_string(), t.trim().to_string()))
            .collect();
        Endpoint {
            addr: addr
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            tokens,
            posts: 0,
        }
    });
    let r: &mut dyn Replay = match endpoint.as_mut() {
        Some(e) => {
            println!("replaying through POST /.sentinel/biometrics at {}", e.addr);
            e
        }
        None => &mut in_process,
    };
    let t0 = Instant::now();

    // Enrolment: every session but the held-out ones, each one page session.
    for (u, sessions) in &users {
        let n_enrol = sessions.len().saturating_sub(a.holdout);
        for (sid, ev) in &sessions[..n_enrol] {
            replay(
                &mut *r,
                u,
                &format!("enrol-{sid}"),
                ev,
                a.batch.max(1000),
                f64::INFINITY,
            );
        }
    }
    r.settle();
    let enrol_s = t0.elapsed().as_secs_f64();
    let names: Vec<String> = users.iter().map(|u| u.0.clone()).collect();
    for line in r.profiles(&names) {
        println!("{line}");
    }

    // Test pieces from held-out sessions only.
    let mut rng = Lcg(20);
    let mut pieces: Vec<(usize, Vec<MouseEvent>)> = Vec::new();
    for (ui, (_, sessions)) in users.iter().enumerate() {
        let n_enrol = sessions.len().saturating_sub(a.holdout);
        for (_, ev) in &sessions[n_enrol..] {
            let mut at = 0;
            while at < ev.len() {
                let lo = (a.min_piece as f64).ln();
                let hi = (a.max_piece.max(a.min_piece) as f64).ln();
                let len = (lo + (hi - lo) * rng.next()).exp().round() as usize;
                if at + len > ev.len() {
                    break;
                }
                pieces.push((ui, ev[at..at + len].to_vec()));
                at += len;
            }
        }
    }
    if pieces.len() > a.max_pieces {
        // Every k-th piece (the same ones on every run), for slower targets.
        let k = pieces.len().div_ceil(a.max_pieces);
        pieces = pieces.into_iter().step_by(k).collect();
    }
    let buckets = [0usize, 500, 1000, 2000, usize::MAX];
    let mut genuine: Vec<(f64, usize)> = Vec::new();
    let mut impostor: Vec<(f64, usize)> = Vec::new();
    let mut unscored = 0usize;
    // Every replay: mouse-use ms and events to the first score (if any), and
    // the piece's mouse-use ms; the first score, for figures at the minimum.
    let mut firsts: Vec<(Option<(f64, usize)>, f64)> = Vec::new();
    let mut first_genuine: Vec<f64> = Vec::new();
    let mut first_impostor: Vec<f64> = Vec::new();
    let mut raw: Vec<(f64, bool)> = Vec::new();
    let n_users = users.len();
    for (pi, (owner, ev)) in pieces.iter().enumerate() {
        let mut accounts = vec![(*owner, true)];
        for k in 0..a.impostor_accounts.min(n_users.saturating_sub(1)) {
            let acc = (owner + 1 + (pi + k * 7) % (n_users - 1)) % n_users;
            if acc != *owner && !accounts.iter().any(|(x, _)| *x == acc) {
                accounts.push((acc, false));
            }
        }
        for (acc, own) in accounts {
            let user = &users[acc].0;
            let sid = format!("test-{pi}-{acc}");
            let rep = replay(&mut *r, user, &sid, ev, a.batch, a.flush_ms);
            if let Some(x) = r.raw_evidence(user, &sid) {
                raw.push((x, own));
            }
            firsts.push((rep.first.map(|(ms, n, _)| (ms, n)), rep.active_ms));
            if let Some((_, _, s)) = rep.first {
                if own {
                    first_genuine.push(s);
                } else {
                    first_impostor.push(s);
                }
            }
            match rep.last.and_then(|a| a.score) {
                Some(s) => {
                    if own {
                        genuine.push((s, ev.len()));
                    } else {
                        impostor.push((s, ev.len()));
                    }
                }
                None => unscored += 1,
            }
        }
    }
    let total_s = t0.elapsed().as_secs_f64();
    let g: Vec<f64> = genuine.iter().map(|x| x.0).collect();
    let i: Vec<f64> = impostor.iter().map(|x| x.0).collect();
    println!(
        "pieces: {} genuine, {} impostor scored, {} without a score; enrolment {:.1}s, total {:.1}s; {}",
        g.len(),
        i.len(),
        unscored,
        enrol_s,
        total_s,
        r.cost()
    );
    let mut ms: Vec<f64> = firsts.iter().filter_map(|f| f.0.map(|x| x.0)).collect();
    let mut evs: Vec<f64> = firsts
        .iter()
        .filter_map(|f| f.0.map(|x| x.1 as f64))
        .collect();
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "first score (every replay; mouse-use time, gaps over 1.5 s counted as 1.5 s; batches of {} events or {} ms): median {:.1} s, 90th percentile {:.1} s, 95th {:.1} s, max {:.1} s; events median {:.0}, 90th percentile {:.0}",
        a.batch,
        a.flush_ms,
        pct(&mut ms, 0.5) / 1e3,
        pct(&mut ms, 0.9) / 1e3,
        pct(&mut ms, 0.95) / 1e3,
        pct(&mut ms, 1.0) / 1e3,
        pct(&mut evs, 0.5),
        pct(&mut evs, 0.9)
    );
    let long: Vec<_> = firsts.iter().filter(|f| f.1 >= 20_000.0).collect();
    let late = long
        .iter()
        .filter(|f| f.0.is_none_or(|(ms, _)| ms > 20_000.0))
        .count();
    println!(
        "replays with at least 20 s of mouse use: {}, of which {} had no score within 20 s",
        long.len(),
        late
    );
    println!(
        "at the first score: {} genuine, {} impostor; AUC {:.4}, EER {:.4}, FRR(failed) {:.4}, FRR(not ok) {:.4}",
        first_genuine.len(),
        first_impostor.len(),
        auc(&first_genuine, &first_impostor),
        eer(&first_genuine, &first_impostor),
        rate(&first_genuine, |s| s >= cfg.failed_at),
        rate(&first_genuine, |s| s >= cfg.ok_below)
    );
    println!("global session AUC {:.4}", auc(&g, &i));
    println!("EER {:.4}", eer(&g, &i));
    let rg: Vec<f64> = raw.iter().filter(|x| x.1).map(|x| x.0).collect();
    let ri: Vec<f64> = raw.iter().filter(|x| !x.1).map(|x| x.0).collect();
    if !rg.is_empty() {
        println!(
            "(diagnostic: AUC of the uncalibrated mean action value {:.4})",
            auc(&rg, &ri)
        );
    }
    println!(
        "FRR: failed (score >= {}) {:.4}; not ok (score >= {}) {:.4}",
        cfg.failed_at,
        rate(&g, |s| s >= cfg.failed_at),
        cfg.ok_below,
        rate(&g, |s| s >= cfg.ok_below)
    );
    println!(
        "FAR: ok (score < {}) {:.4}; not failed (score < {}) {:.4}",
        cfg.ok_below,
        rate(&i, |s| s < cfg.ok_below),
        cfg.failed_at,
        rate(&i, |s| s < cfg.failed_at)
    );
    for w in buckets.windows(2) {
        let gb: Vec<f64> = genuine
            .iter()
            .filter(|x| x.1 >= w[0] && x.1 < w[1])
            .map(|x| x.0)
            .collect();
        let ib: Vec<f64> = impostor
            .iter()
            .filter(|x| x.1 >= w[0] && x.1 < w[1])
            .map(|x| x.0)
            .collect();
        if gb.is_empty() {
            continue;
        }
        println!(
            "  pieces of {}..{} events: {} genuine, {} impostor, AUC {:.4}, EER {:.4}, FRR(failed) {:.4}, FAR(ok) {:.4}",
            w[0],
            if w[1] == usize::MAX { "".to_string() } else { w[1].to_string() },
            gb.len(),
            ib.len(),
            auc(&gb, &ib),
            eer(&gb, &ib),
            rate(&gb, |s| s >= cfg.failed_at),
            rate(&ib, |s| s < cfg.ok_below)
        );
    }
}
