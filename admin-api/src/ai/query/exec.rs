//! Runs a typed query against one tenant: policy questions with the shared
//! evaluator (`Snapshot::authorize`, as `/permissions/check` does) over the
//! tenant's compiled source, audit questions over `sentinel.audit_logs`,
//! account questions over `sentinel.users`, all inside one transaction of
//! that tenant (row-level security is the second wall).
//!
//! Names are resolved exactly (case-insensitive); a name that matches no
//! object, or several, is a [`Unresolved`] with candidates, never a guess.

use super::typed::{Resolved, TypedQuery, Window};
use crate::db::Tx;
use chrono::{DateTime, Utc};
use sentinel_policy::source::PolicySource;
use sentinel_policy::{AccessRequest, Decision, Principal, RequestContext, Snapshot};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The actions every resource type has (custom ones come from the policy).
const BASE_ACTIONS: &[&str] = &["read", "create", "update", "delete"];

/// What a question's answer holds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Answer {
    /// One sentence.
    pub summary: String,
    /// How many items (or, for a count, the count).
    pub count: i64,
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// What the query's names and window resolved to (ids, times).
    #[schema(value_type = Object)]
    pub resolved: Value,
}

/// A name of the question that does not name exactly one object.
#[derive(Debug, Clone)]
pub struct Unresolved {
    pub problem: String,
    pub candidates: Vec<String>,
}

/// Everything the executor reads, loaded once per question.
pub struct World {
    pub tenant: Uuid,
    pub tenant_name: String,
    pub src: PolicySource,
    pub snap: Snapshot,
    /// Permission id → name (sources carry ids only).
    pub permission_names: BTreeMap<String, String>,
    pub now: DateTime<Utc>,
}

pub enum Outcome {
    Answer(Answer),
    Unresolved(Unresolved),
}

fn unresolved(problem: String, candidates: Vec<String>) -> Outcome {
    Outcome::Unresolved(Unresolved {
        problem,
        candidates,
    })
}

impl World {
    /// The principal a question names: by email, the part of the email
    /// before `@`, the first word of the name, or the whole name.
    fn principal(&self, name: &str) -> Result<&sentinel_policy::source::PrincipalSource, Outcome> {
        let n = name.to_lowercase();
        let found: Vec<_> = self
            .src
            .principals
            .iter()
            .filter(|p| p.tenant == self.tenant)
            .filter(|p| {
                let full = p.name.to_lowercase();
                let local = full.split('@').next().unwrap_or_default();
                let first = full.split([' ', '.', '@']).next().unwrap_or_default();
                full == n || local == n || first == n
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => {
                let mut names: Vec<String> = self
                    .src
                    .principals
                    .iter()
                    .filter(|p| p.tenant == self.tenant)
                    .map(|p| p.name.clone())
                    .collect();
                names.sort();
                names.truncate(20);
                Err(unresolved(
                    format!("no principal named `{name}` in {}", self.tenant_name),
                    names,
                ))
            }
            many => Err(unresolved(
                format!("`{name}` names several principals; ask with the email"),
                many.iter().map(|p| p.name.clone()).collect(),
            )),
        }
    }

    fn compiled(&self, id: &Uuid) -> Result<&Principal, Outcome> {
        // INVARIANT: every principal of the source is in the snapshot compiled from it.
        self.snap
            .principal(id)
            .ok_or_else(|| unresolved("the principal is not in the policy".to_owned(), vec![]))
    }

    /// Resource types the tenant's permissions name (`*` left out).
    fn resource_types(&self) -> BTreeSet<String> {
        self.src
            .permissions
            .iter()
            .map(|p| p.resource_type.clone())
            .filter(|t| t != "*")
            .collect()
    }

    fn check_type(&self, t: &str) -> Result<(), Outcome> {
        let known = self.resource_types();
        if known.contains(t) {
            Ok(())
        } else {
            Err(unresolved(
                format!(
                    "no permission of {} names resource type `{t}`",
                    self.tenant_name
                ),
                known.into_iter().collect(),
            ))
        }
    }

    /// Actions the policy knows for a type: the four of every type and the
    /// custom ones its permissions name.
    fn actions(&self, t: &str) -> Vec<String> {
        let mut out: Vec<String> = BASE_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
        for p in &self.src.permissions {
            if p.resource_type == t || p.resource_type == "*" {
                for a in &p.actions {
                    if a != "*" && !out.contains(a) {
                        out.push(a.clone());
                    }
                }
            }
        }
        out
    }

    /// The evaluator's decision, asked the way `/permissions/check` asks it
    /// with an empty request context: now, no client address, no MFA, no
    /// risk score (conditions on those do not hold).
    fn decide(&self, p: &Principal, t: &str, id: Option<&str>, action: &str) -> Decision {
        self.snap.authorize(&AccessRequest {
            principal: p,
            resource_type: t,
            resource_id: id,
            action,
            target_tenant: self.tenant,
            approval_chain: None,
            context: RequestContext {
                now: self.now.timestamp(),
                client_ip: None,
                method: method_of(action),
                mfa: false,
                risk_score: None,
            },
        })
    }

    fn rules(&self, d: &Decision) -> Vec<Value> {
        d.rules
            .iter()
            .map(|i| {
                let id = self.snap.rule_id(i).to_owned();
                let name = self.permission_names.get(&id).cloned();
                json!({"id": id, "name": name})
            })
            .collect()
    }

    fn role_name(&self, id: &str) -> String {
        self.src
            .roles
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| id.to_owned())
    }
}

fn method_of(action: &str) -> &'static str {
    match action {
        "read" => "GET",
        "create" => "POST",
        "update" => "PATCH",
        "delete" => "DELETE",
        _ => "POST",
    }
}

fn person(p: &sentinel_policy::source::PrincipalSource) -> Value {
    json!({"id": p.id, "name": p.name, "service_account": p.service_account})
}

fn names(items: &[Value], key: &str) -> String {
    let v: Vec<&str> = items.iter().filter_map(|i| i[key].as_str()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// Runs the policy and account questions (everything but the audit ones).
pub fn run_policy(w: &World, q: &TypedQuery) -> Outcome {
    match run_policy_inner(w, q) {
        Ok(a) => Outcome::Answer(a),
        Err(o) => o,
    }
}

fn run_policy_inner(w: &World, q: &TypedQuery) -> Result<Answer, Outcome> {
    let tenant = json!({"tenant_id": w.tenant, "tenant": w.tenant_name});
    match q {
        TypedQuery::WhoCan {
            action,
            resource_type,
            resource_id,
            ..
        } => {
            w.check_type(resource_type)?;
            let mut items = Vec::new();
            for p in w.src.principals.iter().filter(|p| p.tenant == w.tenant) {
                let c = w.compiled(&p.id)?;
                let d = w.decide(c, resource_type, resource_id.as_deref(), action);
                if d.allowed {
                    let mut v = person(p);
                    v["rules"] = Value::Array(w.rules(&d));
                    items.push(v);
                }
            }
            let what = match resource_id {
                Some(id) => format!("{resource_type} `{id}`"),
                None => format!("every {resource_type}"),
            };
            Ok(Answer {
                summary: format!(
                    "{} principal(s) of {} may {action} {what}: {}",
                    items.len(),
                    w.tenant_name,
                    names(&items, "name")
                ),
                count: items.len() as i64,
                items,
                resolved: tenant,
            })
        }
        TypedQuery::WhatCan {
            principal,
            resource_type,
        } => {
            let p = w.principal(principal)?;
            let c = w.compiled(&p.id)?;
            let types: Vec<String> = match resource_type {
                Some(t) => {
                    w.check_type(t)?;
                    vec![t.clone()]
                }
                None => w.resource_types().into_iter().collect(),
            };
            let mut items = Vec::new();
            let mut allowed = Vec::new();
            for t in &types {
                for a in w.actions(t) {
                    let d = w.decide(c, t, None, &a);
                    if d.allowed {
                        allowed.push(format!("{a} {t}"));
                    }
                    items.push(
                        json!({"resource_type": t, "action": a, "allowed": d.allowed,
                        "reason": d.reason.name(), "rules": w.rules(&d)}),
                    );
                }
            }
            Ok(Answer {
                summary: format!(
                    "{} may: {}",
                    p.name,
                    if allowed.is_empty() {
                        "nothing".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
                count: allowed.len() as i64,
                items,
                resolved: json!({"tenant_id": w.tenant, "principal_id": p.id, "principal": p.name}),
            })
        }
        TypedQuery::Can {
            principal,
            action,
            resource_type,
            resource_id,
        } => {
            let p = w.principal(principal)?;
            let c = w.compiled(&p.id)?;
            w.check_type(resource_type)?;
            let d = w.decide(c, resource_type, resource_id.as_deref(), action);
            Ok(Answer {
                summary: format!(
                    "{}: {} {} {action} {resource_type}{} ({})",
                    if d.allowed { "yes" } else { "no" },
                    p.name,
                    if d.allowed { "may" } else { "may not" },
                    resource_id
                        .as_ref()
                        .map(|i| format!(" `{i}`"))
                        .unwrap_or_default(),
                    d.reason.as_str()
                ),
                count: i64::from(d.allowed),
                items: vec![json!({"allowed": d.allowed, "reason": d.reason.name(),
                    "reason_text": d.reason.as_str(), "rules": w.rules(&d)})],
                resolved: json!({"tenant_id": w.tenant, "principal_id": p.id, "principal": p.name}),
            })
        }
        TypedQuery::RolesOf { principal } => {
            let p = w.principal(principal)?;
            let mut items = Vec::new();
            let mut seen = BTreeSet::new();
            for r in &p.roles {
                push_role(w, r, "direct", &mut seen, &mut items);
            }
            for g in &p.groups {
                let Some(group) = w.src.groups.iter().find(|x| &x.id == g) else {
                    continue;
                };
                for r in &group.roles {
                    push_role(
                        w,
                        r,
                        &format!("group {}", group.name),
                        &mut seen,
                        &mut items,
                    );
                }
            }
            Ok(Answer {
                summary: format!("{} holds: {}", p.name, names(&items, "role")),
                count: items.len() as i64,
                items,
                resolved: json!({"tenant_id": w.tenant, "principal_id": p.id, "principal": p.name}),
            })
        }
        TypedQuery::RoleMembers { role } => {
            let want = role.replace(' ', "_");
            let Some(r) = w
                .src
                .roles
                .iter()
                .find(|r| r.name.to_lowercase().replace(' ', "_") == want)
            else {
                return Err(unresolved(
                    format!("no role named `{role}` in {}", w.tenant_name),
                    w.src.roles.iter().map(|r| r.name.clone()).collect(),
                ));
            };
            let items: Vec<Value> =
                w.src
                    .principals
                    .iter()
                    .filter(|p| p.tenant == w.tenant)
                    .filter_map(|p| {
                        let via = if p.roles.contains(&r.id) {
                            "direct".to_owned()
                        } else {
                            let g =
                                w.src.groups.iter().find(|g| {
                                    p.groups.contains(&g.id) && g.roles.contains(&r.id)
                                })?;
                            format!("group {}", g.name)
                        };
                        let mut v = person(p);
                        v["via"] = json!(via);
                        Some(v)
                    })
                    .collect();
            Ok(Answer {
                summary: format!("role {} is held by: {}", r.name, names(&items, "name")),
                count: items.len() as i64,
                items,
                resolved: json!({"tenant_id": w.tenant, "role_id": r.id, "role": r.name}),
            })
        }
        TypedQuery::GroupMembers { group } => {
            let Some(g) = w
                .src
                .groups
                .iter()
                .filter(|g| g.tenant == w.tenant)
                .find(|g| g.name.to_lowercase() == *group)
            else {
                return Err(unresolved(
                    format!("no group named `{group}` in {}", w.tenant_name),
                    w.src.groups.iter().map(|g| g.name.clone()).collect(),
                ));
            };
            let items: Vec<Value> = w
                .src
                .principals
                .iter()
                .filter(|p| p.groups.contains(&g.id))
                .map(person)
                .collect();
            Ok(Answer {
                summary: format!("group {} has: {}", g.name, names(&items, "name")),
                count: items.len() as i64,
                items,
                resolved: json!({"tenant_id": w.tenant, "group_id": g.id, "group": g.name}),
            })
        }
        TypedQuery::LockedAccounts => {
            let now = w.now.timestamp();
            let items: Vec<Value> = w
                .src
                .principals
                .iter()
                .filter(|p| p.tenant == w.tenant)
                .filter(|p| p.locked || p.locked_until.is_some_and(|t| t > now))
                .map(|p| {
                    let mut v = person(p);
                    v["locked_until"] =
                        json!(p.locked_until.and_then(|t| DateTime::from_timestamp(t, 0)));
                    v
                })
                .collect();
            Ok(Answer {
                summary: format!("locked in {}: {}", w.tenant_name, names(&items, "name")),
                count: items.len() as i64,
                items,
                resolved: tenant,
            })
        }
        TypedQuery::ServiceAccounts => {
            let items: Vec<Value> = w
                .src
                .principals
                .iter()
                .filter(|p| p.tenant == w.tenant && p.service_account)
                .map(person)
                .collect();
            Ok(Answer {
                summary: format!(
                    "service accounts of {}: {}",
                    w.tenant_name,
                    names(&items, "name")
                ),
                count: items.len() as i64,
                items,
                resolved: tenant,
            })
        }
        // The audit and key questions read the database (`run_db`).
        TypedQuery::WhyDenied { .. }
        | TypedQuery::Denials { .. }
        | TypedQuery::CountRequests { .. }
        | TypedQuery::StaleKeys { .. } => Err(unresolved(
            "this question reads the database".to_owned(),
            vec![],
        )),
    }
}

fn push_role(w: &World, id: &str, via: &str, seen: &mut BTreeSet<String>, out: &mut Vec<Value>) {
    let mut cur = Some(id.to_owned());
    let mut via = via.to_owned();
    // The parent chain (cycles are refused when written; the bound is a second wall).
    for _ in 0..64 {
        let Some(r) = cur.take() else { break };
        if seen.insert(r.clone()) {
            out.push(json!({"role_id": r, "role": w.role_name(&r), "via": via}));
        }
        cur = w
            .src
            .roles
            .iter()
            .find(|x| x.id == r)
            .and_then(|x| x.parent.clone());
        via = format!("inherited from {}", w.role_name(&r));
    }
}

/// A window, resolved (or the problem with it).
fn resolve(window: &Window, now: DateTime<Utc>) -> Result<Resolved, Outcome> {
    window
        .resolve(now)
        .ok_or_else(|| unresolved("the date or time is not one".to_owned(), vec![]))
}

/// (id, name, key prefix, key issued at) of a service account.
type KeyRow = (Uuid, String, Option<String>, Option<DateTime<Utc>>);

type EventRow = (
    DateTime<Utc>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    Option<String>,
);

/// Runs the questions that read the audit trail and the accounts table,
/// in `tx` (the tenant's transaction).
pub async fn run_db(w: &World, q: &TypedQuery, tx: &mut Tx) -> Result<Outcome, sqlx::Error> {
    let out = match q {
        TypedQuery::WhyDenied { principal, window }
        | TypedQuery::Denials {
            principal: Some(principal),
            window,
        } => {
            let p = match w.principal(principal) {
                Ok(p) => p,
                Err(o) => return Ok(o),
            };
            denials(w, Some(p), window, tx).await?
        }
        TypedQuery::Denials {
            principal: None,
            window,
        } => denials(w, None, window, tx).await?,
        TypedQuery::CountRequests {
            principal,
            window,
            outcome,
        } => {
            let p = match w.principal(principal) {
                Ok(p) => p,
                Err(o) => return Ok(o),
            };
            let r = match resolve(window, w.now) {
                Ok(r) => r,
                Err(o) => return Ok(o),
            };
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sentinel.audit_logs
                  WHERE tenant_id = $1 AND principal_id = $2 AND source = 'gateway'
                    AND time >= $3 AND time < $4 AND ($5::text IS NULL OR outcome = $5)",
            )
            .bind(w.tenant)
            .bind(p.id.to_string())
            .bind(r.from)
            .bind(r.to)
            .bind(outcome)
            .fetch_one(&mut **tx)
            .await?;
            let what = outcome
                .as_deref()
                .map(|o| format!(" {o}"))
                .unwrap_or_default();
            Outcome::Answer(Answer {
                summary: format!(
                    "{} made {n}{what} request(s) from {} to {}",
                    p.name,
                    r.from.to_rfc3339(),
                    r.to.to_rfc3339()
                ),
                count: n,
                items: vec![],
                resolved: json!({"tenant_id": w.tenant, "principal_id": p.id,
                    "principal": p.name, "from": r.from, "to": r.to}),
            })
        }
        TypedQuery::StaleKeys { older_than_days } => {
            let cutoff = w.now - chrono::Duration::days(i64::from(*older_than_days));
            let rows: Vec<KeyRow> = sqlx::query_as(
                "SELECT id, name, api_key_prefix, api_key_created_at FROM sentinel.users
                  WHERE tenant_id = $1 AND is_service_account AND api_key_created_at < $2
                  ORDER BY api_key_created_at, id",
            )
            .bind(w.tenant)
            .bind(cutoff)
            .fetch_all(&mut **tx)
            .await?;
            let items: Vec<Value> = rows
                .into_iter()
                .map(|(id, name, prefix, created)| {
                    json!({"id": id, "name": name, "key_prefix": prefix, "key_created_at": created})
                })
                .collect();
            Outcome::Answer(Answer {
                summary: format!(
                    "{} service account(s) of {} have keys issued before {}: {}",
                    items.len(),
                    w.tenant_name,
                    cutoff.to_rfc3339(),
                    names(&items, "name")
                ),
                count: items.len() as i64,
                items,
                resolved: json!({"tenant_id": w.tenant, "issued_before": cutoff}),
            })
        }
        other => run_policy(w, other),
    };
    Ok(out)
}

async fn denials(
    w: &World,
    p: Option<&sentinel_policy::source::PrincipalSource>,
    window: &Window,
    tx: &mut Tx,
) -> Result<Outcome, sqlx::Error> {
    let r = match resolve(window, w.now) {
        Ok(r) => r,
        Err(o) => return Ok(o),
    };
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT time, request_id, principal_id, method, path, resource, action, code, rules, reason
           FROM sentinel.audit_logs
          WHERE tenant_id = $1 AND outcome = 'denied' AND time >= $2 AND time < $3
            AND ($4::text IS NULL OR principal_id = $4)
          ORDER BY time DESC, id DESC LIMIT 100",
    )
    .bind(w.tenant)
    .bind(r.from)
    .bind(r.to)
    .bind(p.map(|p| p.id.to_string()))
    .fetch_all(&mut **tx)
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(
            |(
                time,
                request_id,
                principal_id,
                method,
                path,
                resource,
                action,
                code,
                rules,
                reason,
            )| {
                json!({"time": time, "request_id": request_id, "principal_id": principal_id,
                    "method": method, "path": path, "resource": resource, "action": action,
                    "code": code, "reason": reason, "rules": rules})
            },
        )
        .collect();
    let who = p
        .map(|p| p.name.clone())
        .unwrap_or_else(|| "anyone".to_owned());
    let reasons: BTreeSet<&str> = items.iter().filter_map(|i| i["reason"].as_str()).collect();
    let summary = if items.is_empty() {
        format!(
            "no denied request of {who} from {} to {}",
            r.from.to_rfc3339(),
            r.to.to_rfc3339()
        )
    } else {
        format!(
            "{} denied request(s) of {who}; reasons: {}",
            items.len(),
            reasons.into_iter().collect::<Vec<_>>().join("; ")
        )
    };
    let mut resolved = json!({"tenant_id": w.tenant, "from": r.from, "to": r.to});
    if let Some(p) = p {
        resolved["principal_id"] = json!(p.id);
        resolved["principal"] = json!(p.name);
    }
    Ok(Outcome::Answer(Answer {
        summary,
        count: items.len() as i64,
        items,
        resolved,
    }))
}
