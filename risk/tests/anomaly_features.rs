//! The anomaly features: what a principal's state learns, what it refuses to
//! learn, when it forgets, and that any sequence of events yields finite,
//! bounded features from a bounded state.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use proptest::prelude::*;
use sentinel_risk::anomaly::{
    observe, record_auth_failure, rule_score, settle, AddressSignals, AddressState, AnomalyConfig,
    Features, Method, Outcome, PrincipalState, RequestFacts, Scorer, Sensitivity, Thresholds,
    Verdict, FEATURE_COUNT,
};
use std::net::IpAddr;

/// Monday 2026-01-05 00:00 UTC.
const MONDAY: u64 = 1_767_571_200;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn cfg() -> AnomalyConfig {
    AnomalyConfig::default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn facts<'a>(client: &str, route: &'a str, resource: Option<&'a str>) -> RequestFacts<'a> {
    RequestFacts {
        client: ip(client),
        route,
        resource,
        method: Method::Read,
        sensitivity: Sensitivity::Normal,
        service_account: false,
        biometric: None,
        mfa: false,
        address: AddressSignals::default(),
    }
}

/// One request observed, scored by the rules and settled as a gateway would.
fn step(
    state: PrincipalState,
    f: &RequestFacts<'_>,
    now: u64,
    outcome: Option<Outcome>,
) -> (PrincipalState, Features, f32) {
    let (state, features) = observe(state, f, now, &cfg());
    let score = Scorer::rules().score(&features).value;
    let outcome = outcome.unwrap_or(match Thresholds::default().verdict(score) {
        Verdict::Block => Outcome::Blocked,
        Verdict::StepUp => Outcome::SteppedUp,
        _ => Outcome::Served,
    });
    (
        settle(state, f, now, score, outcome, &cfg()),
        features,
        score,
    )
}

/// A user who worked 09:00–17:00 UTC on weekdays for two weeks, from the
/// office, on a handful of vessels.
fn office_worker() -> PrincipalState {
    let mut s = PrincipalState::default();
    let vessels = ["v1", "v2", "v3", "v4", "v5"];
    for day in 0..12u64 {
        if day % 7 >= 5 {
            continue;
        }
        for i in 0..40u64 {
            let now = MONDAY + day * DAY + 9 * HOUR + i * 700;
            let v = vessels[(i % 5) as usize];
            s = step(
                s,
                &facts("192.0.2.17", "/vessels/{id}", Some(v)),
                now,
                Some(Outcome::Served),
            )
            .0;
        }
    }
    s
}

fn value(f: &Features, name: &str) -> f32 {
    f.get(name).unwrap()
}

#[test]
fn the_baseline_is_mature_after_thirty_served_requests() {
    let mut s = PrincipalState::default();
    let mut last = None;
    for i in 0..30u64 {
        let (next, f, _) = step(
            s,
            &facts("192.0.2.1", "/r", None),
            MONDAY + 9 * HOUR + i * 60,
            Some(Outcome::Served),
        );
        s = next;
        last = Some(f);
    }
    assert!(
        value(&last.unwrap(), "maturity") < 1.0,
        "the 30th request is scored against 29"
    );
    let (_, f) = observe(
        s.clone(),
        &facts("192.0.2.1", "/r", None),
        MONDAY + 10 * HOUR,
        &cfg(),
    );
    assert_eq!(value(&f, "maturity"), 1.0);
    assert_eq!(s.learned(), 30);
}

#[test]
fn a_network_is_the_ipv4_slash_24_or_the_ipv6_slash_64() {
    let mut s = PrincipalState::default();
    for (i, client) in ["192.0.2.17", "2001:db8:1:2::5"].iter().enumerate() {
        s = step(
            s,
            &facts(client, "/r", None),
            MONDAY + 9 * HOUR + i as u64,
            Some(Outcome::Served),
        )
        .0;
    }
    let now = MONDAY + 10 * HOUR;
    for (client, new) in [
        ("192.0.2.200", 0.0),
        ("::ffff:192.0.2.9", 0.0),
        ("192.0.3.17", 1.0),
        ("2001:db8:1:2:ffff::1", 0.0),
        ("2001:db8:1:3::5", 1.0),
    ] {
        let (_, f) = observe(s.clone(), &facts(client, "/r", None), now, &cfg());
        assert_eq!(value(&f, "network_new"), new, "{client}");
    }
}

#[test]
fn stepped_up_and_blocked_requests_never_teach_the_baseline() {
    let owner = office_worker();
    let learned = owner.learned();
    let mut s = owner;
    // The attacker's requests from a new network at 3 a.m., all answered with
    // a step-up or a block.
    for i in 0..200u64 {
        let outcome = if i % 2 == 0 {
            Outcome::SteppedUp
        } else {
            Outcome::Blocked
        };
        let now = MONDAY + 14 * DAY + 3 * HOUR + i * 5;
        s = step(
            s,
            &facts("203.0.113.9", "/vessels/{id}", Some("v9")),
            now,
            Some(outcome),
        )
        .0;
    }
    assert_eq!(s.learned(), learned);
    let (_, f) = observe(
        s.clone(),
        &facts("203.0.113.9", "/vessels/{id}", None),
        MONDAY + 14 * DAY + 4 * HOUR,
        &cfg(),
    );
    assert_eq!(value(&f, "network_new"), 1.0);
    assert_eq!(value(&f, "hour_day_share"), 0.0);

    // A served request that scored high teaches nothing either...
    let f3 = facts("203.0.113.9", "/vessels/{id}", Some("v9"));
    let (s2, _) = observe(s.clone(), &f3, MONDAY + 15 * DAY, &cfg());
    let s2 = settle(s2, &f3, MONDAY + 15 * DAY, 0.9, Outcome::Served, &cfg());
    assert_eq!(s2.learned(), learned);
    // ...unless its owner proved a fresh MFA.
    let mfa = RequestFacts { mfa: true, ..f3 };
    let (s3, _) = observe(s, &mfa, MONDAY + 15 * DAY, &cfg());
    let s3 = settle(s3, &mfa, MONDAY + 15 * DAY, 0.9, Outcome::Served, &cfg());
    assert_eq!(s3.learned(), learned + 1);
    let (_, f) = observe(s3, &f3, MONDAY + 15 * DAY + 60, &cfg());
    assert_eq!(value(&f, "network_new"), 0.0);
}

#[test]
fn denials_and_failed_authentications_count_in_the_window() {
    let mut s = office_worker();
    let now = MONDAY + 14 * DAY + 10 * HOUR;
    for i in 0..6 {
        s = record_auth_failure(s, now + i, &cfg());
    }
    for i in 0..10 {
        let f = facts("192.0.2.17", "/admin/users", None);
        s = step(s, &f, now + 10 + i, Some(Outcome::Denied)).0;
    }
    let (_, f) = observe(
        s,
        &facts("192.0.2.17", "/vessels/{id}", None),
        now + 60,
        &cfg(),
    );
    assert_eq!(value(&f, "denials_1h"), 10f32.ln_1p());
    assert!(value(&f, "denial_share_1h") > 0.8);
    assert_eq!(value(&f, "auth_failures_principal_1h"), 6f32.ln_1p());
}

#[test]
fn failed_logins_from_an_address_raise_its_next_authenticated_requests() {
    let now = MONDAY + 14 * DAY + 10 * HOUR;
    let mut a = AddressState::default();
    for i in 0..300 {
        a = a.record_auth_failure(now + i, &cfg());
    }
    let (_, signals) = a.clone().observe("victim", now + 400, &cfg());
    assert_eq!(signals.auth_failures, 300);
    let hit = RequestFacts {
        address: signals,
        ..facts("198.51.100.7", "/vessels", None)
    };
    let (_, f, score) = step(office_worker(), &hit, now + 400, None);
    assert_eq!(value(&f, "auth_failures_address_1h"), 300f32.ln_1p());
    assert!(score > Thresholds::default().step_up, "score {score}");
    // A neighbour address of the same /24 is another address.
    let other = AddressState::default()
        .observe("victim", now + 400, &cfg())
        .1;
    assert_eq!(other.auth_failures, 0);
}

#[test]
fn the_stolen_token_at_three_in_the_morning_is_stepped_up_and_its_owner_is_not() {
    let owner = office_worker();
    let t = Thresholds::default();
    // The owner, Monday of the third week, at the office.
    let (_, _, score) = step(
        owner.clone(),
        &facts("192.0.2.17", "/vessels/{id}", Some("v2")),
        MONDAY + 14 * DAY + 10 * HOUR,
        None,
    );
    assert!(score <= t.anomaly, "owner scored {score}");
    // The thief: a new network at 03:00 enumerating every vessel.
    let mut s = owner;
    let mut worst = Verdict::Normal;
    let ids: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let now = MONDAY + 14 * DAY + 3 * HOUR + i as u64;
        let (next, _, score) = step(
            s,
            &facts("203.0.113.50", "/vessels/{id}", Some(id)),
            now,
            None,
        );
        s = next;
        worst = worst.max(t.verdict(score));
    }
    assert!(worst >= Verdict::StepUp, "{worst:?}");
}

#[test]
fn the_window_expires_after_its_ttl_and_the_profile_after_its_own() {
    let mut s = office_worker();
    let now = MONDAY + 14 * DAY + 10 * HOUR;
    for i in 0..20 {
        s = record_auth_failure(s, now + i, &cfg());
        s = step(
            s,
            &facts("192.0.2.17", "/admin/users", None),
            now + i,
            Some(Outcome::Denied),
        )
        .0;
    }
    let later = now + cfg().window_ttl + 30;
    let (_, f) = observe(
        s.clone(),
        &facts("192.0.2.17", "/vessels/{id}", None),
        later,
        &cfg(),
    );
    assert_eq!(value(&f, "denials_1h"), 0.0);
    assert_eq!(value(&f, "auth_failures_principal_1h"), 0.0);
    assert_eq!(value(&f, "requests_1h"), 1f32.ln_1p());
    assert_eq!(
        value(&f, "maturity"),
        1.0,
        "the baseline outlives the window"
    );

    let gone = now + cfg().profile_ttl + 60;
    assert!(s.expires_at(&cfg()) < gone);
    let (_, f) = observe(s, &facts("192.0.2.17", "/vessels/{id}", None), gone, &cfg());
    let (_, fresh) = observe(
        PrincipalState::default(),
        &facts("192.0.2.17", "/vessels/{id}", None),
        gone,
        &cfg(),
    );
    assert_eq!(f, fresh);

    let a = AddressState::default().record_auth_failure(now, &cfg());
    assert_eq!(a.signals(now + 10, &cfg()).auth_failures, 1);
    assert_eq!(
        a.signals(now + cfg().window_ttl + 10, &cfg()).auth_failures,
        0
    );
}

#[test]
fn thresholds_are_crossed_only_above_them() {
    let t = Thresholds::default();
    for (score, verdict) in [
        (0.0, Verdict::Normal),
        (0.7, Verdict::Normal),
        (0.71, Verdict::Anomalous),
        (0.85, Verdict::Anomalous),
        (0.851, Verdict::StepUp),
        (0.95, Verdict::StepUp),
        (0.951, Verdict::Block),
        (1.0, Verdict::Block),
    ] {
        assert_eq!(t.verdict(score), verdict, "{score}");
    }
    assert!(Thresholds::new(0.9, 0.85, 0.95).is_none());
    assert!(Thresholds::new(0.7, 0.85, 1.5).is_none());
}

#[test]
fn the_rules_never_bother_a_quiet_mature_principal() {
    let (_, f) = observe(
        office_worker(),
        &facts("192.0.2.17", "/vessels/{id}", Some("v1")),
        MONDAY + 14 * DAY + 11 * HOUR,
        &cfg(),
    );
    assert_eq!(rule_score(&f), 0.0);
}

#[derive(Debug, Clone)]
enum Event {
    Request {
        net: u8,
        host: u8,
        route: u8,
        resource: u16,
        write: bool,
        sens: u8,
        bio: Option<f32>,
        mfa: bool,
        outcome: u8,
        score: f32,
    },
    AuthFailure,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (any::<u8>(), any::<u8>(), 0u8..40, any::<u16>(), any::<bool>(), 0u8..4,
              proptest::option::of(prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(-3.0f32), 0.0f32..1.0]),
              any::<bool>(), 0u8..4, prop_oneof![Just(f32::NAN), -1.0f32..2.0])
            .prop_map(|(net, host, route, resource, write, sens, bio, mfa, outcome, score)| Event::Request {
                net, host, route, resource, write, sens, bio, mfa, outcome, score
            }),
        1 => Just(Event::AuthFailure),
    ]
}

fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..30, 2 => 30u64..7200, 1 => 7200u64..(40 * DAY)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_sequence_gives_finite_features_from_a_bounded_state(
        events in proptest::collection::vec((gap(), event()), 1..400)
    ) {
        let config = cfg();
        let mut now = MONDAY;
        let mut s = PrincipalState::default();
        let mut a = AddressState::default();
        for (dt, e) in events {
            now += dt;
            match e {
                Event::AuthFailure => {
                    s = record_auth_failure(s, now, &config);
                    a = a.record_auth_failure(now, &config);
                }
                Event::Request { net, host, route, resource, write, sens, bio, mfa, outcome, score } => {
                    let client: IpAddr = if net % 5 == 0 {
                        format!("2001:db8:{net:x}::{host:x}").parse().unwrap()
                    } else {
                        format!("10.{net}.{}.{host}", net / 3).parse().unwrap()
                    };
                    let route = format!("/r{route}/{{id}}");
                    let resource = format!("id{resource}");
                    let (next_a, signals) = a.observe("p", now, &config);
                    a = next_a;
                    let f = RequestFacts {
                        client,
                        route: &route,
                        resource: Some(&resource),
                        method: if write { Method::Write } else { Method::Read },
                        sensitivity: [Sensitivity::Low, Sensitivity::Normal, Sensitivity::High, Sensitivity::Critical][sens as usize],
                        service_account: false,
                        biometric: bio,
                        mfa,
                        address: signals,
                    };
                    let (next, features) = observe(s, &f, now, &config);
                    for (i, v) in features.values.iter().enumerate() {
                        prop_assert!(v.is_finite(), "feature {i} is {v}");
                        prop_assert!((-12.0..=12.0).contains(v));
                    }
                    let r = rule_score(&features);
                    prop_assert!((0.0..=1.0).contains(&r));
                    let outcome = [Outcome::Served, Outcome::Denied, Outcome::SteppedUp, Outcome::Blocked][outcome as usize];
                    s = settle(next, &f, now, score, outcome, &config);
                }
            }
            let size = serde_json::to_vec(&s).unwrap().len();
            prop_assert!(size < 2500, "state grew to {size} bytes of JSON");
            prop_assert!(serde_json::to_vec(&a).unwrap().len() < 800);
        }
        prop_assert_eq!(FEATURE_COUNT, 24);
    }

    #[test]
    fn a_state_survives_serialization_unchanged(
        events in proptest::collection::vec((gap(), 0u8..20, 0u16..500), 1..100)
    ) {
        let mut now = MONDAY;
        let mut s = PrincipalState::default();
        for (dt, net, res) in events {
            now += dt;
            let client = format!("10.0.{net}.1");
            let res = res.to_string();
            s = step(s, &facts(&client, "/v/{id}", Some(&res)), now, Some(Outcome::Served)).0;
        }
        let back: PrincipalState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
    }
}
