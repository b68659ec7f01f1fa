//! [`Policy`]: the whole compiled policy a gateway enforces, either compiled
//! whole (policy files) or assembled from a global part and one shard per
//! tenant (snapshots published by the admin API, see [`crate::bundle`]).
//!
//! A request authenticates against the `Policy`, which hands back the
//! [`Snapshot`] view of the caller's shard; everything after authentication
//! (evaluation, explain, field rules) works on that view alone.

use crate::apikey::{key_prefix, ApiKeyError};
use crate::model::{EntityFields, Global, Map, Principal, Snapshot, SnapshotStats, Tenant};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug)]
pub struct Policy {
    pub(crate) version: u64,
    pub(crate) global: Arc<Global>,
    pub(crate) layout: Layout,
}

#[derive(Debug)]
pub(crate) enum Layout {
    /// One snapshot holding every principal.
    Whole(Arc<Snapshot>),
    /// One snapshot per tenant, sharing the global part.
    Sharded {
        shards: Map<Uuid, Arc<Snapshot>>,
        /// Principal id → its tenant's shard.
        by_principal: Map<Uuid, Uuid>,
        /// API-key prefix → the tenant shard that holds the key.
        by_key: Map<Box<str>, Uuid>,
    },
}

impl Policy {
    /// A policy compiled whole (policy files, tests).
    pub fn whole(snapshot: Snapshot) -> Policy {
        Policy {
            version: snapshot.version,
            global: Arc::clone(&snapshot.global),
            layout: Layout::Whole(Arc::new(snapshot)),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn global(&self) -> &Arc<Global> {
        &self.global
    }

    pub fn tenant(&self, id: &Uuid) -> Option<&Tenant> {
        self.global.tenant(id)
    }

    pub fn entity(&self, name: &str) -> Option<&EntityFields> {
        self.global.entity(name)
    }

    /// Has this token id been revoked (logout, blacklist)?
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.global.is_revoked(jti)
    }

    /// A principal and the view of its shard.
    pub fn principal(&self, id: &Uuid) -> Option<(&Snapshot, &Principal)> {
        match &self.layout {
            Layout::Whole(s) => s.principal(id).map(|p| (&**s, p)),
            Layout::Sharded {
                shards,
                by_principal,
                ..
            } => {
                let shard = shards.get(by_principal.get(id)?)?;
                shard.principal(id).map(|p| (&**shard, p))
            }
        }
    }

    /// Authenticates a service account by API key; the view of its shard.
    pub fn authenticate_api_key(
        &self,
        key: &str,
        now: i64,
    ) -> Result<(&Snapshot, &Principal), ApiKeyError> {
        let shard: &Snapshot = match &self.layout {
            Layout::Whole(s) => s,
            Layout::Sharded { shards, by_key, .. } => {
                let prefix = key_prefix(key)?;
                by_key
                    .get(prefix)
                    .and_then(|t| shards.get(t))
                    .ok_or(ApiKeyError::Invalid)?
            }
        };
        shard.authenticate_api_key(key, now).map(|p| (shard, p))
    }

    /// The shard of `tenant` (sharded policies only).
    pub fn shard(&self, tenant: &Uuid) -> Option<&Arc<Snapshot>> {
        match &self.layout {
            Layout::Whole(_) => None,
            Layout::Sharded { shards, .. } => shards.get(tenant),
        }
    }

    /// How many shards (1 for a policy compiled whole).
    pub fn shard_count(&self) -> usize {
        match &self.layout {
            Layout::Whole(_) => 1,
            Layout::Sharded { shards, .. } => shards.len(),
        }
    }

    pub fn stats(&self) -> SnapshotStats {
        match &self.layout {
            Layout::Whole(s) => s.stats(),
            Layout::Sharded { shards, .. } => {
                let mut out = SnapshotStats {
                    tenants: self.global.tenant_count(),
                    principals: 0,
                    roles: 0,
                    permissions: 0,
                    grants: 0,
                    revoked_tokens: self.global.revoked_count(),
                };
                for s in shards.values() {
                    let st = s.stats();
                    out.principals += st.principals;
                    out.roles += st.roles;
                    out.permissions += st.permissions;
                    out.grants += st.grants;
                }
                out
            }
        }
    }
}
