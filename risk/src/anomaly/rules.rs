//! The rule fallback: a hand-written score over the same features, used when
//! no model is loaded or the model cannot be run. Documented rule by rule in
//! docs/anomaly.md ("Rule fallback"); every rule reads a feature whose meaning
//! does not depend on any training data.

use super::features::{ix, Features};

/// `ln(1 + n)`, to compare the log-scaled count features with plain counts.
fn l(n: f32) -> f32 {
    n.ln_1p()
}

/// Points of evidence, summed and clamped to `[0, 1]`. Alone, a new network
/// or an unusual hour is merely anomalous (below the step-up threshold);
/// together, or with enumeration, denials or failed logins, they step up or
/// block.
pub fn rule_score(f: &Features) -> f32 {
    let v = &f.values;
    let mature = v[ix::MATURITY] >= 1.0;
    let mut points = 0.0f32;

    // Novelty against a mature baseline.
    if mature {
        if v[ix::NETWORK_NEW] > 0.5 {
            points += 0.40;
        }
        if v[ix::HOUR_DAY] < 0.01 {
            points += 0.30;
        } else if v[ix::HOUR_WEEK] < 0.002 {
            points += 0.10;
        }
        if v[ix::ROUTE_NEW] > 0.5 {
            points += 0.10;
        }
        // Requests in the window against the principal's usual window.
        if v[ix::RATE_RATIO] > 10f32.ln() {
            points += 0.30;
        } else if v[ix::RATE_RATIO] > 4f32.ln() {
            points += 0.15;
        }
        // Breadth rules read users only: service accounts sweep every
        // resource by design, every few hours, far above their hourly mean.
        let user = v[ix::SERVICE_ACCOUNT] < 0.5;
        // Distinct resources in the window against the principal's usual.
        if user && v[ix::BREADTH] > l(50.0) && v[ix::BREADTH_RATIO] > 10f32.ln() {
            points += 0.60;
        } else if user && v[ix::BREADTH] > l(20.0) && v[ix::BREADTH_RATIO] > 4f32.ln() {
            points += 0.30;
        }
        // Enumeration: most requests of the window name a resource not
        // named before in it.
        if user && v[ix::BREADTH] > l(40.0) && v[ix::DISTINCT_SHARE] >= 0.6 {
            points += 0.60;
        }
    } else if v[ix::BREADTH] > l(100.0) {
        // A young principal that enumerates.
        points += 0.45;
    }

    // Denials in the window (privilege probing).
    if v[ix::DENIALS] >= l(15.0) && v[ix::DENIAL_SHARE] >= 0.3 {
        points += 0.70;
    } else if v[ix::DENIALS] >= l(5.0) && v[ix::DENIAL_SHARE] >= 0.2 {
        points += 0.40;
    }

    // Failed authentications (credential stuffing shows on its hits).
    if v[ix::AUTH_FAIL_ADDRESS] >= l(20.0) {
        points += 0.60;
    } else if v[ix::AUTH_FAIL_ADDRESS] >= l(5.0) {
        points += 0.30;
    }
    if v[ix::AUTH_FAIL_PRINCIPAL] >= l(5.0) {
        points += 0.30;
    }

    // Sensitive routes raise whatever else was found.
    if points > 0.0 && v[ix::SENSITIVITY] >= 0.99 {
        points += 0.10;
    }
    points.clamp(0.0, 1.0)
}
