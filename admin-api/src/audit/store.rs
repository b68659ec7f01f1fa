//! Appending events to `sentinel.audit_logs`: the one writer, shared by the
//! ingest endpoint and the admin writes' own events.
//!
//! In the caller's transaction: the chains the events join are locked (an
//! advisory lock per (tenant, day), taken in key order, so that two writers
//! never deadlock and never link to the same head), the partitions their
//! months need are created, events already stored are skipped (idempotency
//! by `(time, id)`), the rest are linked into their chains and inserted with
//! one multi-row `INSERT … SELECT FROM unnest(…)`, and the heads move on.

use super::chain::{self, Hash};
use super::event::Event;
use crate::db::Tx;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

/// What an append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Events stored now.
    pub accepted: u64,
    /// Events skipped: stored before, or repeated within the batch.
    pub duplicates: u64,
}

/// Creates the partitions this month and the next `ahead` months need.
pub async fn ensure_partitions(pool: &sqlx::PgPool, ahead: i32) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT sentinel.audit_ensure_partitions($1)")
        .bind(ahead)
        .fetch_one(pool)
        .await
}

/// Stores `events` (any order) in the transaction; events already stored
/// are skipped, never overwritten.
pub async fn append(tx: &mut Tx, events: Vec<Event>) -> Result<Appended, sqlx::Error> {
    let offered = events.len() as u64;
    // Repeated within the batch: the first one counts.
    let mut seen = HashSet::with_capacity(events.len());
    let mut events: Vec<Event> = events
        .into_iter()
        .filter(|e| seen.insert((e.time, e.id)))
        .collect();
    if events.is_empty() {
        return Ok(Appended {
            accepted: 0,
            duplicates: offered,
        });
    }
    let keys: BTreeSet<(Uuid, NaiveDate)> = events.iter().map(chain::key_of).collect();
    // Partitions first: creating one waits for the writers of the table,
    // which must not be waiting for a chain lock this transaction holds.
    let months: BTreeSet<NaiveDate> = keys
        .iter()
        .filter_map(|(_, d)| NaiveDate::from_ymd_opt(d.year(), d.month(), 1))
        .collect();
    for m in months {
        sqlx::query("SELECT sentinel.audit_ensure_partition($1)")
            .bind(m)
            .execute(&mut **tx)
            .await?;
    }
    let lock_names: Vec<String> = keys
        .iter()
        .map(|(t, d)| format!("sentinel.audit:{t}:{d}"))
        .collect();
    // INVARIANT: keys are sorted (BTreeSet), and unnest keeps array order,
    // so every writer takes its locks in the same order.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS u(k)",
    )
    .bind(&lock_names)
    .execute(&mut **tx)
    .await?;
    // Under the locks: what is stored already is final.
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.time).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let (first, last) = (times.iter().min().copied(), times.iter().max().copied());
    // The time bounds let PostgreSQL skip the partitions the batch cannot be in.
    let stored: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(
        "SELECT a.time, a.id FROM sentinel.audit_logs a
           JOIN unnest($1::timestamptz[], $2::uuid[]) AS u(time, id) ON a.time = u.time AND a.id = u.id
          WHERE a.time >= $3 AND a.time <= $4",
    )
    .bind(&times)
    .bind(&ids)
    .bind(first)
    .bind(last)
    .fetch_all(&mut **tx)
    .await?;
    if !stored.is_empty() {
        let stored: HashSet<(DateTime<Utc>, Uuid)> = stored.into_iter().collect();
        events.retain(|e| !stored.contains(&(e.time, e.id)));
    }
    let duplicates = offered - events.len() as u64;
    if events.is_empty() {
        return Ok(Appended {
            accepted: 0,
            duplicates,
        });
    }
    let (head_tenants, head_days): (Vec<Uuid>, Vec<NaiveDate>) = keys.iter().copied().unzip();
    let heads: Vec<(Uuid, NaiveDate, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT h.chain_tenant, h.chain_day, h.seq, h.hash FROM sentinel.audit_chain_heads h
           JOIN unnest($1::uuid[], $2::date[]) AS u(t, d) ON h.chain_tenant = u.t AND h.chain_day = u.d",
    )
    .bind(&head_tenants)
    .bind(&head_days)
    .fetch_all(&mut **tx)
    .await?;
    let mut heads: BTreeMap<(Uuid, NaiveDate), (i64, Hash)> = heads
        .into_iter()
        .map(|(t, d, s, h)| {
            let mut hash = chain::GENESIS;
            if h.len() == hash.len() {
                hash.copy_from_slice(&h);
            }
            ((t, d), (s, hash))
        })
        .collect();
    // Within a chain, in time order; events of one millisecond keep the
    // order they came in (a stable sort): a batch's lines, a transaction's writes.
    events.sort_by_key(|e| (chain::key_of(e), e.time));
    let mut seqs = Vec::with_capacity(events.len());
    let mut hashes = Vec::with_capacity(events.len());
    for e in &events {
        let head = heads.entry(chain::key_of(e)).or_insert((0, chain::GENESIS));
        let seq = head.0 + 1;
        let hash = chain::link(&head.1, seq, e);
        *head = (seq, hash);
        seqs.push(seq);
        hashes.push(hash.to_vec());
    }
    let accepted = insert(tx, &events, &seqs, &hashes).await?;
    let mut t = Vec::with_capacity(keys.len());
    let mut d = Vec::with_capacity(keys.len());
    let mut s = Vec::with_capacity(keys.len());
    let mut h = Vec::with_capacity(keys.len());
    for ((tenant, day), (seq, hash)) in heads.into_iter().filter(|(k, _)| keys.contains(k)) {
        t.push(tenant);
        d.push(day);
        s.push(seq);
        h.push(hash.to_vec());
    }
    sqlx::query(
        "INSERT INTO sentinel.audit_chain_heads (chain_tenant, chain_day, seq, hash)
         SELECT * FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::bytea[])
         ON CONFLICT (chain_tenant, chain_day)
         DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, updated_at = now()",
    )
    .bind(&t)
    .bind(&d)
    .bind(&s)
    .bind(&h)
    .execute(&mut **tx)
    .await?;
    if accepted != events.len() as u64 {
        // Only a forged replay (the same `(time, id)` under another tenant,
        // hence another chain lock) gets here: refuse, the sender retries.
        return Err(sqlx::Error::Protocol(
            "an event of the batch was stored concurrently under another chain; retry".to_owned(),
        ));
    }
    Ok(Appended {
        accepted,
        duplicates,
    })
}

/// One multi-row insert of linked events; returns the rows stored.
async fn insert(
    tx: &mut Tx,
    events: &[Event],
    seqs: &[i64],
    hashes: &[Vec<u8>],
) -> Result<u64, sqlx::Error> {
    fn col<T>(events: &[Event], f: impl Fn(&Event) -> T) -> Vec<T> {
        events.iter().map(f).collect()
    }
    let rules: Vec<Value> = col(events, |e| {
        Value::Array(e.rules.iter().cloned().map(Value::String).collect())
    });
    let r = sqlx::query(
        "INSERT INTO sentinel.audit_logs (id, time, source, request_id, tenant_id, principal_id, principal_kind,
                method, route, path, resource, resource_id, action, outcome, code, reason, rules, client_ip,
                user_agent, status, latency_ms, risk_score, snapshot_version, gateway, before, after,
                chain_seq, hash)
         SELECT u.id, u.time, u.source, u.request_id, u.tenant_id, u.principal_id, u.principal_kind,
                u.method, u.route, u.path, u.resource, u.resource_id, u.action, u.outcome, u.code, u.reason,
                ARRAY(SELECT jsonb_array_elements_text(u.rules)), u.client_ip,
                u.user_agent, u.status, u.latency_ms, u.risk_score, u.snapshot_version, u.gateway, u.before, u.after,
                u.chain_seq, u.hash
           FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                       $15::text[], $16::text[], $17::jsonb[], $18::text[], $19::text[], $20::int[],
                       $21::float8[], $22::float8[], $23::bigint[], $24::text[], $25::jsonb[], $26::jsonb[],
                       $27::bigint[], $28::bytea[])
             AS u(id, time, source, request_id, tenant_id, principal_id, principal_kind, method, route, path,
                  resource, resource_id, action, outcome, code, reason, rules, client_ip, user_agent, status,
                  latency_ms, risk_score, snapshot_version, gateway, before, after, chain_seq, hash)
         ON CONFLICT (time, id) DO NOTHING",
    )
    .bind(col(events, |e| e.id))
    .bind(col(events, |e| e.time))
    .bind(col(events, |e| e.source.clone()))
    .bind(col(events, |e| e.request_id.clone()))
    .bind(col(events, |e| e.tenant_id))
    .bind(col(events, |e| e.principal_id.clone()))
    .bind(col(events, |e| e.principal_kind.clone()))
    .bind(col(events, |e| e.method.clone()))
    .bind(col(events, |e| e.route.clone()))
    .bind(col(events, |e| e.path.clone()))
    .bind(col(events, |e| e.resource.clone()))
    .bind(col(events, |e| e.resource_id.clone()))
    .bind(col(events, |e| e.action.clone()))
    .bind(col(events, |e| e.outcome.clone()))
    .bind(col(events, |e| e.code.clone()))
    .bind(col(events, |e| e.reason.clone()))
    .bind(rules)
    .bind(col(events, |e| e.client_ip.clone()))
    .bind(col(events, |e| e.user_agent.clone()))
    .bind(col(events, |e| e.status))
    .bind(col(events, |e| e.latency_ms))
    .bind(col(events, |e| e.risk_score))
    .bind(col(events, |e| e.snapshot_version))
    .bind(col(events, |e| e.gateway.clone()))
    .bind(col(events, |e| e.before.clone()))
    .bind(col(events, |e| e.after.clone()))
    .bind(seqs)
    .bind(hashes)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}
