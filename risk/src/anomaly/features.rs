//! Request facts in, features out: the pure per-request update of a
//! principal's state and the feature vector the scorers read.
//!
//! The same code computes the features of the training data (the
//! `anomaly_replay` example), so training and serving cannot disagree.

use super::state::{
    hour_of_week, network_key, resource_bit, slice_len, stable_hash, AddressSignals, PrincipalState,
};
use super::AnomalyConfig;
use std::net::IpAddr;

/// The request method, as far as the features care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET, HEAD, OPTIONS.
    Read,
    /// POST, PUT, PATCH.
    Write,
    Delete,
}

impl Method {
    /// Classifies an HTTP method name (case-sensitive, as HTTP is); unknown
    /// methods count as writes.
    pub fn from_http(method: &str) -> Self {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Self::Read,
            "DELETE" => Self::Delete,
            _ => Self::Write,
        }
    }

    fn is_write(self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// How much a route matters, as its route configuration says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sensitivity {
    Low,
    #[default]
    Normal,
    High,
    /// Administration, bulk export, credentials.
    Critical,
}

impl Sensitivity {
    /// The feature value: 0, 1/3, 2/3, 1.
    pub fn value(self) -> f32 {
        match self {
            Self::Low => 0.0,
            Self::Normal => 1.0 / 3.0,
            Self::High => 2.0 / 3.0,
            Self::Critical => 1.0,
        }
    }

    fn is_sensitive(self) -> bool {
        self >= Self::High
    }
}

/// What the gateway knows about an authenticated request when it scores it.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The client address the gateway scores (SPEC: the TCP peer's, or the
    /// first untrusted `X-Forwarded-For` address behind trusted proxies).
    pub client: IpAddr,
    /// The matched route's id or template (`/vessels/{id}`), not the raw path.
    pub route: &'a str,
    /// The resource the request names (a vessel id, …), if any.
    pub resource: Option<&'a str>,
    pub method: Method,
    pub sensitivity: Sensitivity,
    pub service_account: bool,
    /// The current score of the session's behavioural biometrics, if any.
    pub biometric: Option<f32>,
    /// The credential carries a fresh MFA / step-up: a served request then
    /// teaches the baseline even when it scored high (its owner proved it).
    pub mfa: bool,
    /// The client address's window ([`super::AddressState::observe`]).
    pub address: AddressSignals,
}

/// What the gateway finally answered, for [`settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the upstream.
    Served,
    /// Refused by policy (`403`): counts as a denial.
    Denied,
    /// Answered `401 STEP_UP_REQUIRED`.
    SteppedUp,
    /// Answered `403 RISK_BLOCKED` / `401 BIOMETRIC_AUTH_FAILED`.
    Blocked,
}

/// Names of the features, in the order of [`Features::values`]; the model
/// file names the features it was trained on and must match.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "maturity",
    "hour_week_share",
    "hour_day_share",
    "network_new",
    "networks_known",
    "route_new",
    "rate_1m",
    "rate_ratio",
    "requests_1h",
    "breadth_1h",
    "breadth_ratio",
    "distinct_share_1h",
    "denials_1h",
    "denial_share_1h",
    "auth_failures_principal_1h",
    "auth_failures_address_1h",
    "address_principals_1h",
    "sensitivity",
    "sensitive_share_1h",
    "write",
    "write_share_delta",
    "biometric_present",
    "biometric_score",
    "service_account",
];
pub const FEATURE_COUNT: usize = 24;

/// Indices into [`Features::values`].
pub(crate) mod ix {
    pub const MATURITY: usize = 0;
    pub const HOUR_WEEK: usize = 1;
    pub const HOUR_DAY: usize = 2;
    pub const NETWORK_NEW: usize = 3;
    pub const NETWORKS_KNOWN: usize = 4;
    pub const ROUTE_NEW: usize = 5;
    pub const RATE: usize = 6;
    pub const RATE_RATIO: usize = 7;
    pub const REQUESTS: usize = 8;
    pub const BREADTH: usize = 9;
    pub const BREADTH_RATIO: usize = 10;
    pub const DISTINCT_SHARE: usize = 11;
    pub const DENIALS: usize = 12;
    pub const DENIAL_SHARE: usize = 13;
    pub const AUTH_FAIL_PRINCIPAL: usize = 14;
    pub const AUTH_FAIL_ADDRESS: usize = 15;
    pub const ADDRESS_PRINCIPALS: usize = 16;
    pub const SENSITIVITY: usize = 17;
    pub const SENSITIVE_SHARE: usize = 18;
    pub const WRITE: usize = 19;
    pub const WRITE_DELTA: usize = 20;
    pub const BIO_PRESENT: usize = 21;
    pub const BIO_SCORE: usize = 22;
    pub const SERVICE_ACCOUNT: usize = 23;
}

/// A request's features: finite numbers in documented ranges
/// (docs/anomaly.md). Counts are `ln(1 + n)`, ratios `ln((1 + a) / (1 + b))`,
/// so that a feature means the same for a quiet user and a busy service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    pub values: [f32; FEATURE_COUNT],
}

/// Range each feature is clamped to (NaN becomes the lower bound).
const RANGES: [(f32, f32); FEATURE_COUNT] = [
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 12.0),
    (-12.0, 12.0),
    (0.0, 12.0),
    (0.0, 12.0),
    (-12.0, 12.0),
    (0.0, 1.0),
    (0.0, 12.0),
    (0.0, 1.0),
    (0.0, 12.0),
    (0.0, 12.0),
    (0.0, 12.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (-1.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
    (0.0, 1.0),
];

impl Features {
    pub fn get(&self, name: &str) -> Option<f32> {
        let i = FEATURE_NAMES.iter().position(|n| *n == name)?;
        self.values.get(i).copied()
    }

    fn clamped(mut self) -> Self {
        for (v, (lo, hi)) in self.values.iter_mut().zip(RANGES) {
            // `max`/`min` return the other operand for NaN: NaN → `lo`.
            *v = if v.is_nan() { lo } else { v.max(lo).min(hi) };
        }
        self
    }
}

fn ln1p(x: f32) -> f32 {
    x.max(0.0).ln_1p()
}

fn ratio(now: f32, usual: f32) -> f32 {
    ln1p(now) - ln1p(usual)
}

fn route_hash(route: &str) -> u64 {
    stable_hash(&[b"route", route.as_bytes()])
}

/// The per-request update: counts the request in the principal's window and
/// computes its features against the baseline. Pure: the caller stores the
/// returned state (and later passes it to [`settle`]).
pub fn observe(
    state: PrincipalState,
    facts: &RequestFacts<'_>,
    now: u64,
    config: &AnomalyConfig,
) -> (PrincipalState, Features) {
    let mut state = state.aged(now, config);
    let fast = state.decayed_fast(now) + 1.0;
    state.fast = fast;
    state.fast_at = now;
    state.last_seen = state.last_seen.max(now);
    let slot = state.slot_mut(now, config.window_ttl);
    slot.requests = slot.requests.saturating_add(1);
    if facts.method.is_write() {
        slot.writes = slot.writes.saturating_add(1);
    }
    if facts.sensitivity.is_sensitive() {
        slot.sensitive = slot.sensitive.saturating_add(1);
    }
    if let Some(resource) = facts.resource {
        let (w, bit) = resource_bit(stable_hash(&[facts.route.as_bytes(), resource.as_bytes()]));
        if let Some(x) = slot.resources.get_mut(w) {
            *x |= bit;
        }
    }
    let features = compute(&state, facts, now, config);
    (state, features)
}

fn compute(
    state: &PrincipalState,
    facts: &RequestFacts<'_>,
    now: u64,
    config: &AnomalyConfig,
) -> Features {
    let b = &state.baseline;
    let w = state.window(now, config.window_ttl);
    let requests = w.requests.max(1) as f32;
    let (week, day) = b.hour_shares(hour_of_week(now));
    let mut v = [0.0f32; FEATURE_COUNT];
    let target = config.baseline_requests.max(1);
    v[ix::MATURITY] = b.learned.min(target) as f32 / target as f32;
    v[ix::HOUR_WEEK] = week;
    v[ix::HOUR_DAY] = day;
    v[ix::NETWORK_NEW] = f32::from(u8::from(!b.knows_network(network_key(facts.client))));
    v[ix::NETWORKS_KNOWN] = b.networks.len().min(super::state::MAX_NETWORKS) as f32 / 8.0;
    v[ix::ROUTE_NEW] = f32::from(u8::from(!b.knows_route(route_hash(facts.route))));
    v[ix::RATE] = ln1p(state.fast);
    v[ix::RATE_RATIO] = ratio(w.requests as f32, b.rate);
    v[ix::REQUESTS] = ln1p(w.requests as f32);
    v[ix::BREADTH] = ln1p(w.breadth);
    v[ix::BREADTH_RATIO] = ratio(w.breadth, b.breadth);
    v[ix::DISTINCT_SHARE] = w.breadth / requests;
    v[ix::DENIALS] = ln1p(w.denials as f32);
    v[ix::DENIAL_SHARE] = w.denials as f32 / requests;
    v[ix::AUTH_FAIL_PRINCIPAL] = ln1p(w.auth_failures as f32);
    v[ix::AUTH_FAIL_ADDRESS] = ln1p(facts.address.auth_failures as f32);
    v[ix::ADDRESS_PRINCIPALS] = ln1p(facts.address.principals);
    v[ix::SENSITIVITY] = facts.sensitivity.value();
    v[ix::SENSITIVE_SHARE] = w.sensitive as f32 / requests;
    v[ix::WRITE] = f32::from(u8::from(facts.method.is_write()));
    v[ix::WRITE_DELTA] = w.writes as f32 / requests - b.write_share;
    v[ix::BIO_PRESENT] = f32::from(u8::from(facts.biometric.is_some()));
    v[ix::BIO_SCORE] = facts.biometric.unwrap_or(0.0);
    v[ix::SERVICE_ACCOUNT] = f32::from(u8::from(facts.service_account));
    Features { values: v }.clamped()
}

/// Records what the gateway answered to the request [`observe`] counted: a
/// policy denial is counted in the window; a served request teaches the
/// baseline when its score is at most `config.learn_below` or it carried a
/// fresh MFA. Stepped-up and blocked requests teach nothing, so an attacker
/// cannot train the baseline to accept them.
pub fn settle(
    state: PrincipalState,
    facts: &RequestFacts<'_>,
    now: u64,
    score: f32,
    outcome: Outcome,
    config: &AnomalyConfig,
) -> PrincipalState {
    let mut state = state.aged(now, config);
    state.last_seen = state.last_seen.max(now);
    match outcome {
        Outcome::Denied => {
            let slot = state.slot_mut(now, config.window_ttl);
            slot.denials = slot.denials.saturating_add(1);
        }
        Outcome::Served if facts.mfa || score <= config.learn_below => {
            learn(&mut state, facts, now, config)
        }
        Outcome::Served | Outcome::SteppedUp | Outcome::Blocked => {}
    }
    state
}

fn learn(state: &mut PrincipalState, facts: &RequestFacts<'_>, now: u64, config: &AnomalyConfig) {
    let w = state.window(now, config.window_ttl);
    let b = &mut state.baseline;
    b.learned = b.learned.saturating_add(1);
    // Running means over the first samples, then moving averages.
    let ewma = |old: f32, new: f32, n: u32, cap: u32| {
        let old = if old.is_finite() { old } else { new };
        old + (new - old) / n.clamp(1, cap) as f32
    };
    let epoch = now / slice_len(config.window_ttl);
    if b.samples == 0 || epoch != b.sampled_epoch {
        b.samples = b.samples.saturating_add(1);
        b.sampled_epoch = epoch;
        b.rate = ewma(b.rate, w.requests as f32, b.samples, 100);
        b.breadth = ewma(b.breadth, w.breadth, b.samples, 100);
    }
    let n = b.learned;
    b.write_share = ewma(
        b.write_share,
        f32::from(u8::from(facts.method.is_write())),
        n,
        500,
    );
    b.sensitive_share = ewma(
        b.sensitive_share,
        f32::from(u8::from(facts.sensitivity.is_sensitive())),
        n,
        500,
    );
    b.add_hour(hour_of_week(now));
    b.add_network(network_key(facts.client), now);
    b.add_route(route_hash(facts.route));
}

/// Counts a failed authentication attributed to this principal (an expired
/// or revoked token of it, a wrong API-key secret for its key id, …).
pub fn record_auth_failure(
    state: PrincipalState,
    now: u64,
    config: &AnomalyConfig,
) -> PrincipalState {
    let mut state = state.aged(now, config);
    state.last_seen = state.last_seen.max(now);
    let slot = state.slot_mut(now, config.window_ttl);
    slot.auth_failures = slot.auth_failures.saturating_add(1);
    state
}
