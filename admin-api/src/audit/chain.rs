//! Tamper evidence: one hash chain per (tenant, UTC day).
//!
//! The n-th event of a chain (`chain_seq` = n, from 1, in the order the
//! admin API stored them) carries
//! `hash_n = SHA-256(hash_{n-1} || n as 8 bytes big-endian || canonical(event))`
//! with `hash_0` = 32 zero bytes, where `canonical` is the event's JSON as
//! the API answers it ([`Event`]'s field order, keys of `before`/`after`
//! sorted). `sentinel.audit_chain_heads` keeps the last link of every chain.
//! [`verify`] walks every chain and names the first link that does not
//! hold: a changed row, a deleted row (a gap in `chain_seq`), or a cut end
//! (the head says more).
//!
//! Limits (docs/audit.md): whoever can rewrite both the rows and the heads
//! (the database owner) can rebuild a consistent chain; copy the heads out
//! (`sentinel-admin audit verify` prints them) to pin them.

use super::event::{Event, COLS};
use crate::db::{self, TenantCtx};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

pub type Hash = [u8; 32];

/// The link before the first of a chain.
pub const GENESIS: Hash = [0; 32];

/// The chain key of events without a tenant (the nil UUID is the platform tenant).
pub const NO_TENANT: Uuid = Uuid::from_u128(u128::MAX);

/// The chain an event belongs to.
pub fn key_of(e: &Event) -> (Uuid, NaiveDate) {
    (e.tenant_id.unwrap_or(NO_TENANT), e.time.date_naive())
}

/// The canonical bytes of an event.
pub fn canonical(e: &Event) -> Vec<u8> {
    // INVARIANT: serializing `Event` cannot fail (no maps with non-string keys).
    serde_json::to_vec(e).unwrap_or_default()
}

/// The hash of the `seq`-th event after `prev`.
pub fn link(prev: &Hash, seq: i64, e: &Event) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(canonical(e));
    h.finalize().into()
}

pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first link that does not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub tenant: Uuid,
    pub day: NaiveDate,
    pub seq: i64,
    pub id: Option<Uuid>,
    pub time: Option<DateTime<Utc>>,
    pub problem: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenant = if self.tenant == NO_TENANT {
            "(none)".to_owned()
        } else {
            self.tenant.to_string()
        };
        write!(f, "chain tenant {tenant} day {} seq {}", self.day, self.seq)?;
        if let (Some(id), Some(t)) = (self.id, self.time) {
            write!(f, " (event {id} at {})", super::event::format_time(&t))?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Report {
    pub chains: u64,
    pub events: u64,
    pub broken: Option<Broken>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    event: Event,
    chain_seq: i64,
    hash: Vec<u8>,
    chain_tenant: Uuid,
    chain_day: NaiveDate,
}

/// The chain being walked.
struct Walk {
    key: (Uuid, NaiveDate),
    seq: i64,
    prev: Hash,
}

/// Walks every chain whose day lies in `[from, to]` (UTC days, both
/// optional) and stops at the first broken link.
pub async fn verify(
    pool: &PgPool,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> anyhow::Result<Report> {
    let mut tx = db::begin(pool, TenantCtx::All).await?;
    let heads: Vec<(Uuid, NaiveDate, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT chain_tenant, chain_day, seq, hash FROM sentinel.audit_chain_heads
          WHERE ($1::date IS NULL OR chain_day >= $1) AND ($2::date IS NULL OR chain_day <= $2)
          ORDER BY chain_tenant, chain_day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    let heads: std::collections::BTreeMap<(Uuid, NaiveDate), (i64, Vec<u8>)> = heads
        .into_iter()
        .map(|(t, d, s, h)| ((t, d), (s, h)))
        .collect();
    let sql = format!(
        "SELECT {COLS}, chain_seq, hash,
                coalesce(tenant_id, '{NO_TENANT}'::uuid) AS chain_tenant,
                (time AT TIME ZONE 'UTC')::date AS chain_day
           FROM sentinel.audit_logs
          WHERE ($1::date IS NULL OR time >= ($1::timestamp AT TIME ZONE 'UTC'))
            AND ($2::date IS NULL OR time < (($2 + 1)::timestamp AT TIME ZONE 'UTC'))
          ORDER BY chain_tenant, chain_day, chain_seq"
    );
    let mut report = Report::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut walk: Option<Walk> = None;
    {
        let mut rows = sqlx::query_as::<_, Row>(&sql)
            .bind(from)
            .bind(to)
            .fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            let key = (r.chain_tenant, r.chain_day);
            if walk.as_ref().is_none_or(|w| w.key != key) {
                if let Some(w) = walk.take() {
                    if let Some(b) = end_of_chain(&w, &heads) {
                        report.broken = Some(b);
                        return Ok(report);
                    }
                }
                report.chains += 1;
                seen.insert(key);
                walk = Some(Walk {
                    key,
                    seq: 0,
                    prev: GENESIS,
                });
            }
            let Some(w) = walk.as_mut() else {
                continue;
            };
            report.events += 1;
            let broken = |problem: String| Broken {
                tenant: key.0,
                day: key.1,
                seq: r.chain_seq,
                id: Some(r.event.id),
                time: Some(r.event.time),
                problem,
            };
            if r.chain_seq != w.seq + 1 {
                report.broken = Some(broken(format!(
                    "expected link {} (events deleted or duplicated)",
                    w.seq + 1
                )));
                return Ok(report);
            }
            let want = link(&w.prev, r.chain_seq, &r.event);
            if want.as_slice() != r.hash.as_slice() {
                report.broken = Some(broken(
                    "hash does not match the event (the row was changed)".to_owned(),
                ));
                return Ok(report);
            }
            w.seq = r.chain_seq;
            w.prev = want;
        }
    }
    if let Some(w) = walk.take() {
        if let Some(b) = end_of_chain(&w, &heads) {
            report.broken = Some(b);
            return Ok(report);
        }
    }
    // A head whose chain has no rows left at all.
    if let Some(((t, d), (s, _))) = heads.iter().find(|(k, _)| !seen.contains(*k)) {
        report.broken = Some(Broken {
            tenant: *t,
            day: *d,
            seq: 1,
            id: None,
            time: None,
            problem: format!("the head records {s} events, none is stored"),
        });
    }
    tx.commit().await?;
    Ok(report)
}

/// The walked chain must end where its head says.
fn end_of_chain(
    w: &Walk,
    heads: &std::collections::BTreeMap<(Uuid, NaiveDate), (i64, Vec<u8>)>,
) -> Option<Broken> {
    let broken = |seq: i64, problem: String| Broken {
        tenant: w.key.0,
        day: w.key.1,
        seq,
        id: None,
        time: None,
        problem,
    };
    match heads.get(&w.key) {
        None => Some(broken(w.seq, "no head for this chain".to_owned())),
        Some((s, _)) if *s != w.seq => Some(broken(
            w.seq + 1,
            format!(
                "the head records {s} events, {} are stored (end cut off)",
                w.seq
            ),
        )),
        Some((_, h)) if h.as_slice() != w.prev.as_slice() => Some(broken(
            w.seq,
            "the head's hash does not match the last event".to_owned(),
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn event(reason: &str) -> Event {
        Event {
            id: crate::audit::event::new_v7(),
            time: Utc::now(),
            source: "gateway".into(),
            request_id: None,
            tenant_id: None,
            principal_id: None,
            principal_kind: None,
            method: None,
            route: None,
            path: None,
            resource: None,
            resource_id: None,
            action: None,
            outcome: "denied".into(),
            code: None,
            reason: Some(reason.into()),
            rules: vec![],
            client_ip: None,
            user_agent: None,
            status: None,
            latency_ms: Some(1.5),
            risk_score: None,
            snapshot_version: None,
            gateway: None,
            before: None,
            after: Some(serde_json::json!({"b": 1, "a": [true]})),
        }
    }

    #[test]
    fn a_link_covers_the_previous_hash_the_position_and_every_field() {
        let e = event("x");
        let h1 = link(&GENESIS, 1, &e);
        assert_ne!(h1, link(&GENESIS, 2, &e));
        assert_ne!(h1, link(&[1; 32], 1, &e));
        assert_ne!(h1, link(&GENESIS, 1, &event("y")));
        assert_eq!(h1, link(&GENESIS, 1, &e.clone()));
        // Keys of objects are canonical (sorted), whatever order they came in.
        let text = String::from_utf8(canonical(&e)).unwrap();
        assert!(text.contains(r#""after":{"a":[true],"b":1}"#), "{text}");
    }
}
