//! Request anomaly scoring at the edge: the per-principal and per-address
//! state of `sentinel_risk::anomaly`, held in memory with bounds (moka), and
//! the scorer (the model from `[risk] model`, or the documented rules).
//!
//! Per authenticated request the proxy calls [`AnomalyStore::observe`]
//! (address window, principal window and features, score) and, once it knows
//! its answer, [`AnomalyStore::settle`] (a served, unsuspicious request
//! teaches the baseline; a stepped-up or blocked one never does). Failed
//! authentications go to [`AnomalyStore::auth_failure`]. The crate's
//! `examples/anomaly_replay.rs` is the reference for this loop.
//!
//! The scorer is swapped whole without a restart ([`AnomalyStore::swap_scorer`]):
//! the registry's active model, which `live/model.rs` fetches and loads off
//! the request path when the policy snapshot names it; a request reads the
//! scorer once (`ArcSwap`) and scores with that one.
//!
//! Concurrency: each state is read, updated and written back whole; two
//! requests of one principal at the same instant may lose one count of the
//! window (last writer wins). No lock is held across an await.

use crate::config::RiskConfig;
use arc_swap::ArcSwap;
use moka::sync::Cache;
use sentinel_risk::anomaly::{
    observe, rule_score, settle, AddressState, AnomalyConfig, Outcome, PrincipalState,
    RequestFacts, Score, Scorer, ScorerKind, FEATURE_NAMES,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Sets `sentinel_anomaly_model{name,version,sha256}` to 1 for the scorer in
/// force (`rules` for all three without a model), and clears the others.
pub fn model_in_force(scorer: &Scorer) {
    let Some(m) = crate::metrics::get() else {
        return;
    };
    m.risk.anomaly_model.reset();
    let labels = match scorer.model() {
        Some(i) => [i.name.as_str(), i.version.as_str(), i.sha256.as_str()],
        None => ["rules", "rules", "rules"],
    };
    m.risk.anomaly_model.with_label_values(&labels).set(1);
}

/// Anomaly state of one gateway.
pub struct AnomalyStore {
    config: AnomalyConfig,
    /// The scorer in force: the registry's active model once one is loaded,
    /// else `file_scorer`.
    scorer: ArcSwap<Scorer>,
    /// What `[risk] model` loaded at start (the model file or the rules):
    /// in force while the snapshot names no registry model.
    file_scorer: Arc<Scorer>,
    principals: Cache<Uuid, PrincipalState, foldhash::fast::RandomState>,
    addresses: Cache<IpAddr, AddressState, foldhash::fast::RandomState>,
}

/// A request observed and scored, to be settled with its outcome.
pub struct Observed {
    pub score: Score,
}

impl AnomalyStore {
    /// The store and its scorer: the model file's bytes when one is
    /// configured and loads, the rules otherwise (logged once, never fatal).
    pub fn new(cfg: &RiskConfig, model: Option<&[u8]>) -> Self {
        let (scorer, refused) = Scorer::load(model);
        if let Some(e) = refused {
            tracing::warn!(error = %e, "anomaly model refused; the rule fallback scores instead");
        }
        match scorer.model() {
            Some(m) => tracing::info!(
                name = %m.name,
                version = %m.version,
                sha256 = %m.sha256,
                "anomaly model loaded"
            ),
            None => tracing::info!("anomaly scoring by the rule fallback (no model)"),
        }
        let config = cfg.anomaly.clone();
        let scorer = Arc::new(scorer);
        model_in_force(&scorer);
        let hasher = foldhash::fast::RandomState::default;
        AnomalyStore {
            principals: Cache::builder()
                .max_capacity(cfg.max_principals)
                .time_to_idle(Duration::from_secs(config.profile_ttl.max(1)))
                .build_with_hasher(hasher()),
            addresses: Cache::builder()
                .max_capacity(cfg.max_addresses)
                .time_to_idle(Duration::from_secs(config.window_ttl.max(1)))
                .build_with_hasher(hasher()),
            config,
            scorer: ArcSwap::new(Arc::clone(&scorer)),
            file_scorer: scorer,
        }
    }

    /// The scorer in force (`model` or `rules`; `Scorer::model` names the model).
    pub fn scorer(&self) -> Arc<Scorer> {
        self.scorer.load_full()
    }

    /// Puts `scorer` in force for the next requests (one atomic swap; a
    /// request already scoring finishes with the one it read).
    pub fn swap_scorer(&self, scorer: Arc<Scorer>) {
        self.scorer.store(scorer);
        model_in_force(&self.scorer.load());
    }

    /// Puts the scorer `[risk] model` loaded at start back in force.
    pub fn restore_file_scorer(&self) {
        self.swap_scorer(Arc::clone(&self.file_scorer));
    }

    /// Counts the request in the client address's and the principal's
    /// windows, and scores it. `facts.address` is filled in here.
    pub fn observe(&self, principal: &Uuid, facts: &mut RequestFacts<'_>, now: u64) -> Observed {
        let mut buf = Uuid::encode_buffer();
        let name = principal.hyphenated().encode_lower(&mut buf);
        let (address, signals) = self
            .addresses
            .get(&facts.client)
            .unwrap_or_default()
            .observe(name, now, &self.config);
        self.addresses.insert(facts.client, address);
        facts.address = signals;
        let state = self.principals.get(principal).unwrap_or_default();
        let (state, features) = observe(state, facts, now, &self.config);
        self.principals.insert(*principal, state);
        // An immature baseline (fewer than `baseline_requests` learned) is
        // scored by the rules alone: the model was trained on principals
        // with a history and reads "everything is new" as an attack, while
        // the documented promise for a principal's first requests is that
        // only failed logins, denials and absolute breadth raise its score
        // (docs/anomaly.md, "Limits").
        debug_assert_eq!(FEATURE_NAMES[0], "maturity");
        let mature = features.values[0] >= 1.0;
        let score = if mature {
            self.scorer.load().score(&features)
        } else {
            Score {
                value: rule_score(&features),
                by: ScorerKind::Rules,
            }
        };
        if let Some(m) = crate::metrics::get() {
            m.risk.anomaly_score.observe(f64::from(score.value));
        }
        Observed { score }
    }

    /// What the gateway answered: a denial counts, a served request under
    /// the anomaly threshold (or with a fresh MFA) teaches the baseline.
    pub fn settle(
        &self,
        principal: &Uuid,
        facts: &RequestFacts<'_>,
        observed: &Observed,
        outcome: Outcome,
        now: u64,
    ) {
        let state = self.principals.get(principal).unwrap_or_default();
        let state = settle(
            state,
            facts,
            now,
            observed.score.value,
            outcome,
            &self.config,
        );
        self.principals.insert(*principal, state);
    }

    /// A failed authentication from `client` (SPEC: it raises the risk of
    /// that address's next authenticated requests).
    pub fn auth_failure(&self, client: IpAddr, now: u64) {
        let state = self.addresses.get(&client).unwrap_or_default();
        self.addresses
            .insert(client, state.record_auth_failure(now, &self.config));
    }

    /// Requests the principal's baseline has learned (tests and tools).
    pub fn learned(&self, principal: &Uuid) -> u32 {
        self.principals.get(principal).map_or(0, |s| s.learned())
    }
}
