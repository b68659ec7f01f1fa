//! What the optimizer and the compliance monitor read about one tenant, in
//! one tenant-scoped transaction: its policy, compiled by the shared
//! compiler (so a principal's effective roles are exactly the gateway's:
//! direct, through groups, every ancestor), the role facts only the admin
//! API has (scopes, the system flag), the accounts' login and key dates, and
//! how the audit trail shows each principal using each permission over a
//! window (the permission ids an allowed gateway decision names in `rules`).
//!
//! Reads only; never widens what the transaction may see.

use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// A permission of the tenant.
#[derive(Debug, Clone)]
pub struct PermInfo {
    pub id: Uuid,
    pub name: String,
    pub allow: bool,
    pub active: bool,
    pub resource_type: String,
    pub resource_pattern: String,
    pub actions: Vec<String>,
}

impl PermInfo {
    /// Does this permission name `action` on `resource_type` (`*` matches any)?
    pub fn covers(&self, resource_type: &str, action: &str) -> bool {
        (self.resource_type == resource_type || self.resource_type == "*")
            && self
                .actions
                .iter()
                .any(|a| a == action || a == "*" || action == "*")
    }
}

/// A role with its own and its whole chain's (active, allow) permissions.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    pub id: Uuid,
    pub name: String,
    pub parent: Option<Uuid>,
    pub scopes: Vec<String>,
    pub is_system: bool,
    /// Allow permissions of the role and every ancestor.
    pub chain_allows: BTreeSet<Uuid>,
    /// Users holding the role directly.
    pub direct_users: BTreeSet<Uuid>,
    /// Groups holding the role.
    pub groups: BTreeSet<Uuid>,
    /// Roles whose parent this is.
    pub children: BTreeSet<Uuid>,
}

#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub id: Uuid,
    pub name: String,
    pub roles: Vec<Uuid>,
}

/// Where a principal's access comes from: a directly held role, or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Role(Uuid),
    Group(Uuid),
}

#[derive(Debug, Clone)]
pub struct PrincipalInfo {
    pub id: Uuid,
    pub name: String,
    pub service_account: bool,
    /// Active and not locked: able to use what it holds.
    pub usable: bool,
    pub sources: Vec<Source>,
    /// Effective roles as compiled (direct, through groups, ancestors).
    pub roles: BTreeSet<Uuid>,
    /// Effective allow permissions.
    pub allows: BTreeSet<Uuid>,
    /// Admin API scopes of the effective roles.
    pub scopes: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub api_key_created_at: Option<DateTime<Utc>>,
}

/// Allowed decisions naming one permission, and the last of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    pub count: i64,
    pub last: DateTime<Utc>,
}

impl Use {
    fn add(&mut self, other: Use) {
        self.count += other.count;
        self.last = self.last.max(other.last);
    }
}

/// Everything the analyses read about one tenant.
#[derive(Debug, Clone)]
pub struct Facts {
    pub tenant: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub perms: BTreeMap<Uuid, PermInfo>,
    pub roles: BTreeMap<Uuid, RoleInfo>,
    pub groups: BTreeMap<Uuid, GroupInfo>,
    pub principals: BTreeMap<Uuid, PrincipalInfo>,
    /// (principal, permission) → use in the window.
    pub uses: HashMap<(Uuid, Uuid), Use>,
    /// permission → use by anyone in the window.
    pub perm_uses: HashMap<Uuid, Use>,
    /// Principals with at least one allowed decision in the window.
    pub active_principals: BTreeSet<Uuid>,
}

/// The SQL that counts uses: what every finding's evidence cites.
pub const USAGE_SQL: &str = "SELECT a.principal_id, r.rule, count(*), max(a.time)
  FROM sentinel.audit_logs a CROSS JOIN LATERAL unnest(a.rules) AS r(rule)
 WHERE a.tenant_id = $1 AND a.source = 'gateway' AND a.outcome = 'allowed'
   AND a.time >= $2 AND a.time < $3 AND a.principal_id IS NOT NULL
 GROUP BY 1, 2";

type PermRow = (Uuid, String, bool, bool, String, String, Vec<String>);

type UserRow = (
    Uuid,
    Option<String>,
    String,
    bool,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

impl Facts {
    /// The allow permissions `sources` give (each role with its chain).
    pub fn allows_of(&self, sources: &[Source]) -> BTreeSet<Uuid> {
        let mut out = BTreeSet::new();
        for s in sources {
            match s {
                Source::Role(r) => {
                    if let Some(r) = self.roles.get(r) {
                        out.extend(r.chain_allows.iter().copied());
                    }
                }
                Source::Group(g) => {
                    for r in self
                        .groups
                        .get(g)
                        .map(|g| g.roles.as_slice())
                        .unwrap_or(&[])
                    {
                        if let Some(r) = self.roles.get(r) {
                            out.extend(r.chain_allows.iter().copied());
                        }
                    }
                }
            }
        }
        out
    }

    pub fn use_of(&self, principal: Uuid, perm: Uuid) -> Option<Use> {
        self.uses.get(&(principal, perm)).copied()
    }

    pub fn perm_name(&self, id: &Uuid) -> String {
        self.perms
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    }
}

/// Loads the tenant of `tx` (its one-tenant context) over `[from, to)`.
pub async fn load(
    tx: &mut Tx,
    tenant: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Facts> {
    let src = crate::snapshot::load_source(tx)
        .await
        .map_err(ApiError::internal)?;
    let snap = sentinel_policy::compile(&src).map_err(|errs| {
        tracing::error!(errors = ?errs, "stored policy does not compile");
        ApiError::PolicyUnavailable
    })?;

    let rows: Vec<PermRow> = sqlx::query_as(
        "SELECT id, name, effect = 'allow', is_active, resource_type, resource_pattern, actions
           FROM sentinel.permissions WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?;
    let perms: BTreeMap<Uuid, PermInfo> = rows
        .into_iter()
        .map(|(id, name, allow, active, rt, rp, actions)| {
            (
                id,
                PermInfo {
                    id,
                    name,
                    allow,
                    active,
                    resource_type: rt,
                    resource_pattern: rp,
                    actions,
                },
            )
        })
        .collect();
    let counts = |id: &Uuid| perms.get(id).is_some_and(|p| p.allow && p.active);

    let meta: HashMap<Uuid, (Vec<String>, bool)> = sqlx::query_as::<_, (Uuid, Vec<String>, bool)>(
        "SELECT id, scopes, is_system FROM sentinel.roles WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id, s, sys)| (id, (s, sys)))
    .collect();
    // Own permissions and parents from the source the compiler took.
    let mut own: HashMap<Uuid, (String, Option<Uuid>, Vec<Uuid>)> = HashMap::new();
    for r in &src.roles {
        let Ok(id) = r.id.parse::<Uuid>() else {
            continue;
        };
        let ps = r
            .permissions
            .iter()
            .filter_map(|p| p.parse().ok())
            .filter(|p| counts(p))
            .collect();
        own.insert(
            id,
            (
                r.name.clone(),
                r.parent.as_ref().and_then(|p| p.parse().ok()),
                ps,
            ),
        );
    }
    let mut roles = BTreeMap::new();
    for (id, (name, parent, _)) in &own {
        let mut chain_allows = BTreeSet::new();
        let mut at = Some(*id);
        let mut seen = BTreeSet::new();
        // INVARIANT: the compiler rejected cycles; `seen` only bounds the walk.
        while let Some(r) = at.filter(|r| seen.insert(*r)) {
            let Some((_, p, ps)) = own.get(&r) else { break };
            chain_allows.extend(ps.iter().copied());
            at = *p;
        }
        let (scopes, is_system) = meta.get(id).cloned().unwrap_or_default();
        roles.insert(
            *id,
            RoleInfo {
                id: *id,
                name: name.clone(),
                parent: *parent,
                scopes,
                is_system,
                chain_allows,
                direct_users: BTreeSet::new(),
                groups: BTreeSet::new(),
                children: BTreeSet::new(),
            },
        );
    }
    let links: Vec<(Uuid, Uuid)> = roles
        .values()
        .filter_map(|r| r.parent.map(|p| (p, r.id)))
        .collect();
    for (p, c) in links {
        if let Some(p) = roles.get_mut(&p) {
            p.children.insert(c);
        }
    }

    let mut groups = BTreeMap::new();
    for g in &src.groups {
        let Ok(id) = g.id.parse::<Uuid>() else {
            continue;
        };
        let rs: Vec<Uuid> = g.roles.iter().filter_map(|r| r.parse().ok()).collect();
        for r in &rs {
            if let Some(r) = roles.get_mut(r) {
                r.groups.insert(id);
            }
        }
        groups.insert(
            id,
            GroupInfo {
                id,
                name: g.name.clone(),
                roles: rs,
            },
        );
    }

    let users: HashMap<Uuid, UserRow> = sqlx::query_as::<_, UserRow>(
        "SELECT id, email, name, is_service_account, created_at, last_login, api_key_created_at
           FROM sentinel.users WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| (r.0, r))
    .collect();
    let mut principals = BTreeMap::new();
    for p in &src.principals {
        let Some(sp) = snap.principal(&p.id) else {
            continue;
        };
        let Some((_, email, name, sa, created_at, last_login, key_at)) = users.get(&p.id) else {
            continue;
        };
        let mut sources: Vec<Source> = p
            .roles
            .iter()
            .filter_map(|r| r.parse().ok())
            .map(Source::Role)
            .collect();
        sources.extend(
            p.groups
                .iter()
                .filter_map(|g| g.parse().ok())
                .map(Source::Group),
        );
        for s in &sources {
            if let Source::Role(r) = s {
                if let Some(r) = roles.get_mut(r) {
                    r.direct_users.insert(p.id);
                }
            }
        }
        let eff: BTreeSet<Uuid> = snap.role_ids(sp).filter_map(|r| r.parse().ok()).collect();
        let mut allows = BTreeSet::new();
        let mut scopes = BTreeSet::new();
        for r in &eff {
            if let Some((_, _, ps)) = own.get(r) {
                allows.extend(ps.iter().copied());
            }
            if let Some((s, _)) = meta.get(r) {
                scopes.extend(s.iter().cloned());
            }
        }
        principals.insert(
            p.id,
            PrincipalInfo {
                id: p.id,
                name: if *sa {
                    name.clone()
                } else {
                    email.clone().unwrap_or_else(|| name.clone())
                },
                service_account: *sa,
                usable: sp.active && !sp.locked,
                sources,
                roles: eff,
                allows,
                scopes,
                created_at: *created_at,
                last_login: *last_login,
                api_key_created_at: *key_at,
            },
        );
    }

    let used: Vec<(String, String, i64, DateTime<Utc>)> = sqlx::query_as(USAGE_SQL)
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(&mut **tx)
        .await?;
    let mut uses = HashMap::new();
    let mut perm_uses: HashMap<Uuid, Use> = HashMap::new();
    let mut active_principals = BTreeSet::new();
    for (principal, rule, count, last) in used {
        let (Ok(principal), Ok(rule)) = (principal.parse::<Uuid>(), rule.parse::<Uuid>()) else {
            continue;
        };
        let u = Use { count, last };
        active_principals.insert(principal);
        uses.insert((principal, rule), u);
        perm_uses.entry(rule).and_modify(|x| x.add(u)).or_insert(u);
    }
    Ok(Facts {
        tenant,
        from,
        to,
        perms,
        roles,
        groups,
        principals,
        uses,
        perm_uses,
        active_principals,
    })
}
