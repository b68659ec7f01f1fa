//! Biometric scoring: the validator (every problem, table-driven), the
//! extraction invariants (properties), enrolment and scoring on synthetic
//! users, adaptation, and the compact encoding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use sentinel_risk::biometrics::batch::{Button, MouseState, MAX_EVENTS, MAX_PROBLEMS};
use sentinel_risk::biometrics::mouse::{MouseTracker, MAX_POINTS};
use sentinel_risk::biometrics::profile::combine;
use sentinel_risk::biometrics::session::{SeqWindow, KEPT_ACTIONS, KEPT_KEY_OBS};
use sentinel_risk::biometrics::{
    self, accept, validate, Batch, BiometricsConfig, Clock, KeyEvent, MouseEvent, Phase, Profile,
    SessionState, Status,
};
use serde_json::{json, Value};
use support::{gestures, style};

fn good() -> Value {
    json!({"session_id": "s-1f3a",
        "mouse": [{"t": 1043.5, "x": 1043, "y": 410, "button": "none", "state": "move"},
                  {"t": 1050.0, "x": -20, "y": 65535, "button": "scroll", "state": "down"}],
        "keys": [{"field": "f1", "key": "k9", "down": 2001.0, "up": 2085.5}]})
}

/// `good()` with `path` (like `mouse.0.t`) set to `value`.
fn with(path: &str, value: Value) -> Value {
    let mut v = good();
    let mut at = &mut v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        at = match p.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*p],
        };
    }
    let last = parts[parts.len() - 1];
    if value.is_null() && last != "seq" {
        if let Some(o) = at.as_object_mut() {
            o.remove(last);
        }
    } else if let Ok(i) = last.parse::<usize>() {
        at[i] = value;
    } else {
        at[last] = value;
    }
    v
}

fn fields(body: &Value, clock: &Clock) -> Vec<String> {
    match validate(body, clock) {
        Ok(_) => Vec::new(),
        Err(p) => p.into_iter().map(|p| p.field).collect(),
    }
}

#[test]
fn the_spec_example_is_valid() {
    let b = validate(&good(), &Clock::default()).expect("valid");
    assert_eq!(b.session_id, "s-1f3a");
    assert_eq!(b.mouse.len(), 2);
    assert_eq!(b.mouse[1].button, Button::Scroll);
    assert_eq!(b.mouse[1].state, MouseState::Down);
    assert_eq!(b.keys[0].up, 2085.5);
    // And the typed batch serializes back to an equivalent body.
    let again = serde_json::to_value(&b).expect("serializes");
    assert_eq!(validate(&again, &Clock::default()), Ok(b));
}

#[test]
fn every_bad_input_is_named_with_its_location() {
    let too_many: Vec<Value> = (0..=MAX_EVENTS)
        .map(|i| json!({"t": i, "x": 0, "y": 0, "button": "none", "state": "move"}))
        .collect();
    let table: Vec<(&str, Value, &str)> = vec![
        ("session_id", Value::Null, "session_id"),
        ("session_id", json!(""), "session_id"),
        ("session_id", json!("a b"), "session_id"),
        ("session_id", json!("x".repeat(65)), "session_id"),
        ("session_id", json!(12), "session_id"),
        ("seq", json!(-1), "seq"),
        ("seq", json!(1.5), "seq"),
        ("extra", json!(1), "extra"),
        ("mouse", json!({}), "mouse"),
        ("mouse", Value::Array(too_many), "mouse"),
        ("mouse.0.t", json!(-1), "mouse[0].t"),
        ("mouse.0.t", json!(1e300), "mouse[0].t"),
        ("mouse.0.t", json!("12"), "mouse[0].t"),
        ("mouse.0.t", Value::Null, "mouse[0].t"),
        ("mouse.0.x", json!(1.5), "mouse[0].x"),
        ("mouse.0.x", json!(65536), "mouse[0].x"),
        ("mouse.0.y", json!(-65536), "mouse[0].y"),
        ("mouse.0.y", json!(1e20), "mouse[0].y"),
        ("mouse.0.button", json!("thumb"), "mouse[0].button"),
        ("mouse.0.button", json!(1), "mouse[0].button"),
        ("mouse.0.state", json!("hover"), "mouse[0].state"),
        ("mouse.0.state", json!("up"), "mouse[0].state"),
        ("mouse.1.button", json!("left"), "mouse[1].state"),
        ("mouse.0.z", json!(1), "mouse[0].z"),
        ("mouse.0", json!([1, 2]), "mouse[0]"),
        ("mouse.1.t", json!(1000), "mouse[1].t"),
        ("keys.0.up", json!(2000), "keys[0].up"),
        ("keys.0.down", json!(f64::MAX), "keys[0].down"),
        ("keys.0.key", json!(""), "keys[0].key"),
        ("keys.0.key", json!("a b"), "keys[0].key"),
        ("keys.0.field", json!("é"), "keys[0].field"),
        ("keys.0.field", Value::Null, "keys[0].field"),
        ("keys", json!("k"), "keys"),
    ];
    for (path, value, field) in table {
        let body = with(path, value.clone());
        let got = fields(&body, &Clock::default());
        assert!(
            got.iter().any(|f| f == field),
            "{path} = {value}: expected a problem at {field}, got {got:?}"
        );
    }
    assert_eq!(fields(&json!([1]), &Clock::default()), vec![String::new()]);
}

#[test]
fn all_problems_come_at_once_and_are_bounded() {
    let body = json!({"session_id": "", "seq": "x",
        "mouse": [{"t": -1, "x": 0.5, "y": 0, "button": "b", "state": "s"}],
        "keys": [{"field": "f", "key": "k", "down": 5, "up": 4}]});
    let got = fields(&body, &Clock::default());
    for f in [
        "session_id",
        "seq",
        "mouse[0].t",
        "mouse[0].x",
        "mouse[0].button",
        "mouse[0].state",
        "keys[0].up",
    ] {
        assert!(got.iter().any(|g| g == f), "missing {f} in {got:?}");
    }
    let many: Vec<Value> = (0..500)
        .map(|_| json!({"t": -1, "x": 0.5, "y": 0, "button": "b", "state": "s"}))
        .collect();
    let got = fields(
        &json!({"session_id": "s", "mouse": many}),
        &Clock::default(),
    );
    assert_eq!(got.len(), MAX_PROBLEMS + 1, "capped with one closing line");
}

#[test]
fn time_may_not_go_back_across_batches_of_a_session() {
    let clock = Clock {
        mouse_t: Some(5000.0),
        key_down: Some(3000.0),
    };
    let got = fields(&good(), &clock);
    assert!(got.contains(&"mouse[0].t".to_string()), "{got:?}");
    assert!(got.contains(&"keys[0].down".to_string()), "{got:?}");
    // Equal times are allowed (non-decreasing).
    let clock = Clock {
        mouse_t: Some(1043.5),
        key_down: Some(2001.0),
    };
    assert!(fields(&good(), &clock).is_empty());
    // The clock moves with each accepted batch.
    let b = validate(&good(), &Clock::default()).expect("valid");
    let next = Clock::default().after(&b);
    assert_eq!(next.mouse_t, Some(1050.0));
    assert_eq!(next.key_down, Some(2001.0));
}

#[test]
fn a_retried_seq_is_recognised() {
    let mut w = SeqWindow::default();
    assert!(!w.seen(0));
    w.mark(0);
    w.mark(1);
    w.mark(3);
    assert!(w.seen(0) && w.seen(1) && w.seen(3));
    assert!(!w.seen(2) && !w.seen(4));
    w.mark(2);
    assert!(w.seen(2));
    w.mark(200);
    assert!(
        w.seen(200) && !w.seen(199) && w.seen(3),
        "far below the window counts as seen"
    );
}

fn mouse_strategy() -> impl Strategy<Value = Vec<MouseEvent>> {
    let event = (
        0.0f64..3000.0,
        -65535i32..=65535,
        -65535i32..=65535,
        0usize..8,
    );
    prop::collection::vec(event, 0..600).prop_map(|raw| {
        let mut t = 0.0;
        raw.into_iter()
            .map(|(dt, x, y, kind)| {
                t += if kind == 7 { 0.0 } else { dt };
                let (button, state) = match kind {
                    0 | 7 => (Button::None, MouseState::Move),
                    1 => (Button::None, MouseState::Drag),
                    2 => (Button::Left, MouseState::Pressed),
                    3 => (Button::Left, MouseState::Released),
                    4 => (Button::Right, MouseState::Pressed),
                    5 => (Button::Scroll, MouseState::Up),
                    _ => (Button::None, MouseState::Move),
                };
                MouseEvent {
                    t,
                    x,
                    y,
                    button,
                    state,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn extraction_never_yields_nan_and_stays_bounded(events in mouse_strategy(), split in 0usize..600) {
        let mut tracker = MouseTracker::default();
        let mut out = Vec::new();
        let split = split.min(events.len());
        tracker.absorb(&events[..split], &mut out);
        prop_assert!(tracker.pending_points() <= MAX_POINTS);
        tracker.absorb(&events[split..], &mut out);
        prop_assert!(tracker.pending_points() <= MAX_POINTS);
        for a in &out {
            prop_assert!(a.0.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn a_batch_split_anywhere_gives_the_same_actions(events in mouse_strategy(), split in 0usize..600) {
        let mut whole = Vec::new();
        MouseTracker::default().absorb(&events, &mut whole);
        let mut parts = Vec::new();
        let mut tracker = MouseTracker::default();
        let split = split.min(events.len());
        tracker.absorb(&events[..split], &mut parts);
        tracker.absorb(&events[split..], &mut parts);
        prop_assert_eq!(whole, parts);
    }

    #[test]
    fn the_validator_never_panics_on_any_json(s in "\\PC{0,200}") {
        if let Ok(v) = serde_json::from_str::<Value>(&s) {
            let _ = validate(&v, &Clock::default());
        }
    }

    #[test]
    fn session_state_stays_bounded(n in 1usize..40) {
        let cfg = BiometricsConfig::default();
        let mut profile = Profile::default();
        let mut session = SessionState::default();
        let events = gestures(style(1), 5, 12 * n, 0.0);
        for (i, chunk) in events.chunks(1000).enumerate() {
            let keys: Vec<KeyEvent> = (0..200).map(|k| KeyEvent {
                field: "f".into(), key: format!("k{}", k % 9),
                down: (i * 200_000 + k * 150) as f64, up: (i * 200_000 + k * 150 + 80) as f64,
            }).collect();
            let b = Batch { session_id: "s".into(), seq: Some(i as u64), mouse: chunk.to_vec(), keys };
            accept(&cfg, &mut profile, &mut session, &b, 0);
        }
        let (a, k) = session.kept();
        prop_assert!(a <= KEPT_ACTIONS && k <= KEPT_KEY_OBS);
        let (pa, pk) = profile.pooled();
        prop_assert!(pa <= cfg.pool_actions as usize);
        prop_assert!(pk <= sentinel_risk::biometrics::profile::POOL_KEY_OBS);
    }
}

/// Posts `events` as one session of `user`, in batches of 300.
fn session(
    cfg: &BiometricsConfig,
    profile: &mut Profile,
    id: &str,
    events: &[MouseEvent],
) -> (SessionState, Vec<biometrics::Outcome>) {
    let mut s = SessionState::default();
    let mut outs = Vec::new();
    for (i, chunk) in events.chunks(300).enumerate() {
        let b = Batch {
            session_id: id.into(),
            seq: Some(i as u64),
            mouse: chunk.to_vec(),
            keys: Vec::new(),
        };
        let body = serde_json::to_value(&b).expect("serializes");
        let b = validate(&body, &s.clock).expect("generated batches are valid");
        outs.push(accept(cfg, profile, &mut s, &b, i as u64 * 1000));
    }
    (s, outs)
}

/// Enrols users 0..n with 2 sessions of 320 gestures each and fits them
/// against each other.
fn enrolled(cfg: &BiometricsConfig, n: u64) -> Vec<Profile> {
    let mut profiles: Vec<Profile> = (0..n).map(|_| Profile::default()).collect();
    for (u, p) in profiles.iter_mut().enumerate() {
        for s in 0..2 {
            let ev = gestures(style(u as u64), 100 * u as u64 + s, 320, 0.0);
            session(cfg, p, &format!("e{s}"), &ev);
        }
        assert_eq!(
            p.phase,
            Phase::FitDue,
            "user {u}: 640 gestures complete enrolment"
        );
    }
    let parts: Vec<_> = profiles.iter().map(Profile::background_part).collect();
    for (u, p) in profiles.iter_mut().enumerate() {
        let others: Vec<_> = parts
            .iter()
            .enumerate()
            .filter(|(o, _)| *o != u)
            .map(|(_, b)| b.clone())
            .collect();
        p.fit(cfg, &others).expect("fits");
    }
    profiles
}

#[test]
fn enrolment_completes_at_a_batch_and_scores_from_the_next() {
    let cfg = BiometricsConfig::default();
    let mut p = Profile::default();
    // One long session counts for at most half of the baseline.
    let ev = gestures(style(1), 1, 900, 0.0);
    let (_, outs) = session(&cfg, &mut p, "a", &ev);
    assert!(outs
        .iter()
        .all(|o| o.answer.status == Status::Enrolling && o.answer.score.is_none()));
    assert!(outs.iter().all(|o| !o.fit_due));
    assert_eq!(p.samples(&cfg), cfg.baseline_samples / 2);
    assert_eq!(p.phase, Phase::Enrolling);
    // A second session completes it: that batch still answers enrolling.
    let ev = gestures(style(1), 2, 400, 0.0);
    let (_, outs) = session(&cfg, &mut p, "b", &ev);
    let first_due = outs
        .iter()
        .position(|o| o.fit_due)
        .expect("enrolment completes");
    assert_eq!(outs[first_due].answer.status, Status::Enrolling);
    // Fitted without anyone else (synthetic background), it scores.
    p.fit(&cfg, &[]).expect("fits alone");
    assert_eq!(p.phase, Phase::Ready);
    let ev = gestures(style(1), 3, 60, 0.0);
    let (_, outs) = session(&cfg, &mut p, "c", &ev[..30]);
    assert_eq!(
        outs[0].answer.status,
        Status::Collecting,
        "too few actions at first"
    );
    assert!(outs[0].answer.score.is_none());
    let (s, _) = session(&cfg, &mut p, "c", &ev);
    assert!(s.score.is_some(), "60 gestures give a score");
    assert_eq!(s.score, s.mouse_score, "one kind: the score is that kind's");
    assert!(s.keystroke_score.is_none());
}

#[test]
fn owners_score_lower_than_other_users_on_held_out_data() {
    let cfg = BiometricsConfig::default();
    let mut profiles = enrolled(&cfg, 4);
    let mut owner = Vec::new();
    let mut others = Vec::new();
    for u in 0..4u64 {
        for piece in 0..3u64 {
            // Held out: seeds never used for enrolment.
            let ev = gestures(style(u), 10_000 + 10 * u + piece, 40, 0.0);
            for (acc, p) in profiles.iter_mut().enumerate() {
                let (s, _) = session(&cfg, p, "t", &ev);
                let score = s.score.expect("40 gestures give a score");
                if acc as u64 == u {
                    owner.push(score);
                } else {
                    others.push(score);
                }
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&owner) < 0.3, "owners: {owner:?}");
    assert!(mean(&others) > 0.7, "others: {others:?}");
    let max_owner = owner.iter().copied().fold(0.0, f64::max);
    let below = others.iter().filter(|&&s| s <= max_owner).count();
    assert!(
        below * 10 < others.len(),
        "others rarely score like owners: {below} of {}",
        others.len()
    );
}

#[test]
fn only_sessions_that_end_ok_teach_the_profile() {
    let cfg = BiometricsConfig::default();
    let mut profiles = enrolled(&cfg, 3);
    let before = biometrics::encode(&profiles[0]).expect("encodes");
    // Another user's session under user 0's account fails and is not taken in.
    let ev = gestures(style(2), 777, 60, 0.0);
    let (mut s, _) = session(&cfg, &mut profiles[0], "x", &ev);
    assert_eq!(s.status, Status::Failed);
    assert!(!profiles[0].adapt(&cfg, &mut s));
    assert_eq!(
        biometrics::encode(&profiles[0]).expect("encodes"),
        before,
        "profile untouched"
    );
    // The owner's ok session is taken in, once.
    let ev = gestures(style(0), 778, 60, 0.0);
    let (mut s, _) = session(&cfg, &mut profiles[0], "y", &ev);
    assert_eq!(s.status, Status::Ok);
    assert!(s.ended(300_000 + s.last_seen_ms, cfg.continuous_auth_interval_s));
    assert!(!s.ended(s.last_seen_ms + 1000, cfg.continuous_auth_interval_s));
    assert!(profiles[0].adapt(&cfg, &mut s));
    assert!(
        !profiles[0].adapt(&cfg, &mut s),
        "a session is taken in once"
    );
    assert_eq!(profiles[0].adapted_since_fit, 1);
}

#[test]
fn profiles_and_sessions_round_trip_compactly() {
    let cfg = BiometricsConfig::default();
    let mut profiles = enrolled(&cfg, 2);
    let bytes = biometrics::encode(&profiles[0]).expect("encodes");
    let back: Profile = biometrics::decode(&bytes).expect("decodes");
    assert!(back == profiles[0], "profile differs after a round trip");
    assert!(bytes.len() < 1_500_000, "profile is {} bytes", bytes.len());
    let ev = gestures(style(0), 5, 50, 0.0);
    let (s, _) = session(&cfg, &mut profiles[0], "z", &ev);
    let bytes = biometrics::encode(&s).expect("encodes");
    let back: SessionState = biometrics::decode(&bytes).expect("decodes");
    assert!(back == s, "session state differs after a round trip");
    assert!(
        bytes.len() < 40_000,
        "session state is {} bytes",
        bytes.len()
    );
    // JSON works too (the admin API may show it; floats may lose their last bit).
    let j = serde_json::to_string(&s).expect("json");
    let back: SessionState = serde_json::from_str(&j).expect("json back");
    assert_eq!(
        (back.status, back.mouse_events, back.actions),
        (s.status, s.mouse_events, s.actions)
    );
    // Garbage is an error, not a panic.
    assert!(biometrics::decode::<Profile>(&[0xc1, 0x00, 0x13]).is_err());
    assert!(biometrics::decode::<SessionState>(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn scores_combine_as_documented() {
    let cfg = BiometricsConfig::default();
    assert_eq!(combine(&cfg, None, None), None);
    assert_eq!(combine(&cfg, Some((0.42, 3.0)), None), Some(0.42));
    assert_eq!(combine(&cfg, None, Some((0.42, 3.0))), Some(0.42));
    // Below both thresholds: weighted by evidence.
    let s = combine(&cfg, Some((0.2, 3.0)), Some((0.5, 1.0))).expect("score");
    assert!((s - 0.275).abs() < 1e-9, "{s}");
    // A mouse score at its threshold (0.6) decides alone.
    assert_eq!(
        combine(&cfg, Some((0.6, 1.0)), Some((0.0, 100.0))),
        Some(0.6)
    );
    // Keystroke 0.65 is under its own threshold (0.7): averaged.
    let s = combine(&cfg, Some((0.1, 1.0)), Some((0.65, 1.0))).expect("score");
    assert!((s - 0.375).abs() < 1e-9, "{s}");
}

#[test]
fn settings_are_checked() {
    assert!(BiometricsConfig::default().check().is_empty());
    let bad = BiometricsConfig {
        ok_below: 0.8,
        failed_at: 0.7,
        mouse_threshold: f64::NAN,
        baseline_samples: 0,
        mouse_dependence: 0.5,
        ..BiometricsConfig::default()
    };
    let names: Vec<&str> = bad.check().into_iter().map(|(n, _)| n).collect();
    for n in [
        "ok_below",
        "mouse_threshold",
        "baseline_samples",
        "mouse_dependence",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let parsed: BiometricsConfig =
        serde_json::from_value(json!({"mouse_threshold": 0.5})).expect("partial");
    assert_eq!(parsed.keystroke_threshold, 0.7);
    assert!(serde_json::from_value::<BiometricsConfig>(json!({"nope": 1})).is_err());
}

#[test]
fn keystrokes_score_and_tell_typists_apart() {
    let cfg = BiometricsConfig::default();
    // Two typists with different rhythms on the same keys.
    let typing = |hold: f64, gap: f64, seed: u64, n: usize, t0: f64| -> Vec<KeyEvent> {
        let mut r = support::Rng(seed);
        let mut t = t0;
        (0..n)
            .map(|i| {
                let k = i % 12;
                let h = hold * (1.0 + 0.3 * (k as f64 / 12.0)) * (0.1 * r.normal()).exp();
                let e = KeyEvent {
                    field: "f".into(),
                    key: format!("k{k}"),
                    down: t,
                    up: t + h,
                };
                t += gap * (1.0 + 0.5 * ((k * 7 % 5) as f64 / 5.0)) * (0.15 * r.normal()).exp();
                e
            })
            .collect()
    };
    let post = |p: &mut Profile, id: &str, keys: Vec<KeyEvent>| -> SessionState {
        let mut s = SessionState::default();
        for (i, chunk) in keys.chunks(200).enumerate() {
            let b = Batch {
                session_id: id.into(),
                seq: Some(i as u64),
                mouse: Vec::new(),
                keys: chunk.to_vec(),
            };
            accept(&cfg, p, &mut s, &b, 0);
        }
        s
    };
    let mut a = Profile::default();
    let mut b = Profile::default();
    for s in 0..2 {
        post(&mut a, "e", typing(80.0, 180.0, s, 500, 0.0));
        post(&mut b, "e", typing(120.0, 260.0, 50 + s, 500, 0.0));
    }
    assert_eq!(a.phase, Phase::FitDue);
    let (pa, pb) = (a.background_part(), b.background_part());
    a.fit(&cfg, &[pb]).expect("fits");
    b.fit(&cfg, &[pa]).expect("fits");
    let own = post(&mut a, "t1", typing(80.0, 180.0, 99, 60, 0.0));
    let other = post(&mut a, "t2", typing(120.0, 260.0, 98, 60, 0.0));
    let (own, other) = (
        own.keystroke_score.expect("scored"),
        other.keystroke_score.expect("scored"),
    );
    assert!(own < 0.3 && other > 0.7, "own {own}, other {other}");
}

fn scroll(t: f64) -> MouseEvent {
    MouseEvent {
        t,
        x: 500,
        y: 400,
        button: Button::Scroll,
        state: MouseState::Down,
    }
}

#[test]
fn a_session_with_few_actions_is_scored_after_the_documented_mouse_use() {
    let cfg = BiometricsConfig::default();
    let mut profiles = enrolled(&cfg, 2);
    // One gesture (one action, fewer than `min_mouse_actions`), then scrolling:
    // mouse use goes on, no further action finishes.
    let mut ev = gestures(style(0), 77, 1, 0.0);
    let end = ev.last().map_or(0.0, |e| e.t);
    let first_use: Vec<MouseEvent> = (1..=20).map(|i| scroll(end + 500.0 * i as f64)).collect();
    ev.extend(first_use);
    let (mut s, outs) = session(&cfg, &mut profiles[0], "few", &ev);
    assert_eq!(s.actions, 1);
    assert!(s.mouse_use_ms < cfg.mouse_use_for_score_ms);
    assert_eq!(
        outs.last().map(|o| o.answer.status),
        Some(Status::Collecting)
    );
    // More use, still no second action: past the bound, the one action scores.
    let more: Vec<MouseEvent> = (21..=40).map(|i| scroll(end + 500.0 * i as f64)).collect();
    let body = serde_json::to_value(Batch {
        session_id: "few".into(),
        seq: Some(99),
        mouse: more,
        keys: Vec::new(),
    })
    .expect("serializes");
    let b = validate(&body, &s.clock).expect("valid");
    let out = accept(&cfg, &mut profiles[0], &mut s, &b, 5_000);
    assert_eq!(s.actions, 1);
    assert!(
        s.mouse_use_ms >= cfg.mouse_use_for_score_ms,
        "{}",
        s.mouse_use_ms
    );
    assert!(out.answer.score.is_some(), "{:?}", out.answer);
}

#[test]
fn mouse_use_does_not_count_time_away_from_the_mouse() {
    let cfg = BiometricsConfig::default();
    let mut s = SessionState::default();
    let b = Batch {
        session_id: "idle".into(),
        seq: None,
        // 1 s of use, an hour away, 1 s of use.
        mouse: vec![
            scroll(0.0),
            scroll(1_000.0),
            scroll(3_601_000.0),
            scroll(3_602_000.0),
        ],
        keys: Vec::new(),
    };
    s.absorb(&cfg, &b, 0);
    assert_eq!(s.mouse_use_ms, 2_000.0 + cfg.action_pause_ms);
}

#[test]
fn a_steady_move_without_pauses_still_finishes_actions() {
    // 35 s of circling, a point every 100 ms: no pause, no click.
    let events: Vec<MouseEvent> = (0..350)
        .map(|i| {
            let a = i as f64 / 20.0;
            MouseEvent {
                t: 100.0 * i as f64,
                x: (800.0 + 300.0 * a.cos()).round() as i32,
                y: (500.0 + 300.0 * a.sin()).round() as i32,
                button: Button::None,
                state: MouseState::Move,
            }
        })
        .collect();
    let mut tracker = MouseTracker::default();
    let mut out = Vec::new();
    tracker.absorb(&events, &mut out);
    let expected = (35_000.0 / sentinel_risk::biometrics::mouse::MAX_MOVE_MS) as usize;
    assert_eq!(
        out.len(),
        expected,
        "one action per MAX_MOVE_MS of steady moving"
    );
}
