//! Predictive access (`GET /api/v1/ai/predictions?user=`, docs/ai.md):
//! the permissions that a user's peers, the principals with the most
//! similar roles, groups and attributes, hold and use, with a confidence.
//! Collaborative filtering over the policy (what the evaluator allows) and
//! the audit trail (what was used), never applied: each suggestion carries
//! the role assignment and the access request an admin may make.
//!
//! [`predict`] is pure (profiles in, scored items out) so it is measured
//! without a database ([`holdout`], `cargo run -p sentinel-admin --example
//! predict_eval`).

use crate::auth::Caller;
use crate::db::{self, TenantCtx};
use crate::error::{ApiError, ApiResult};
use crate::scopes::Level;
use crate::state::AppState;
use sentinel_policy::source::{Effect, PolicySource};
use sentinel_policy::{AccessRequest, RequestContext};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What is predicted: a resource type and an action.
pub type Item = (String, String);

/// One principal as the filter sees it.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// `role:<id>`, `group:<id>`, `attr:<name>=<value>`.
    pub features: BTreeSet<String>,
    /// Items the evaluator allows.
    pub held: BTreeSet<Item>,
    /// Items used (allowed gateway requests) within the window.
    pub used: BTreeSet<Item>,
}

/// Peers count from this similarity (Jaccard of the features) on.
pub const MIN_SIMILARITY: f64 = 0.5;
/// No prediction from fewer peers than this.
pub const MIN_PEERS: usize = 2;

/// One item a user does not hold, scored from its peers.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub item: Item,
    /// Σ sim·s / Σ sim over the peers, with s = 1 when the peer holds and
    /// used the item, 0.5 when it holds it unused, 0 otherwise.
    pub confidence: f64,
    /// Peers considered.
    pub peers: usize,
    /// Of them, those holding the item.
    pub holders: usize,
    /// Of them, those that used it.
    pub users: usize,
}

pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let common = a.intersection(b).count();
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

/// Scores every item some peer holds and `target` does not, best first
/// (ties by item). Empty when fewer than [`MIN_PEERS`] peers are similar
/// enough.
pub fn predict<'a>(target: &Profile, others: impl IntoIterator<Item = &'a Profile>) -> Vec<Scored> {
    let peers: Vec<(f64, &Profile)> = others
        .into_iter()
        .map(|p| (jaccard(&target.features, &p.features), p))
        .filter(|(s, _)| *s >= MIN_SIMILARITY)
        .collect();
    if peers.len() < MIN_PEERS {
        return Vec::new();
    }
    let total: f64 = peers.iter().map(|(s, _)| s).sum();
    // item → (weighted score, holders, users)
    let mut acc: BTreeMap<&Item, (f64, usize, usize)> = BTreeMap::new();
    for (sim, p) in &peers {
        for item in p.held.iter().filter(|i| !target.held.contains(*i)) {
            let used = p.used.contains(item);
            let e = acc.entry(item).or_default();
            e.0 += sim * if used { 1.0 } else { 0.5 };
            e.1 += 1;
            e.2 += usize::from(used);
        }
    }
    let mut out: Vec<Scored> = acc
        .into_iter()
        .map(|(item, (w, holders, users))| Scored {
            item: item.clone(),
            confidence: w / total,
            peers: peers.len(),
            holders,
            users,
        })
        .collect();
    out.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then_with(|| a.item.cmp(&b.item))
    });
    out
}

/// Precision and recall of the suggestions on held-out permissions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holdout {
    pub users: usize,
    pub held_out: usize,
    pub suggested: usize,
    pub hits: usize,
    pub precision: f64,
    pub recall: f64,
}

/// A generated organisation: departments with a base set of permissions,
/// titles adding a few, sites; each user holds each of its department's and
/// title's items with probability 0.95 plus up to two random extra items
/// (noise no peer explains), and used each held item with probability 0.8.
/// Features: the department-title role, the department-site group and the
/// three attributes.
pub fn synthetic(users: usize, seed: u64) -> Vec<Profile> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let types = 15usize;
    let actions = ["read", "create", "update", "delete"];
    let universe: Vec<Item> = (0..types)
        .flat_map(|t| {
            actions
                .iter()
                .map(move |a| (format!("type_{t:02}"), (*a).to_owned()))
        })
        .collect();
    let pick = |rng: &mut rand::rngs::StdRng, n: usize| -> BTreeSet<Item> {
        let mut s = BTreeSet::new();
        while s.len() < n {
            s.insert(universe[rng.gen_range(0..universe.len())].clone());
        }
        s
    };
    let (depts, titles, sites) = (10usize, 3usize, 2usize);
    let base: Vec<BTreeSet<Item>> = (0..depts).map(|_| pick(&mut rng, 8)).collect();
    let extra: Vec<Vec<BTreeSet<Item>>> = (0..depts)
        .map(|_| (0..titles).map(|_| pick(&mut rng, 4)).collect())
        .collect();
    (0..users)
        .map(|_| {
            let (d, t, s) = (
                rng.gen_range(0..depts),
                rng.gen_range(0..titles),
                rng.gen_range(0..sites),
            );
            let mut held: BTreeSet<Item> = base[d]
                .iter()
                .chain(extra[d][t].iter())
                .filter(|_| rng.gen_bool(0.95))
                .cloned()
                .collect();
            for _ in 0..2 {
                if rng.gen_bool(0.5) {
                    held.insert(universe[rng.gen_range(0..universe.len())].clone());
                }
            }
            let used = held.iter().filter(|_| rng.gen_bool(0.8)).cloned().collect();
            let features = [
                format!("role:d{d}-t{t}"),
                format!("group:d{d}-s{s}"),
                format!("attr:department=d{d}"),
                format!("attr:title=t{t}"),
                format!("attr:site=s{s}"),
            ]
            .into_iter()
            .collect();
            Profile {
                features,
                held,
                used,
            }
        })
        .collect()
}

/// Holds out `fraction` of each user's held items (at random, at least one
/// of users holding two or more), predicts from every other user, and
/// counts suggestions at or above `threshold` that name a held-out item.
pub fn holdout(profiles: &[Profile], fraction: f64, threshold: f64, seed: u64) -> Holdout {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut held_out, mut suggested, mut hits) = (0, 0, 0);
    for (n, p) in profiles.iter().enumerate() {
        let mut items: Vec<&Item> = p.held.iter().collect();
        if items.len() < 2 {
            continue;
        }
        items.shuffle(&mut rng);
        let k = ((items.len() as f64 * fraction).round() as usize).max(1);
        let hidden: BTreeSet<Item> = items[..k].iter().map(|i| (*i).clone()).collect();
        let target = Profile {
            features: p.features.clone(),
            held: p.held.difference(&hidden).cloned().collect(),
            used: p.used.difference(&hidden).cloned().collect(),
        };
        let others = profiles
            .iter()
            .enumerate()
            .filter(|(m, _)| *m != n)
            .map(|(_, q)| q);
        let shown: Vec<Scored> = predict(&target, others)
            .into_iter()
            .filter(|s| s.confidence >= threshold)
            .collect();
        held_out += hidden.len();
        suggested += shown.len();
        hits += shown.iter().filter(|s| hidden.contains(&s.item)).count();
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Holdout {
        users: profiles.len(),
        held_out,
        suggested,
        hits,
        precision: ratio(hits, suggested),
        recall: ratio(hits, held_out),
    }
}

// ---------------------------------------------------------------- serving

/// Attributes that identify a person rather than describe a job: never features.
const PERSONAL: &[&str] = &["email", "name", "phone", "employee_id", "id"];

/// One suggestion, with how to act on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub resource_type: String,
    pub action: String,
    pub confidence: f64,
    pub peers: usize,
    pub holders: usize,
    pub users: usize,
    /// The role most holding peers have that grants it: the call that assigns it.
    #[schema(value_type = Option<Object>)]
    pub grant: Option<Value>,
    /// The call that asks for it through an approval chain instead (the
    /// user makes it: `POST /access-requests` opens a request for its caller).
    #[schema(value_type = Object)]
    pub access_request: Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Predictions {
    pub user_id: Uuid,
    pub threshold: f64,
    pub window_days: i64,
    /// Principals of the same kind compared with.
    pub compared: usize,
    pub suggestions: Vec<Suggestion>,
}

fn features(p: &sentinel_policy::source::PrincipalSource) -> BTreeSet<String> {
    let mut f: BTreeSet<String> = p.roles.iter().map(|r| format!("role:{r}")).collect();
    f.extend(p.groups.iter().map(|g| format!("group:{g}")));
    for (k, v) in &p.attributes {
        if PERSONAL.contains(&k.as_str()) {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            _ => continue,
        };
        f.insert(format!("attr:{k}={v}"));
    }
    f
}

/// Whether role `id` (or a parent) has an unconditional allow for `item`.
fn role_grants(src: &PolicySource, id: &str, item: &Item) -> bool {
    let mut cur = Some(id.to_owned());
    for _ in 0..64 {
        let Some(r) = cur
            .take()
            .and_then(|c| src.roles.iter().find(|r| r.id == c))
        else {
            return false;
        };
        let grants = r.permissions.iter().any(|pid| {
            src.permissions.iter().any(|p| {
                &p.id == pid
                    && p.effect == Effect::Allow
                    && p.conditions.is_empty()
                    && (p.resource_type == item.0 || p.resource_type == "*")
                    && p.actions.iter().any(|a| *a == item.1 || a == "*")
            })
        });
        if grants {
            return true;
        }
        cur = r.parent.clone();
    }
    false
}

/// The suggestions for `user` at or above the configured threshold, stored
/// in `permission_predictions` and logged in `ai_decision_logs`.
pub async fn suggestions(state: &AppState, caller: &Caller, user: Uuid) -> ApiResult<Predictions> {
    let started = std::time::Instant::now();
    if !caller.scopes.can_read_ai() {
        return Err(ApiError::denied("scope `ai:read` required"));
    }
    caller.require("user", Level::Read)?;
    let tenant = caller.target;
    let threshold = state.config.prediction_confidence_threshold;
    let window_days = state.config.prediction_window_days;
    let now = chrono::Utc::now();
    let mut tx = db::begin(&state.pool, TenantCtx::One(tenant)).await?;
    let src = crate::snapshot::load_source(&mut tx)
        .await
        .map_err(ApiError::internal)?;
    let snap = sentinel_policy::compile(&src).map_err(|errs| {
        tracing::error!(errors = ?errs, "stored policy does not compile");
        ApiError::PolicyUnavailable
    })?;
    let Some(me) = src
        .principals
        .iter()
        .find(|p| p.id == user && p.tenant == tenant)
    else {
        return Err(ApiError::NotFound);
    };
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT principal_id, resource, action FROM sentinel.audit_logs
          WHERE tenant_id = $1 AND source = 'gateway' AND outcome = 'allowed'
            AND time >= $2 AND principal_id IS NOT NULL AND resource IS NOT NULL AND action IS NOT NULL",
    )
    .bind(tenant)
    .bind(now - chrono::Duration::days(window_days))
    .fetch_all(&mut *tx)
    .await?;
    let mut used: BTreeMap<String, BTreeSet<Item>> = BTreeMap::new();
    for (p, r, a) in rows {
        used.entry(p).or_default().insert((r, a));
    }
    // The items: every (type, action) the tenant's permissions name.
    let mut items: BTreeSet<Item> = BTreeSet::new();
    for p in src.permissions.iter().filter(|p| p.resource_type != "*") {
        for a in &p.actions {
            let actions: Vec<String> = if a == "*" {
                ["read", "create", "update", "delete"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                vec![a.clone()]
            };
            for a in actions {
                items.insert((p.resource_type.clone(), a));
            }
        }
    }
    let profile = |p: &sentinel_policy::source::PrincipalSource| -> Profile {
        let held = match snap.principal(&p.id) {
            None => BTreeSet::new(),
            Some(c) => items
                .iter()
                .filter(|(t, a)| {
                    snap.authorize(&AccessRequest {
                        principal: c,
                        resource_type: t,
                        resource_id: None,
                        action: a,
                        target_tenant: tenant,
                        approval_chain: None,
                        context: RequestContext {
                            now: now.timestamp(),
                            client_ip: None,
                            method: "GET",
                            mfa: false,
                            risk_score: None,
                        },
                    })
                    .allowed
                })
                .cloned()
                .collect(),
        };
        Profile {
            features: features(p),
            used: used.get(&p.id.to_string()).cloned().unwrap_or_default(),
            held,
        }
    };
    let target = profile(me);
    let others: Vec<(&sentinel_policy::source::PrincipalSource, Profile)> = src
        .principals
        .iter()
        .filter(|p| p.tenant == tenant && p.id != user && p.service_account == me.service_account)
        .map(|p| (p, profile(p)))
        .collect();
    let scored = predict(&target, others.iter().map(|(_, p)| p));
    let mut out = Vec::new();
    for s in scored.into_iter().filter(|s| s.confidence >= threshold) {
        // The role most holders of the item have, the user lacks, and that grants it.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for (p, prof) in &others {
            if !prof.held.contains(&s.item)
                || jaccard(&target.features, &prof.features) < MIN_SIMILARITY
            {
                continue;
            }
            for r in p.roles.iter().filter(|r| !me.roles.contains(*r)) {
                if role_grants(&src, r, &s.item) {
                    *votes.entry(r.as_str()).or_default() += 1;
                }
            }
        }
        let role = votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
        let grant = role.map(|(r, _)| {
            let name = src.roles.iter().find(|x| x.id == r).map(|x| x.name.clone());
            json!({"method": "POST", "path": format!("/api/v1/users/{user}/roles"),
                   "body": {"role_id": r}, "role": name})
        });
        let access_request = json!({"method": "POST", "path": "/api/v1/access-requests",
            "made_by": "the user", "body": {"resource": format!("{}:*", s.item.0), "action": s.item.1,
                     "justification": format!("{} of {} similar peers hold it", s.holders, s.peers)}});
        sqlx::query(
            "INSERT INTO sentinel.permission_predictions
                 (tenant_id, user_id, resource_type, action, confidence, peers, evidence, computed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now())
             ON CONFLICT (tenant_id, user_id, resource_type, action) DO UPDATE
                SET confidence = excluded.confidence, peers = excluded.peers,
                    evidence = excluded.evidence, computed_at = excluded.computed_at",
        )
        .bind(tenant)
        .bind(user)
        .bind(&s.item.0)
        .bind(&s.item.1)
        .bind(s.confidence)
        .bind(i32::try_from(s.peers).unwrap_or(i32::MAX))
        .bind(json!({"holders": s.holders, "users": s.users}))
        .execute(&mut *tx)
        .await?;
        out.push(Suggestion {
            resource_type: s.item.0,
            action: s.item.1,
            confidence: s.confidence,
            peers: s.peers,
            holders: s.holders,
            users: s.users,
            grant,
            access_request,
        });
    }
    super::query::log::decision_log(
        &mut tx,
        tenant,
        "prediction",
        caller.user_id,
        json!({"user_id": user, "threshold": threshold, "window_days": window_days,
               "compared": others.len()}),
        json!({"suggestions": out.iter().map(|s| json!({"resource_type": s.resource_type,
               "action": s.action, "confidence": s.confidence})).collect::<Vec<_>>()}),
    )
    .await?;
    tx.commit().await?;
    let m = &state.metrics.ai_query;
    m.suggestions.inc_by(out.len() as u64);
    m.prediction_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(Predictions {
        user_id: user,
        threshold,
        window_days,
        compared: others.len(),
        suggestions: out,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn item(t: &str, a: &str) -> Item {
        (t.to_owned(), a.to_owned())
    }

    fn prof(features: &[&str], held: Vec<Item>, used: Vec<Item>) -> Profile {
        Profile {
            features: features.iter().map(|f| (*f).to_owned()).collect(),
            held: held.into_iter().collect(),
            used: used.into_iter().collect(),
        }
    }

    #[test]
    fn peers_who_hold_and_use_give_full_confidence() {
        let read = item("vessel", "read");
        let upd = item("vessel", "update");
        let target = prof(&["role:a", "group:g"], vec![read.clone()], vec![]);
        let peer = prof(
            &["role:a", "group:g"],
            vec![read.clone(), upd.clone()],
            vec![upd.clone()],
        );
        let idle = prof(
            &["role:a", "group:g"],
            vec![read.clone(), upd.clone()],
            vec![],
        );
        let stranger = prof(
            &["role:z"],
            vec![item("secret", "read")],
            vec![item("secret", "read")],
        );
        let out = predict(&target, [&peer, &peer.clone(), &stranger]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].item, upd);
        assert!((out[0].confidence - 1.0).abs() < 1e-9);
        // Held but never used: half the weight.
        let out = predict(&target, [&peer, &idle]);
        assert!((out[0].confidence - 0.75).abs() < 1e-9, "{out:?}");
        // One peer is not enough.
        assert!(predict(&target, [&peer, &stranger]).is_empty());
    }

    #[test]
    fn what_the_user_holds_is_never_suggested() {
        let read = item("vessel", "read");
        let target = prof(&["role:a"], vec![read.clone()], vec![]);
        let peer = prof(&["role:a"], vec![read.clone()], vec![read.clone()]);
        assert!(predict(&target, [&peer, &peer.clone()]).is_empty());
    }

    #[test]
    fn held_out_permissions_are_found_on_generated_users() {
        let users = synthetic(300, 7);
        let h = holdout(&users, 0.2, 0.8, 11);
        assert!(h.held_out > 300, "{h:?}");
        assert!(h.precision >= 0.7, "{h:?}");
        assert!(h.recall >= 0.5, "{h:?}");
    }
}
