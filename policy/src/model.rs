//! The compiled policy snapshot: indexed, immutable, shared behind `Arc`.
//!
//! Built only by [`crate::compile`]; every reference inside is an index that the
//! compiler checked, so evaluation never fails on a dangling id.

use crate::source::{AttributeOp, Effect, FieldRule, MaskStyle, TenantScope, TenantStatus, Tier};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// A map a request looks things up in. foldhash (hashbrown's default
/// hasher, seeded per process) instead of std's SipHash: a request does
/// about ten lookups by UUID or short name, and SipHash cost ~150
/// instructions each (docs/PERFORMANCE.md). The keys come from the policy,
/// which requests cannot add to.
pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A set a request looks things up in (see [`Map`]).
pub type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// The platform tenant (`PLATFORM`): its principals may hold `tenant_scope = "any"`.
pub const PLATFORM_TENANT: Uuid = Uuid::nil();

/// A compiled policy as one request sees it: the global part (tenants, field
/// definitions, revoked tokens) and the principals, roles and permissions of
/// one shard (a tenant's, or everything for a policy compiled whole).
///
/// Both halves sit behind `Arc`, so a sharded [`crate::Policy`] re-pairs
/// unchanged shards with a new global part without copying them.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) version: u64,
    pub(crate) global: Arc<Global>,
    pub(crate) local: Arc<Local>,
}

/// What every shard shares: small, and rebuilt whole when it changes.
#[derive(Debug, Default)]
pub struct Global {
    pub(crate) tenants: Map<Uuid, Tenant>,
    pub(crate) revoked: Set<Box<str>>,
    pub(crate) entities: Map<Box<str>, EntityFields>,
}

/// The principals of one shard, the roles and permissions they can hold,
/// and their grants. Role and permission indices are local to the shard.
#[derive(Debug, Default)]
pub struct Local {
    pub(crate) principals: Map<Uuid, Principal>,
    pub(crate) api_keys: Map<Box<str>, ApiKeyEntry>,
    pub(crate) roles: Box<[Role]>,
    pub(crate) permissions: Box<[Permission]>,
    pub(crate) grants: Map<Uuid, Box<[Grant]>>,
    /// Some permission of this shard is a shadow rule: only then does a
    /// request pay for a second, shadow decision.
    pub(crate) has_shadow: bool,
}

impl Global {
    pub fn tenant(&self, id: &Uuid) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains(jti)
    }

    pub fn entity(&self, name: &str) -> Option<&EntityFields> {
        self.entities.get(name)
    }

    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

#[derive(Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub code: Box<str>,
    pub name: Box<str>,
    pub status: TenantStatus,
    pub parent: Option<Uuid>,
    /// Parent, grandparent, … up to the root.
    pub ancestors: Box<[Uuid]>,
    pub settings: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug)]
pub struct Principal {
    pub id: Uuid,
    pub tenant: Uuid,
    pub name: Box<str>,
    pub service_account: bool,
    pub active: bool,
    pub locked: bool,
    pub locked_until: Option<i64>,
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Effective roles (direct, through groups, and every ancestor), deduplicated.
    pub(crate) roles: Box<[u32]>,
    /// Effective role names, comma-separated, for the `x-sentinel-roles` header.
    pub role_names: Arc<str>,
}

#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) id: Box<str>,
    pub(crate) name: Box<str>,
    /// This role's own permissions (not inherited ones), indexed by resource type.
    pub(crate) by_type: Map<Box<str>, TypeRules>,
}

/// The permissions of one role on one resource type, indexed by resource pattern.
#[derive(Debug, Default)]
pub(crate) struct TypeRules {
    pub(crate) wildcard: Vec<u32>,
    pub(crate) exact: Map<Box<str>, Vec<u32>>,
    pub(crate) prefix: Vec<(Box<str>, u32)>,
}

#[derive(Debug)]
pub struct Permission {
    pub id: Box<str>,
    pub effect: Effect,
    pub resource_type: Box<str>,
    pub resource: ResourcePattern,
    pub actions: Actions,
    pub conditions: Box<[Condition]>,
    pub tenant_scope: TenantScope,
    /// Field rules per tier, indexed by [`tier_index`]; `*` stands for every field of the tier.
    pub fields: [BTreeMap<Box<str>, FieldRule>; 3],
    /// A shadow rule: never part of the live decision (see
    /// [`Snapshot::authorize_shadow`]).
    pub shadow: bool,
}

/// Position of a tier in [`Permission::fields`].
pub fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Core => 0,
        Tier::PlatformDynamic => 1,
        Tier::TenantSpecific => 2,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourcePattern {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
}

impl ResourcePattern {
    pub fn parse(s: &str) -> ResourcePattern {
        if s == "*" {
            ResourcePattern::Any
        } else if let Some(p) = s.strip_suffix('*') {
            ResourcePattern::Prefix(p.into())
        } else {
            ResourcePattern::Exact(s.into())
        }
    }

    /// Does this pattern cover `id` (`None`: the collection, covered by `*` only)?
    pub fn matches(&self, id: Option<&str>) -> bool {
        match (self, id) {
            (ResourcePattern::Any, _) => true,
            (_, None) => false,
            (ResourcePattern::Exact(e), Some(id)) => &**e == id,
            (ResourcePattern::Prefix(p), Some(id)) => id.starts_with(&**p),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actions {
    All,
    Some(Box<[Box<str>]>),
}

impl Actions {
    pub fn contains(&self, action: &str) -> bool {
        match self {
            Actions::All => true,
            Actions::Some(list) => list.iter().any(|a| &**a == action),
        }
    }
}

/// A compiled ABAC condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Attribute {
        name: Box<str>,
        op: AttributeOp,
        value: serde_json::Value,
    },
    ClientIp(Box<[IpNet]>),
    Mfa,
    /// Hours `[from, to)` (wrapping past midnight when `from > to`) and a weekday bit mask (bit 0 = Monday).
    Time {
        hours: Option<(u8, u8)>,
        weekdays: u8,
    },
    /// The score's maximum, and whether a request without a score meets it.
    Risk {
        max: f64,
        allow_missing: bool,
    },
    Method(Box<[Box<str>]>),
}

#[derive(Debug)]
pub(crate) struct ApiKeyEntry {
    pub(crate) principal: Uuid,
    pub(crate) sha256: [u8; 32],
    pub(crate) expires_at: Option<i64>,
}

#[derive(Debug)]
pub struct Grant {
    pub id: Box<str>,
    pub resource_type: Box<str>,
    pub resource: ResourcePattern,
    pub actions: Actions,
    pub not_before: Option<i64>,
    pub expires_at: i64,
    pub approval_chain: Option<Box<str>>,
}

/// The field definitions of one entity type.
#[derive(Debug, Default)]
pub struct EntityFields {
    /// `core` and `platform_dynamic` fields, shared by every tenant.
    pub shared: Map<Box<str>, FieldDef>,
    /// `tenant_specific` fields, per owning tenant.
    pub by_tenant: Map<Uuid, Map<Box<str>, FieldDef>>,
}

impl EntityFields {
    /// The definition of `field` as seen by `tenant` (a tenant never sees another's custom fields).
    pub fn lookup(&self, tenant: &Uuid, field: &str) -> Option<&FieldDef> {
        self.shared
            .get(field)
            .or_else(|| self.by_tenant.get(tenant).and_then(|m| m.get(field)))
    }
}

#[derive(Debug)]
pub struct FieldDef {
    pub tier: Tier,
    /// Set for `tenant_specific` fields: the only tenant that has this field.
    pub tenant: Option<Uuid>,
    pub mask: MaskStyle,
    pub mask_keep: u8,
}

/// Counts, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    pub tenants: usize,
    pub principals: usize,
    pub roles: usize,
    pub permissions: usize,
    pub grants: usize,
    pub revoked_tokens: usize,
}

impl Snapshot {
    /// An empty snapshot: it denies everything.
    pub fn empty() -> Snapshot {
        Snapshot {
            version: 0,
            global: Arc::new(Global::default()),
            local: Arc::new(Local::default()),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The global part this view pairs with its shard.
    pub fn global(&self) -> &Arc<Global> {
        &self.global
    }

    pub fn tenant(&self, id: &Uuid) -> Option<&Tenant> {
        self.global.tenants.get(id)
    }

    pub fn principal(&self, id: &Uuid) -> Option<&Principal> {
        self.local.principals.get(id)
    }

    /// Has this token id been revoked (logout, blacklist)?
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.global.revoked.contains(jti)
    }

    /// The id of the permission at `idx` (as found in a [`crate::Decision`]).
    pub fn rule_id(&self, idx: u32) -> &str {
        self.local
            .permissions
            .get(idx as usize)
            .map_or("", |p| &p.id)
    }

    pub fn permission(&self, idx: u32) -> Option<&Permission> {
        self.local.permissions.get(idx as usize)
    }

    pub fn entity(&self, name: &str) -> Option<&EntityFields> {
        self.global.entities.get(name)
    }

    /// The names of a principal's effective roles.
    pub fn role_names<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = &'a str> + 'a {
        principal
            .roles
            .iter()
            .filter_map(|r| self.local.roles.get(*r as usize).map(|r| &*r.name))
    }

    /// The ids of a principal's effective roles.
    pub fn role_ids<'a>(&'a self, principal: &'a Principal) -> impl Iterator<Item = &'a str> + 'a {
        principal
            .roles
            .iter()
            .filter_map(|r| self.local.roles.get(*r as usize).map(|r| &*r.id))
    }

    /// Is `tenant` the same as, or a descendant of, `ancestor`?
    pub fn is_same_or_descendant(&self, tenant: &Uuid, ancestor: &Uuid) -> bool {
        tenant == ancestor
            || self
                .global
                .tenants
                .get(tenant)
                .is_some_and(|t| t.ancestors.contains(ancestor))
    }

    pub fn stats(&self) -> SnapshotStats {
        SnapshotStats {
            tenants: self.global.tenants.len(),
            principals: self.local.principals.len(),
            roles: self.local.roles.len(),
            permissions: self.local.permissions.len(),
            grants: self.local.grants.values().map(|g| g.len()).sum(),
            revoked_tokens: self.global.revoked.len(),
        }
    }
}
