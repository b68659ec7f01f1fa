//! Lowers a [`PolicySource`] into an indexed [`Snapshot`], collecting *every*
//! problem with its location. A source with any error yields no snapshot: a
//! policy is applied whole or not at all.
//!
//! Over 700 lines because every check of every section reports into one
//! problem list in one pass; splitting it per section would spread the
//! cross-references (roles ↔ permissions ↔ principals) over several files.

use crate::model::*;
use crate::source::*;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// Where a problem is: `roles[3].parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub collection: &'static str,
    pub index: usize,
    pub field: Option<&'static str>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.collection, self.index)?;
        if let Some(field) = self.field {
            write!(f, ".{field}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct CompileError {
    pub location: Location,
    pub message: String,
}

struct Errors(Vec<CompileError>);

impl Errors {
    fn push(
        &mut self,
        collection: &'static str,
        index: usize,
        field: Option<&'static str>,
        message: String,
    ) {
        self.0.push(CompileError {
            location: Location {
                collection,
                index,
                field,
            },
            message,
        });
    }
}

/// Compiles a policy source whole (one shard holding every principal).
/// Returns every error found, or the snapshot.
pub fn compile(src: &PolicySource) -> Result<Snapshot, Vec<CompileError>> {
    let mut errs = Errors(Vec::new());
    let global = global_of(src, &mut errs);
    let local = local_of(src, &global.tenants, &mut errs);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(Snapshot {
        version: src.version,
        global: Arc::new(global),
        local: Arc::new(local),
    })
}

/// Compiles the global part of a sharded policy: tenants, field definitions
/// and revoked tokens. Any other object in `src` is an error (it belongs in a
/// shard).
pub fn compile_global(src: &PolicySource) -> Result<Arc<Global>, Vec<CompileError>> {
    let mut errs = Errors(Vec::new());
    misplaced(
        &mut errs,
        &[
            ("principals", src.principals.len()),
            ("roles", src.roles.len()),
            ("groups", src.groups.len()),
            ("permissions", src.permissions.len()),
            ("grants", src.grants.len()),
        ],
        "the global part holds no",
        "their tenant's shard",
    );
    let global = global_of(src, &mut errs);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(Arc::new(global))
}

/// Compiles the shard of `tenant` against a compiled global part: its
/// principals, roles, groups, permissions and grants. Every principal, role
/// and group must belong to `tenant` (a role may also belong to no tenant);
/// tenants, field definitions and revoked tokens belong in the global part.
pub fn compile_shard(
    global: &Arc<Global>,
    tenant: Uuid,
    version: u64,
    src: &PolicySource,
) -> Result<Snapshot, Vec<CompileError>> {
    let mut errs = Errors(Vec::new());
    if !global.tenants.contains_key(&tenant) {
        errs.push(
            "shards",
            0,
            None,
            format!("shard of unknown tenant `{tenant}`"),
        );
    }
    misplaced(
        &mut errs,
        &[
            ("tenants", src.tenants.len()),
            ("field_definitions", src.field_definitions.len()),
            ("revoked_tokens", src.revoked_tokens.len()),
        ],
        "a tenant shard holds no",
        "the global part",
    );
    for (i, p) in src.principals.iter().enumerate() {
        if p.tenant != tenant {
            errs.push(
                "principals",
                i,
                Some("tenant"),
                format!(
                    "principal of tenant `{}` in the shard of `{tenant}`",
                    p.tenant
                ),
            );
        }
    }
    for (i, r) in src.roles.iter().enumerate() {
        // A role of no tenant is usable by every tenant (policy files).
        if r.tenant.is_some_and(|t| t != tenant) {
            errs.push(
                "roles",
                i,
                Some("tenant"),
                format!(
                    "role `{}` does not belong to the shard's tenant `{tenant}`",
                    r.id
                ),
            );
        }
    }
    for (i, g) in src.groups.iter().enumerate() {
        if g.tenant != tenant {
            errs.push(
                "groups",
                i,
                Some("tenant"),
                format!("group of tenant `{}` in the shard of `{tenant}`", g.tenant),
            );
        }
    }
    let local = local_of(src, &global.tenants, &mut errs);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(Snapshot {
        version,
        global: Arc::clone(global),
        local: Arc::new(local),
    })
}

/// One error per non-empty collection that belongs in another part.
fn misplaced(errs: &mut Errors, present: &[(&'static str, usize)], part: &str, home: &str) {
    for (collection, n) in present {
        if *n > 0 {
            errs.push(
                collection,
                0,
                None,
                format!("{part} {collection}: they belong in {home}"),
            );
        }
    }
}

fn global_of(src: &PolicySource, errs: &mut Errors) -> Global {
    let tenants = compile_tenants(src, errs);
    let entities = compile_fields(src, &tenants, errs);
    let revoked = src
        .revoked_tokens
        .iter()
        .map(|r| r.jti.as_str().into())
        .collect();
    Global {
        tenants,
        revoked,
        entities,
    }
}

fn local_of(src: &PolicySource, tenants: &Map<Uuid, Tenant>, errs: &mut Errors) -> Local {
    let (permissions, perm_index) = compile_permissions(src, errs);
    let (roles, role_index, role_tenants, role_parents) =
        compile_roles(src, tenants, &permissions, &perm_index, errs);
    let group_roles = compile_groups(src, tenants, &role_index, &role_tenants, errs);
    let (principals, api_keys) = compile_principals(
        src,
        tenants,
        &roles,
        &role_index,
        &role_tenants,
        &role_parents,
        &group_roles,
        errs,
    );
    let grants = compile_grants(src, &principals, errs);
    let has_shadow = permissions.iter().any(|p| p.shadow);
    Local {
        principals,
        api_keys,
        roles: roles.into_boxed_slice(),
        permissions: permissions.into_boxed_slice(),
        grants,
        has_shadow,
    }
}

fn compile_tenants(src: &PolicySource, errs: &mut Errors) -> Map<Uuid, Tenant> {
    let mut by_id: HashMap<Uuid, usize> = HashMap::new();
    let mut codes: HashSet<&str> = HashSet::new();
    for (i, t) in src.tenants.iter().enumerate() {
        if by_id.insert(t.id, i).is_some() {
            errs.push(
                "tenants",
                i,
                Some("id"),
                format!("duplicate tenant id `{}`", t.id),
            );
        }
        if t.code.trim().is_empty() {
            errs.push(
                "tenants",
                i,
                Some("code"),
                "tenant code must not be empty".into(),
            );
        } else if !codes.insert(&t.code) {
            errs.push(
                "tenants",
                i,
                Some("code"),
                format!("duplicate tenant code `{}`", t.code),
            );
        }
    }
    let mut out = Map::with_capacity_and_hasher(src.tenants.len(), Default::default());
    // The tenants on the current walk: a set, so a deep hierarchy costs
    // O(depth) per tenant rather than O(depth²).
    let mut on_walk: HashSet<Uuid> = HashSet::new();
    for (i, t) in src.tenants.iter().enumerate() {
        let mut ancestors = Vec::new();
        let mut cur = t.parent;
        let mut ok = true;
        on_walk.clear();
        on_walk.insert(t.id);
        while let Some(p) = cur {
            if !on_walk.insert(p) {
                errs.push(
                    "tenants",
                    i,
                    Some("parent"),
                    format!("tenant hierarchy of `{}` has a cycle", t.code),
                );
                ok = false;
                break;
            }
            match by_id.get(&p) {
                Some(&pi) => {
                    ancestors.push(p);
                    cur = src.tenants[pi].parent;
                }
                None => {
                    if cur == t.parent {
                        errs.push(
                            "tenants",
                            i,
                            Some("parent"),
                            format!("unknown parent tenant `{p}`"),
                        );
                    }
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        out.insert(
            t.id,
            Tenant {
                id: t.id,
                code: t.code.as_str().into(),
                name: t.name.as_str().into(),
                status: t.status,
                parent: t.parent,
                ancestors: ancestors.into_boxed_slice(),
                settings: t.settings.clone(),
            },
        );
    }
    out
}

fn valid_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("resource pattern must not be empty".into());
    }
    let body = p.strip_suffix('*').unwrap_or(p);
    if body.contains('*') {
        return Err(format!(
            "resource pattern `{p}` may only have `*` at its end"
        ));
    }
    Ok(())
}

fn compile_actions(list: &[String]) -> Result<Actions, String> {
    if list.is_empty() {
        return Err("at least one action is required".into());
    }
    if list.iter().any(|a| a == "*") {
        return Ok(Actions::All);
    }
    for a in list {
        if a.is_empty()
            || !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
        {
            return Err(format!("invalid action `{a}`"));
        }
    }
    Ok(Actions::Some(
        list.iter().map(|a| a.as_str().into()).collect(),
    ))
}

fn compile_condition(c: &ConditionSource) -> Result<Condition, String> {
    Ok(match c {
        ConditionSource::Attribute { name, op, value } => {
            if name.is_empty() {
                return Err("attribute name must not be empty".into());
            }
            match op {
                AttributeOp::In | AttributeOp::NotIn if !value.is_array() => {
                    return Err(format!("`{}` needs an array value", op_name(*op)))
                }
                AttributeOp::Gt | AttributeOp::Gte | AttributeOp::Lt | AttributeOp::Lte
                    if !value.is_number() =>
                {
                    return Err(format!("`{}` needs a number value", op_name(*op)))
                }
                _ => {}
            }
            Condition::Attribute {
                name: name.as_str().into(),
                op: *op,
                value: value.clone(),
            }
        }
        ConditionSource::ClientIp { cidrs } => {
            if cidrs.is_empty() {
                return Err("`client_ip` needs at least one CIDR".into());
            }
            let mut nets = Vec::with_capacity(cidrs.len());
            for c in cidrs {
                let net = c
                    .parse::<IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("invalid CIDR `{c}`"))?;
                nets.push(canonical_net(net));
            }
            Condition::ClientIp(nets.into_boxed_slice())
        }
        ConditionSource::Mfa {} => Condition::Mfa,
        ConditionSource::Time {
            hours_utc,
            weekdays,
        } => {
            let hours = match hours_utc {
                Some([from, to]) => {
                    if *from > 23 || *to > 24 || from == to {
                        return Err(format!("invalid hour range [{from}, {to}]: hours are 0..=24 and the range must not be empty"));
                    }
                    Some((*from, *to))
                }
                None => None,
            };
            let mask = match weekdays {
                Some(days) if days.is_empty() => return Err("`weekdays` must not be empty".into()),
                Some(days) => days.iter().fold(0u8, |m, d| m | (1 << (*d as u8))),
                None => 0x7f,
            };
            if hours.is_none() && weekdays.is_none() {
                return Err("`time` needs `hours_utc` or `weekdays`".into());
            }
            Condition::Time {
                hours,
                weekdays: mask,
            }
        }
        ConditionSource::Risk { max, on_missing } => {
            if !max.is_finite() {
                return Err("`risk.max` must be a finite number".into());
            }
            Condition::Risk {
                max: *max,
                allow_missing: *on_missing == OnMissing::Allow,
            }
        }
        ConditionSource::Method { methods } => {
            if methods.is_empty() {
                return Err("`method` needs at least one method".into());
            }
            for m in methods {
                if m.is_empty() || !m.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(format!("invalid method `{m}` (use upper case, e.g. `GET`)"));
                }
            }
            Condition::Method(methods.iter().map(|m| m.as_str().into()).collect())
        }
    })
}

/// The evaluator compares client IPs with IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.1`) turned into IPv4; a CIDR written in mapped form
/// (`::ffff:10.0.0.0/104`) is turned into IPv4 likewise so that it matches them.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.network().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n.trunc());
                }
            }
        }
    }
    net.trunc()
}

fn op_name(op: AttributeOp) -> &'static str {
    match op {
        AttributeOp::Eq => "eq",
        AttributeOp::Ne => "ne",
        AttributeOp::In => "in",
        AttributeOp::NotIn => "not_in",
        AttributeOp::Gt => "gt",
        AttributeOp::Gte => "gte",
        AttributeOp::Lt => "lt",
        AttributeOp::Lte => "lte",
        AttributeOp::Contains => "contains",
    }
}

fn compile_permissions<'a>(
    src: &'a PolicySource,
    errs: &mut Errors,
) -> (Vec<Permission>, HashMap<&'a str, u32>) {
    let mut out = Vec::with_capacity(src.permissions.len());
    let mut index: HashMap<&str, u32> = HashMap::with_capacity(src.permissions.len());
    for (i, p) in src.permissions.iter().enumerate() {
        if p.id.is_empty() {
            errs.push(
                "permissions",
                i,
                Some("id"),
                "permission id must not be empty".into(),
            );
        } else if index.contains_key(p.id.as_str()) {
            errs.push(
                "permissions",
                i,
                Some("id"),
                format!("duplicate permission id `{}`", p.id),
            );
        }
        if p.resource_type.is_empty() || p.resource_type.contains(':') {
            errs.push(
                "permissions",
                i,
                Some("resource_type"),
                format!("invalid resource type `{}`", p.resource_type),
            );
        }
        if let Err(e) = valid_pattern(&p.resource) {
            errs.push("permissions", i, Some("resource"), e);
        }
        let actions = compile_actions(&p.actions).unwrap_or_else(|e| {
            errs.push("permissions", i, Some("actions"), e);
            Actions::All
        });
        let mut conditions = Vec::with_capacity(p.conditions.len());
        for c in &p.conditions {
            match compile_condition(c) {
                Ok(c) => conditions.push(c),
                Err(e) => errs.push("permissions", i, Some("conditions"), e),
            }
        }
        let mut fields: [BTreeMap<Box<str>, FieldRule>; 3] = Default::default();
        let mut seen: HashSet<&str> = HashSet::new();
        for (tier, map) in [
            (Tier::Core, &p.fields.core),
            (Tier::PlatformDynamic, &p.fields.platform_dynamic),
            (Tier::TenantSpecific, &p.fields.tenant_specific),
        ] {
            for (name, rule) in map {
                if name.is_empty() {
                    errs.push(
                        "permissions",
                        i,
                        Some("fields"),
                        "field name must not be empty".into(),
                    );
                } else if name != "*" && !seen.insert(name.as_str()) {
                    errs.push(
                        "permissions",
                        i,
                        Some("fields"),
                        format!("field `{name}` is listed in more than one tier"),
                    );
                }
                fields[tier_index(tier)].insert(name.as_str().into(), *rule);
            }
        }
        // Index every permission with a usable id, even one with other errors,
        // so roles naming it do not report a second, misleading error.
        if !p.id.is_empty() && !index.contains_key(p.id.as_str()) {
            index.insert(p.id.as_str(), out.len() as u32);
        }
        out.push(Permission {
            id: p.id.as_str().into(),
            effect: p.effect,
            resource_type: p.resource_type.as_str().into(),
            resource: ResourcePattern::parse(&p.resource),
            actions,
            conditions: conditions.into_boxed_slice(),
            tenant_scope: p.tenant_scope,
            fields,
            shadow: p.mode == RuleMode::Shadow || src.mode == RuleMode::Shadow,
        });
    }
    (out, index)
}

/// Roles, the role index, each role's tenant, and each role's parent link
/// (`None` for a root and for a role whose inheritance has a cycle).
type RoleTables<'a> = (
    Vec<Role>,
    HashMap<&'a str, u32>,
    Vec<Option<Uuid>>,
    Vec<Option<u32>>,
);

fn compile_roles<'a>(
    src: &'a PolicySource,
    tenants: &Map<Uuid, Tenant>,
    permissions: &[Permission],
    perm_index: &HashMap<&str, u32>,
    errs: &mut Errors,
) -> RoleTables<'a> {
    let mut index: HashMap<&str, u32> = HashMap::with_capacity(src.roles.len());
    for (i, r) in src.roles.iter().enumerate() {
        if r.id.is_empty() {
            errs.push("roles", i, Some("id"), "role id must not be empty".into());
        } else if index.insert(r.id.as_str(), i as u32).is_some() {
            errs.push(
                "roles",
                i,
                Some("id"),
                format!("duplicate role id `{}`", r.id),
            );
        }
        if r.name.is_empty() {
            errs.push(
                "roles",
                i,
                Some("name"),
                "role name must not be empty".into(),
            );
        }
        if let Some(t) = r.tenant {
            if !tenants.contains_key(&t) {
                errs.push("roles", i, Some("tenant"), format!("unknown tenant `{t}`"));
            }
        }
    }
    let role_tenants: Vec<Option<Uuid>> = src.roles.iter().map(|r| r.tenant).collect();
    // Parent links, checked for existence, tenant and cycles.
    let mut parent: Vec<Option<u32>> = vec![None; src.roles.len()];
    for (i, r) in src.roles.iter().enumerate() {
        if let Some(pid) = &r.parent {
            match index.get(pid.as_str()) {
                Some(&p) => {
                    let pt = role_tenants[p as usize];
                    if pt.is_some() && pt != r.tenant {
                        errs.push(
                            "roles",
                            i,
                            Some("parent"),
                            format!("parent role `{pid}` belongs to another tenant"),
                        );
                    }
                    parent[i] = Some(p);
                }
                None => errs.push(
                    "roles",
                    i,
                    Some("parent"),
                    format!("unknown parent role `{pid}`"),
                ),
            }
        }
    }
    // Cycle detection in O(roles): each parent walk stops at the first role
    // already decided, and every role on the walk gets the walk's verdict
    // (a role on a cycle or leading into one is reported). Walking each chain
    // in full would cost O(roles × depth²) and hang on a deep hierarchy.
    #[derive(Clone, Copy, PartialEq)]
    enum Walk {
        Unseen,
        OnPath,
        Acyclic,
        Cyclic,
    }
    let mut walk = vec![Walk::Unseen; src.roles.len()];
    let mut path: Vec<usize> = Vec::new();
    for i in 0..src.roles.len() {
        let mut cur = Some(i);
        let verdict = loop {
            let Some(c) = cur else { break Walk::Acyclic };
            match walk[c] {
                Walk::Acyclic => break Walk::Acyclic,
                // INVARIANT: earlier walks are all decided, so `OnPath` is this walk.
                Walk::Cyclic | Walk::OnPath => break Walk::Cyclic,
                Walk::Unseen => {
                    walk[c] = Walk::OnPath;
                    path.push(c);
                    cur = parent[c].map(|p| p as usize);
                }
            }
        };
        for c in path.drain(..) {
            walk[c] = verdict;
        }
    }
    for (i, r) in src.roles.iter().enumerate() {
        if walk[i] == Walk::Cyclic {
            errs.push(
                "roles",
                i,
                Some("parent"),
                format!("role inheritance of `{}` has a cycle", r.id),
            );
            parent[i] = None;
        }
    }
    let mut roles = Vec::with_capacity(src.roles.len());
    for (i, r) in src.roles.iter().enumerate() {
        let mut by_type: Map<Box<str>, TypeRules> = Map::default();
        for pid in &r.permissions {
            let Some(&pi) = perm_index.get(pid.as_str()) else {
                errs.push(
                    "roles",
                    i,
                    Some("permissions"),
                    format!("unknown permission `{pid}`"),
                );
                continue;
            };
            let p = &permissions[pi as usize];
            if p.tenant_scope == TenantScope::Any && r.tenant.is_some_and(|t| t != PLATFORM_TENANT)
            {
                errs.push(
                    "roles",
                    i,
                    Some("permissions"),
                    format!("permission `{pid}` has tenant scope `any`, which only platform roles may hold"),
                );
            }
            let rules = by_type.entry(p.resource_type.clone()).or_default();
            match &p.resource {
                ResourcePattern::Any => rules.wildcard.push(pi),
                ResourcePattern::Exact(id) => rules.exact.entry(id.clone()).or_default().push(pi),
                ResourcePattern::Prefix(pre) => rules.prefix.push((pre.clone(), pi)),
            }
        }
        roles.push(Role {
            id: r.id.as_str().into(),
            name: r.name.as_str().into(),
            by_type,
        });
    }
    (roles, index, role_tenants, parent)
}

fn role_usable(role_tenant: Option<Uuid>, tenant: Uuid) -> bool {
    role_tenant.is_none_or(|t| t == tenant)
}

fn compile_groups<'a>(
    src: &'a PolicySource,
    tenants: &Map<Uuid, Tenant>,
    role_index: &HashMap<&str, u32>,
    role_tenants: &[Option<Uuid>],
    errs: &mut Errors,
) -> HashMap<&'a str, (Uuid, Vec<u32>)> {
    let mut out: HashMap<&str, (Uuid, Vec<u32>)> = HashMap::with_capacity(src.groups.len());
    for (i, g) in src.groups.iter().enumerate() {
        if !tenants.contains_key(&g.tenant) {
            errs.push(
                "groups",
                i,
                Some("tenant"),
                format!("unknown tenant `{}`", g.tenant),
            );
        }
        let mut roles = Vec::with_capacity(g.roles.len());
        for rid in &g.roles {
            match role_index.get(rid.as_str()) {
                Some(&r) if role_usable(role_tenants[r as usize], g.tenant) => roles.push(r),
                Some(_) => errs.push(
                    "groups",
                    i,
                    Some("roles"),
                    format!("role `{rid}` belongs to another tenant"),
                ),
                None => errs.push("groups", i, Some("roles"), format!("unknown role `{rid}`")),
            }
        }
        if g.id.is_empty() {
            errs.push("groups", i, Some("id"), "group id must not be empty".into());
        } else if out.insert(g.id.as_str(), (g.tenant, roles)).is_some() {
            errs.push(
                "groups",
                i,
                Some("id"),
                format!("duplicate group id `{}`", g.id),
            );
        }
    }
    out
}

fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[allow(clippy::too_many_arguments)]
fn compile_principals(
    src: &PolicySource,
    tenants: &Map<Uuid, Tenant>,
    roles: &[Role],
    role_index: &HashMap<&str, u32>,
    role_tenants: &[Option<Uuid>],
    role_parents: &[Option<u32>],
    groups: &HashMap<&str, (Uuid, Vec<u32>)>,
    errs: &mut Errors,
) -> (Map<Uuid, Principal>, Map<Box<str>, ApiKeyEntry>) {
    let mut out = Map::with_capacity_and_hasher(src.principals.len(), Default::default());
    let mut keys: Map<Box<str>, ApiKeyEntry> = Map::default();
    // Principals with the same role set share one names string.
    let mut names_cache: HashMap<Vec<u32>, std::sync::Arc<str>> = HashMap::new();
    // `seen[r] == i + 1`: role `r` is already among principal `i`'s effective roles.
    let mut seen: Vec<usize> = vec![0; roles.len()];
    for (i, p) in src.principals.iter().enumerate() {
        if !tenants.contains_key(&p.tenant) {
            errs.push(
                "principals",
                i,
                Some("tenant"),
                format!("unknown tenant `{}`", p.tenant),
            );
        }
        let mut direct = Vec::with_capacity(p.roles.len());
        for rid in &p.roles {
            match role_index.get(rid.as_str()) {
                Some(&r) if role_usable(role_tenants[r as usize], p.tenant) => direct.push(r),
                Some(_) => errs.push(
                    "principals",
                    i,
                    Some("roles"),
                    format!("role `{rid}` belongs to another tenant"),
                ),
                None => errs.push(
                    "principals",
                    i,
                    Some("roles"),
                    format!("unknown role `{rid}`"),
                ),
            }
        }
        for gid in &p.groups {
            match groups.get(gid.as_str()) {
                Some((t, rs)) if *t == p.tenant => direct.extend_from_slice(rs),
                Some(_) => errs.push(
                    "principals",
                    i,
                    Some("groups"),
                    format!("group `{gid}` belongs to another tenant"),
                ),
                None => errs.push(
                    "principals",
                    i,
                    Some("groups"),
                    format!("unknown group `{gid}`"),
                ),
            }
        }
        // Each direct role, then its ancestors, skipping roles already taken;
        // a role already taken brings its ancestors along, so the walk stops there.
        let stamp = i + 1;
        let mut effective: Vec<u32> = Vec::new();
        for r in direct {
            let mut cur = Some(r);
            while let Some(a) = cur {
                if seen[a as usize] == stamp {
                    break;
                }
                seen[a as usize] = stamp;
                effective.push(a);
                cur = role_parents[a as usize];
            }
        }
        if !p.api_keys.is_empty() && !p.service_account {
            errs.push(
                "principals",
                i,
                Some("api_keys"),
                "only service accounts may have API keys".into(),
            );
        }
        for k in &p.api_keys {
            let valid_prefix =
                k.prefix.len() == 8 && k.prefix.chars().all(|c| c.is_ascii_alphanumeric());
            let hash = parse_sha256_hex(&k.sha256);
            match (valid_prefix, hash) {
                (true, Some(sha256)) => {
                    let entry = ApiKeyEntry {
                        principal: p.id,
                        sha256,
                        expires_at: k.expires_at,
                    };
                    if keys.insert(k.prefix.as_str().into(), entry).is_some() {
                        errs.push(
                            "principals",
                            i,
                            Some("api_keys"),
                            format!("duplicate API key prefix `{}`", k.prefix),
                        );
                    }
                }
                (false, _) => errs.push(
                    "principals",
                    i,
                    Some("api_keys"),
                    format!(
                        "API key prefix `{}` must be 8 ASCII letters or digits",
                        k.prefix
                    ),
                ),
                (_, None) => errs.push(
                    "principals",
                    i,
                    Some("api_keys"),
                    "API key hash must be 64 hex digits (SHA-256)".into(),
                ),
            }
        }
        let role_names = names_cache
            .entry(effective.clone())
            .or_insert_with(|| {
                let names: Vec<&str> = effective
                    .iter()
                    .map(|r| &*roles[*r as usize].name)
                    .collect();
                names.join(",").into()
            })
            .clone();
        let principal = Principal {
            id: p.id,
            tenant: p.tenant,
            name: p.name.as_str().into(),
            service_account: p.service_account,
            active: p.status == PrincipalStatus::Active,
            locked: p.locked,
            locked_until: p.locked_until,
            attributes: p.attributes.clone(),
            roles: effective.into_boxed_slice(),
            role_names,
        };
        if out.insert(p.id, principal).is_some() {
            errs.push(
                "principals",
                i,
                Some("id"),
                format!("duplicate principal id `{}`", p.id),
            );
        }
    }
    (out, keys)
}

fn compile_grants(
    src: &PolicySource,
    principals: &Map<Uuid, Principal>,
    errs: &mut Errors,
) -> Map<Uuid, Box<[Grant]>> {
    let mut by_principal: HashMap<Uuid, Vec<Grant>> = HashMap::new();
    for (i, g) in src.grants.iter().enumerate() {
        if !principals.contains_key(&g.principal) {
            errs.push(
                "grants",
                i,
                Some("principal"),
                format!("unknown principal `{}`", g.principal),
            );
        }
        if let Err(e) = valid_pattern(&g.resource) {
            errs.push("grants", i, Some("resource"), e);
        }
        let actions = compile_actions(&g.actions).unwrap_or_else(|e| {
            errs.push("grants", i, Some("actions"), e);
            Actions::All
        });
        if g.not_before.is_some_and(|nb| nb >= g.expires_at) {
            errs.push(
                "grants",
                i,
                Some("expires_at"),
                "grant expires before it starts".into(),
            );
        }
        by_principal.entry(g.principal).or_default().push(Grant {
            id: g.id.as_str().into(),
            resource_type: g.resource_type.as_str().into(),
            resource: ResourcePattern::parse(&g.resource),
            actions,
            not_before: g.not_before,
            expires_at: g.expires_at,
            approval_chain: g.approval_chain.as_deref().map(Into::into),
        });
    }
    by_principal
        .into_iter()
        .map(|(k, v)| (k, v.into_boxed_slice()))
        .collect()
}

fn compile_fields(
    src: &PolicySource,
    tenants: &Map<Uuid, Tenant>,
    errs: &mut Errors,
) -> Map<Box<str>, EntityFields> {
    let mut out: Map<Box<str>, EntityFields> = Map::default();
    for (i, f) in src.field_definitions.iter().enumerate() {
        if f.entity.is_empty() || f.field.is_empty() {
            errs.push(
                "field_definitions",
                i,
                None,
                "entity and field must not be empty".into(),
            );
            continue;
        }
        match (f.tier, f.tenant) {
            (Tier::TenantSpecific, None) => errs.push(
                "field_definitions",
                i,
                Some("tenant"),
                "a tenant_specific field needs its tenant".into(),
            ),
            (Tier::TenantSpecific, Some(t)) if !tenants.contains_key(&t) => errs.push(
                "field_definitions",
                i,
                Some("tenant"),
                format!("unknown tenant `{t}`"),
            ),
            (Tier::Core | Tier::PlatformDynamic, Some(_)) => errs.push(
                "field_definitions",
                i,
                Some("tenant"),
                "only tenant_specific fields belong to a tenant".into(),
            ),
            _ => {}
        }
        let entity = out.entry(f.entity.as_str().into()).or_default();
        let def = FieldDef {
            tier: f.tier,
            tenant: f.tenant,
            mask: f.mask,
            mask_keep: f.mask_keep.unwrap_or(4),
        };
        let duplicate = match f.tenant {
            Some(t) if f.tier == Tier::TenantSpecific => entity
                .by_tenant
                .entry(t)
                .or_default()
                .insert(f.field.as_str().into(), def)
                .is_some(),
            _ => entity.shared.insert(f.field.as_str().into(), def).is_some(),
        };
        if duplicate {
            errs.push(
                "field_definitions",
                i,
                Some("field"),
                format!("duplicate field `{}.{}`", f.entity, f.field),
            );
        }
    }
    out
}
