//! The permission optimizer's analysis: from one tenant's [`Facts`], the
//! findings (docs/ai.md, "Permission optimizer"). Pure: no I/O, no clock;
//! the route module stores the findings and applies them on request.
//!
//! Every finding carries its evidence (counts, last use, the window and the
//! audit query behind it) and a proposal: the admin-API calls that carry it
//! out. Nothing here or anywhere in the optimizer applies a proposal; only
//! an admin's `POST …/findings/{id}/apply` does, through the normal handlers.

use super::facts::{Facts, PrincipalInfo, Source, Use, USAGE_SQL};
use crate::config::SodRule;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// One admin-API call of a proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProposedCall {
    pub method: String,
    /// Under `/api/v1`, e.g. `/api/v1/roles/{id}`.
    pub path: String,
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
}

fn call(method: &str, path: String, body: Option<Value>) -> ProposedCall {
    ProposedCall {
        method: method.to_owned(),
        path,
        body,
    }
}

/// What the analysis found, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    /// Stable across runs: kind and subject ids.
    pub fingerprint: String,
    pub summary: String,
    pub evidence: Value,
    pub proposal: Vec<ProposedCall>,
}

/// The tunables (docs/ai.md, "Tuning").
#[derive(Debug, Clone)]
pub struct Settings {
    pub jaccard_threshold: f64,
    pub role_mining_min_users: usize,
    pub sod_rules: Vec<SodRule>,
}

pub const KINDS: &[&str] = &[
    "unused_permission",
    "unused_role",
    "over_privileged",
    "near_duplicate_roles",
    "role_mining",
    "sod_conflict",
];

/// Every finding of the tenant, in a stable order.
pub fn analyze(f: &Facts, s: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(unused_permissions(f));
    out.extend(unused_roles(f));
    out.extend(over_privileged(f));
    out.extend(near_duplicates(f, s.jaccard_threshold));
    out.extend(role_mining(f, s.role_mining_min_users));
    out.extend(sod_findings(f, &s.sod_rules));
    out
}

fn window(f: &Facts) -> Value {
    json!({
        "from": crate::audit::event::format_time(&f.from),
        "to": crate::audit::event::format_time(&f.to),
        "days": (f.to - f.from).num_days(),
    })
}

/// The audit query behind a count: the API search (for one principal) and
/// the SQL the optimizer ran.
fn audit_query(f: &Facts, principal: Option<Uuid>, perm: Option<Uuid>) -> Value {
    let from = crate::audit::event::format_time(&f.from);
    let to = crate::audit::event::format_time(&f.to);
    let mut api =
        format!("/api/v1/audit/events?outcome=allowed&source=gateway&from={from}&to={to}");
    if let Some(p) = principal {
        api.push_str(&format!("&principal_id={p}"));
    }
    let mut sql = USAGE_SQL.replace("$1", &format!("'{}'", f.tenant));
    sql = sql
        .replace("$2", &format!("'{from}'"))
        .replace("$3", &format!("'{to}'"));
    if let Some(p) = principal {
        sql = sql.replace(
            "AND a.principal_id IS NOT NULL",
            &format!("AND a.principal_id = '{p}'"),
        );
    }
    if let Some(r) = perm {
        sql = sql.replace(" GROUP BY", &format!("\n   AND r.rule = '{r}'\n GROUP BY"));
    }
    json!({"api": api, "sql": sql, "counts": "allowed gateway decisions whose `rules` name the permission"})
}

fn use_json(u: Option<Use>) -> Value {
    match u {
        Some(u) => {
            json!({"count": u.count, "last_used": crate::audit::event::format_time(&u.last)})
        }
        None => json!({"count": 0, "last_used": null}),
    }
}

fn names(f: &Facts, ids: &BTreeSet<Uuid>) -> Vec<Value> {
    ids.iter()
        .map(|p| json!({"id": p, "name": f.perm_name(p)}))
        .collect()
}

/// Active allow permissions someone holds and nobody used in the window.
fn unused_permissions(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in f.perms.values().filter(|p| p.allow && p.active) {
        if f.perm_uses.contains_key(&p.id) {
            continue;
        }
        let holders: Vec<&PrincipalInfo> = f
            .principals
            .values()
            .filter(|u| u.usable && u.allows.contains(&p.id))
            .collect();
        if holders.is_empty() {
            continue;
        }
        let roles: Vec<Value> = f
            .roles
            .values()
            .filter(|r| r.chain_allows.contains(&p.id))
            .map(|r| json!({"id": r.id, "name": r.name}))
            .collect();
        out.push(Finding {
            kind: "unused_permission",
            fingerprint: format!("unused_permission:{}", p.id),
            summary: format!(
                "permission `{}` is held by {} principal(s) and was not used in the window: deactivate it",
                p.name,
                holders.len()
            ),
            evidence: json!({
                "permission": {"id": p.id, "name": p.name, "resource_type": p.resource_type, "actions": p.actions},
                "holders": holders.len(),
                "roles": roles,
                "uses": use_json(None),
                "window": window(f),
                "audit_query": audit_query(f, None, Some(p.id)),
            }),
            proposal: vec![call(
                "PATCH",
                format!("/api/v1/permissions/{}", p.id),
                Some(json!({"is_active": false})),
            )],
        });
    }
    out
}

/// Policy roles (no admin scopes, not system roles) nobody holds, directly,
/// through a group, or as the ancestor of a held role.
fn unused_roles(f: &Facts) -> Vec<Finding> {
    let held: BTreeSet<Uuid> = f
        .principals
        .values()
        .flat_map(|p| p.roles.iter().copied())
        .collect();
    f.roles
        .values()
        .filter(|r| !r.is_system && r.scopes.is_empty() && !held.contains(&r.id))
        .map(|r| Finding {
            kind: "unused_role",
            fingerprint: format!("unused_role:{}", r.id),
            summary: format!("role `{}` is held by nobody: delete it", r.name),
            evidence: json!({
                "role": {"id": r.id, "name": r.name},
                "holders": 0,
                "groups": r.groups.len(),
                "children": r.children.len(),
                "permissions": names(f, &r.chain_allows),
                "window": window(f),
            }),
            proposal: vec![call("DELETE", format!("/api/v1/roles/{}", r.id), None)],
        })
        .collect()
}

/// The call that takes `source` from principal `p`.
fn remove_source(p: Uuid, s: Source) -> ProposedCall {
    match s {
        Source::Role(r) => call("DELETE", format!("/api/v1/users/{p}/roles/{r}"), None),
        Source::Group(g) => call("DELETE", format!("/api/v1/groups/{g}/members/{p}"), None),
    }
}

fn source_json(f: &Facts, s: Source) -> Value {
    match s {
        Source::Role(r) => {
            json!({"role": r, "name": f.roles.get(&r).map(|r| r.name.clone())})
        }
        Source::Group(g) => {
            json!({"group": g, "name": f.groups.get(&g).map(|g| g.name.clone())})
        }
    }
}

/// Sources of `p` that can go, one after another, without taking anything
/// outside `may_lose`: greedy, so that two sources granting the same used
/// permission are never both removed.
fn removable(f: &Facts, p: &PrincipalInfo, may_lose: &BTreeSet<Uuid>) -> Vec<Source> {
    let mut kept = p.sources.clone();
    let mut gone = Vec::new();
    for s in &p.sources {
        let rest: Vec<Source> = kept.iter().copied().filter(|x| x != s).collect();
        let before = f.allows_of(&kept);
        let after = f.allows_of(&rest);
        let lost: BTreeSet<Uuid> = before.difference(&after).copied().collect();
        if !lost.is_empty() && lost.is_subset(may_lose) {
            kept = rest;
            gone.push(*s);
        }
    }
    gone
}

/// Principals who used something in the window but hold permissions they
/// never used that others do use (permissions nobody used are
/// `unused_permission`; principals who used nothing are the compliance
/// monitor's dormant accounts).
fn over_privileged(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in f.principals.values() {
        if !p.usable || !f.active_principals.contains(&p.id) {
            continue;
        }
        let unused: BTreeSet<Uuid> = p
            .allows
            .iter()
            .copied()
            .filter(|x| f.use_of(p.id, *x).is_none() && f.perm_uses.contains_key(x))
            .collect();
        if unused.is_empty() {
            continue;
        }
        let used: BTreeSet<Uuid> = p.allows.difference(&unused).copied().collect();
        let gone = removable(f, p, &unused);
        let summary = if gone.is_empty() {
            format!(
                "`{}` holds {} permission(s) never used in the window, inside roles whose other permissions they use: split those roles",
                p.name,
                unused.len()
            )
        } else {
            format!(
                "`{}` holds {} permission(s) never used in the window: take away {}",
                p.name,
                unused.len(),
                gone.iter()
                    .map(|s| match s {
                        Source::Role(r) =>
                            format!("role `{}`", f.roles.get(r).map_or("?", |r| &r.name)),
                        Source::Group(g) =>
                            format!("group `{}`", f.groups.get(g).map_or("?", |g| &g.name)),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let idlist: Vec<String> = unused.iter().map(Uuid::to_string).collect();
        out.push(Finding {
            kind: "over_privileged",
            fingerprint: format!("over_privileged:{}:{}", p.id, idlist.join(",")),
            summary,
            evidence: json!({
                "principal": {"id": p.id, "name": p.name, "service_account": p.service_account},
                "held": p.allows.len(),
                "used": used.len(),
                "unused": names(f, &unused),
                "used_permissions": used.iter().map(|x| json!({
                    "id": x, "name": f.perm_name(x), "uses": use_json(f.use_of(p.id, *x)),
                })).collect::<Vec<_>>(),
                "removable": gone.iter().map(|s| source_json(f, *s)).collect::<Vec<_>>(),
                "window": window(f),
                "audit_query": audit_query(f, Some(p.id), None),
            }),
            proposal: gone.iter().map(|s| remove_source(p.id, *s)).collect(),
        });
    }
    out
}

fn jaccard(a: &BTreeSet<Uuid>, b: &BTreeSet<Uuid>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

fn ancestors(f: &Facts, r: Uuid) -> BTreeSet<Uuid> {
    let mut out = BTreeSet::new();
    let mut at = f.roles.get(&r).and_then(|r| r.parent);
    while let Some(p) = at.filter(|p| out.insert(*p)) {
        at = f.roles.get(&p).and_then(|r| r.parent);
    }
    out
}

/// Pairs of policy roles (not related by inheritance) whose permission sets
/// overlap at least `threshold` (Jaccard): merge the one fewer hold into
/// the other.
fn near_duplicates(f: &Facts, threshold: f64) -> Vec<Finding> {
    let holders = |r: Uuid| {
        f.principals
            .values()
            .filter(|p| p.roles.contains(&r))
            .count()
    };
    let cands: Vec<_> = f
        .roles
        .values()
        .filter(|r| !r.is_system && r.scopes.is_empty() && !r.chain_allows.is_empty())
        .collect();
    let mut out = Vec::new();
    for (i, a) in cands.iter().enumerate() {
        for b in &cands[i + 1..] {
            if ancestors(f, a.id).contains(&b.id) || ancestors(f, b.id).contains(&a.id) {
                continue;
            }
            let j = jaccard(&a.chain_allows, &b.chain_allows);
            if j < threshold {
                continue;
            }
            let (ha, hb) = (holders(a.id), holders(b.id));
            let (keep, drop) = if (ha, &b.name) >= (hb, &a.name) {
                (*a, *b)
            } else {
                (*b, *a)
            };
            let mut proposal = Vec::new();
            let movers: Vec<Uuid> = drop
                .direct_users
                .difference(&keep.direct_users)
                .copied()
                .collect();
            if !movers.is_empty() {
                proposal.push(call(
                    "POST",
                    format!("/api/v1/roles/{}/assign", keep.id),
                    Some(json!({"user_ids": movers})),
                ));
            }
            for g in drop.groups.difference(&keep.groups) {
                proposal.push(call(
                    "POST",
                    format!("/api/v1/groups/{g}/roles"),
                    Some(json!({"role_ids": [keep.id]})),
                ));
            }
            for c in &drop.children {
                proposal.push(call(
                    "PATCH",
                    format!("/api/v1/roles/{c}"),
                    Some(json!({"parent_role_id": keep.id})),
                ));
            }
            proposal.push(call("DELETE", format!("/api/v1/roles/{}", drop.id), None));
            let (lo, hi) = if a.id < b.id {
                (a.id, b.id)
            } else {
                (b.id, a.id)
            };
            let only_keep: BTreeSet<Uuid> = keep
                .chain_allows
                .difference(&drop.chain_allows)
                .copied()
                .collect();
            let only_drop: BTreeSet<Uuid> = drop
                .chain_allows
                .difference(&keep.chain_allows)
                .copied()
                .collect();
            out.push(Finding {
                kind: "near_duplicate_roles",
                fingerprint: format!("near_duplicate_roles:{lo}:{hi}"),
                summary: format!(
                    "roles `{}` and `{}` are near-duplicates (Jaccard {:.2}): move the holders of `{}` to `{}` and delete it",
                    keep.name, drop.name, j, drop.name, keep.name
                ),
                evidence: json!({
                    "keep": {"id": keep.id, "name": keep.name, "holders": holders(keep.id)},
                    "drop": {"id": drop.id, "name": drop.name, "holders": holders(drop.id)},
                    "jaccard": (j * 1000.0).round() / 1000.0,
                    "threshold": threshold,
                    "shared": keep.chain_allows.intersection(&drop.chain_allows).count(),
                    "only_in_keep": names(f, &only_keep),
                    "only_in_drop": names(f, &only_drop),
                    "note": "holders of the dropped role gain `only_in_keep` and lose `only_in_drop`",
                }),
                proposal,
            });
        }
    }
    out
}

/// Groups of at least `min_users` users with the same effective permissions
/// that no single role grants: a role to create for them.
fn role_mining(f: &Facts, min_users: usize) -> Vec<Finding> {
    let mut by_set: BTreeMap<&BTreeSet<Uuid>, Vec<&PrincipalInfo>> = BTreeMap::new();
    for p in f.principals.values() {
        if p.usable && !p.service_account && !p.allows.is_empty() {
            by_set.entry(&p.allows).or_default().push(p);
        }
    }
    let named: BTreeSet<&BTreeSet<Uuid>> = f.roles.values().map(|r| &r.chain_allows).collect();
    let mut out = Vec::new();
    for (set, users) in by_set {
        if users.len() < min_users.max(1) || named.contains(set) {
            continue;
        }
        let ids: Vec<String> = set.iter().map(Uuid::to_string).collect();
        let key = {
            use sha2::Digest;
            let h = sha2::Sha256::digest(ids.join(",").as_bytes());
            crate::audit::chain::hex(&h[..4])
        };
        let roles_now: BTreeSet<String> = users
            .iter()
            .flat_map(|u| u.roles.iter())
            .filter_map(|r| f.roles.get(r).map(|r| r.name.clone()))
            .collect();
        // Create the role, give it to the users, then take away their
        // direct roles it covers (`{{0.id}}`: the id call 0 answers).
        let mut proposal = vec![
            call(
                "POST",
                "/api/v1/roles".to_owned(),
                Some(json!({
                    "name": format!("mined-{key}"),
                    "description": format!("mined from {} users with the same effective permissions", users.len()),
                    "permission_ids": set,
                })),
            ),
            call(
                "POST",
                "/api/v1/roles/{{0.id}}/assign".to_owned(),
                Some(json!({"user_ids": users.iter().map(|u| u.id).collect::<Vec<_>>()})),
            ),
        ];
        for u in &users {
            for s in &u.sources {
                if let Source::Role(r) = s {
                    if f.roles
                        .get(r)
                        .is_some_and(|r| r.chain_allows.is_subset(set))
                    {
                        proposal.push(remove_source(u.id, *s));
                    }
                }
            }
        }
        out.push(Finding {
            kind: "role_mining",
            fingerprint: format!("role_mining:{}", ids.join(",")),
            summary: format!(
                "{} users hold the same {} permissions through several roles ({}): create one role for them",
                users.len(),
                set.len(),
                roles_now.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            evidence: json!({
                "users": users.iter().map(|u| json!({"id": u.id, "name": u.name})).collect::<Vec<_>>(),
                "permissions": names(f, set),
                "roles_now": roles_now,
                "min_users": min_users,
            }),
            proposal,
        });
    }
    out
}

/// A principal allowed both sides of a rule.
#[derive(Debug, Clone)]
pub struct SodHit<'a> {
    pub rule: &'a SodRule,
    pub principal: &'a PrincipalInfo,
    pub a: BTreeSet<Uuid>,
    pub b: BTreeSet<Uuid>,
}

fn side(f: &Facts, allows: &BTreeSet<Uuid>, (t, a): &(String, String)) -> BTreeSet<Uuid> {
    allows
        .iter()
        .copied()
        .filter(|p| f.perms.get(p).is_some_and(|p| p.covers(t, a)))
        .collect()
}

/// Every usable principal allowed both sides of a rule (conditions are not
/// read: a permission that could allow counts).
pub fn sod_conflicts<'a>(f: &'a Facts, rules: &'a [SodRule]) -> Vec<SodHit<'a>> {
    let mut out = Vec::new();
    for p in f.principals.values().filter(|p| p.usable) {
        for rule in rules {
            let a = side(f, &p.allows, &rule.a);
            let b = side(f, &p.allows, &rule.b);
            if !a.is_empty() && !b.is_empty() {
                out.push(SodHit {
                    rule,
                    principal: p,
                    a,
                    b,
                });
            }
        }
    }
    out
}

fn sod_findings(f: &Facts, rules: &[SodRule]) -> Vec<Finding> {
    let mut out = Vec::new();
    for hit in sod_conflicts(f, rules) {
        let p = hit.principal;
        // The one source whose removal ends the conflict and loses the
        // fewest uses.
        let mut best: Option<(i64, Source)> = None;
        for s in &p.sources {
            let rest: Vec<Source> = p.sources.iter().copied().filter(|x| x != s).collect();
            let left = f.allows_of(&rest);
            if side(f, &left, &hit.rule.a).is_empty() || side(f, &left, &hit.rule.b).is_empty() {
                let lost: i64 = p
                    .allows
                    .difference(&left)
                    .filter_map(|x| f.use_of(p.id, *x))
                    .map(|u| u.count)
                    .sum();
                if best.is_none_or(|(n, _)| lost < n) {
                    best = Some((lost, *s));
                }
            }
        }
        let side_json = |set: &BTreeSet<Uuid>| {
            set.iter()
                .map(|x| json!({"id": x, "name": f.perm_name(x), "uses": use_json(f.use_of(p.id, *x))}))
                .collect::<Vec<_>>()
        };
        out.push(Finding {
            kind: "sod_conflict",
            fingerprint: format!("sod_conflict:{}:{}", hit.rule.name, p.id),
            summary: format!(
                "`{}` may both {} and {} (rule `{}`){}",
                p.name,
                format_args!("{} {}", hit.rule.a.1, hit.rule.a.0),
                format_args!("{} {}", hit.rule.b.1, hit.rule.b.0),
                hit.rule.name,
                match best {
                    Some((_, s)) => format!(": take away {}", source_json(f, s)["name"].as_str().unwrap_or("one source")),
                    None => String::new(),
                }
            ),
            evidence: json!({
                "principal": {"id": p.id, "name": p.name, "service_account": p.service_account},
                "rule": hit.rule,
                "side_a": side_json(&hit.a),
                "side_b": side_json(&hit.b),
                "remove": best.map(|(lost, s)| json!({"source": source_json(f, s), "uses_lost": lost})),
                "window": window(f),
                "audit_query": audit_query(f, Some(p.id), None),
            }),
            proposal: best.map(|(_, s)| remove_source(p.id, s)).into_iter().collect(),
        });
    }
    out
}
