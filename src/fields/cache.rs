//! Field plans built once per (policy snapshot, route, tenant, rule set)
//! instead of once per request.
//!
//! A plan depends on the entity's definitions and the allowing permissions
//! (both in the snapshot), the caller's tenant, the route's binding settings
//! and the deployment's hash key (fixed for the cache's life). The cache is
//! tied to one policy instance: the first lookup with another `Arc<Policy>`
//! starts an empty generation, so a snapshot swap can never serve a plan
//! built from the snapshot before it (identity, not the version number:
//! policy files may keep their `version` across edits).

use super::{FieldPlan, UnknownFields};
use arc_swap::ArcSwapOption;
use sentinel_policy::model::Snapshot;
use sentinel_policy::Policy;
use std::sync::{Arc, Weak};
use uuid::Uuid;

/// Plans kept per policy generation.
const CAPACITY: u64 = 10_000;

/// What a plan is built from, besides the policy instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanKey {
    pub route: Box<str>,
    pub entity: Box<str>,
    pub unknown: UnknownFields,
    pub tenant: Uuid,
    /// The policy shard the rule indices point into (its address: stable
    /// and unique while the generation's policy lives).
    pub shard: usize,
    /// The allowing permissions (`Decision::rules`), in decision order.
    pub rules: Box<[u32]>,
}

impl PlanKey {
    pub fn new(
        route: &str,
        entity: &str,
        unknown: UnknownFields,
        tenant: Uuid,
        shard: Option<&Snapshot>,
        rules: impl Iterator<Item = u32>,
    ) -> PlanKey {
        PlanKey {
            route: route.into(),
            entity: entity.into(),
            unknown,
            tenant,
            shard: shard.map_or(0, |s| s as *const Snapshot as usize),
            rules: rules.collect(),
        }
    }
}

struct Generation {
    /// The policy the plans were built from. A `Weak` keeps its allocation,
    /// so no other policy can appear at the same address meanwhile.
    policy: Weak<Policy>,
    plans: moka::sync::Cache<PlanKey, Arc<FieldPlan>>,
}

/// See the module docs.
#[derive(Default)]
pub struct PlanCache {
    current: ArcSwapOption<Generation>,
}

impl PlanCache {
    pub fn new() -> PlanCache {
        PlanCache::default()
    }

    /// The plan for `key` under `policy`, built with `build` on a miss.
    pub fn get_or_build(
        &self,
        policy: &Arc<Policy>,
        key: PlanKey,
        build: impl FnOnce() -> FieldPlan,
    ) -> Arc<FieldPlan> {
        let generation = self.generation(policy);
        if let Some(plan) = generation.plans.get(&key) {
            return plan;
        }
        let plan = Arc::new(build());
        generation.plans.insert(key, Arc::clone(&plan));
        plan
    }

    /// Plans held for the current generation (tests and metrics).
    pub fn len(&self) -> u64 {
        self.current.load().as_ref().map_or(0, |g| {
            g.plans.run_pending_tasks();
            g.plans.entry_count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn generation(&self, policy: &Arc<Policy>) -> Arc<Generation> {
        if let Some(g) = self.current.load_full() {
            if std::ptr::eq(g.policy.as_ptr(), Arc::as_ptr(policy)) {
                return g;
            }
        }
        // A request still on the previous policy during a swap may put its
        // generation back for a moment: plans are rebuilt, never mixed up.
        let g = Arc::new(Generation {
            policy: Arc::downgrade(policy),
            plans: moka::sync::Cache::new(CAPACITY),
        });
        self.current.store(Some(Arc::clone(&g)));
        g
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(tenant: u128, rules: &[u32]) -> PlanKey {
        PlanKey::new(
            "r",
            "vessel",
            UnknownFields::Remove,
            Uuid::from_u128(tenant),
            None,
            rules.iter().copied(),
        )
    }

    fn policy() -> Arc<Policy> {
        let src = sentinel_policy::source::PolicySource::default();
        Arc::new(Policy::whole(sentinel_policy::compile(&src).unwrap()))
    }

    #[test]
    fn plans_are_built_once_per_key_and_again_after_a_swap() {
        let cache = PlanCache::new();
        let builds = AtomicUsize::new(0);
        let build = || {
            builds.fetch_add(1, Ordering::Relaxed);
            FieldPlan::build(None, &Uuid::nil(), &[], UnknownFields::Remove)
        };
        let p1 = policy();
        let a = cache.get_or_build(&p1, key(1, &[1, 2]), build);
        let b = cache.get_or_build(&p1, key(1, &[1, 2]), build);
        assert!(Arc::ptr_eq(&a, &b), "same key, same plan");
        assert_eq!(builds.load(Ordering::Relaxed), 1);
        // Another tenant or rule set is another plan.
        cache.get_or_build(&p1, key(2, &[1, 2]), build);
        cache.get_or_build(&p1, key(1, &[2, 1]), build);
        assert_eq!(builds.load(Ordering::Relaxed), 3);
        assert_eq!(cache.len(), 3);
        // A swapped-in policy (same version number) starts empty.
        let p2 = policy();
        assert_eq!(p1.version(), p2.version());
        let c = cache.get_or_build(&p2, key(1, &[1, 2]), build);
        assert!(
            !Arc::ptr_eq(&a, &c),
            "a plan of the old snapshot was served"
        );
        assert_eq!(builds.load(Ordering::Relaxed), 4);
        assert_eq!(cache.len(), 1);
    }
}
