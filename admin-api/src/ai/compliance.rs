//! The compliance monitor (docs/ai.md, "Compliance monitor"): the seeds'
//! regulations as named check sets over one tenant's policy and audit
//! trail, run on demand and by a leader-elected worker, stored in
//! `sentinel.compliance_monitoring`, reported as JSON and CSV.
//!
//! The checks ([`evaluate`]) are pure over [`Facts`] and a few numbers read
//! beside them; the clock is a parameter everywhere, so tests choose "now".
//! Reads policy, never changes it.

use super::facts::{self, Facts};
use super::optimizer::sod_conflicts;
use crate::config::SodRule;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The regulations and the checks each one runs.
pub const CHECK_SETS: &[(&str, &[&str])] = &[
    (
        "GDPR",
        &[
            "dormant_accounts",
            "admin_mfa",
            "audit_coverage",
            "audit_retention",
        ],
    ),
    (
        "SOX",
        &[
            "sod_conflicts",
            "stale_service_account_keys",
            "admin_count",
            "admin_mfa",
            "audit_coverage",
            "audit_retention",
        ],
    ),
    (
        "HIPAA",
        &[
            "dormant_accounts",
            "stale_service_account_keys",
            "admin_mfa",
            "audit_coverage",
            "audit_retention",
        ],
    ),
    (
        "ISPS",
        &[
            "stale_service_account_keys",
            "admin_count",
            "audit_coverage",
            "audit_retention",
        ],
    ),
];

/// Audit retention each regulation asks for, days: (at least, at most).
/// Our defaults, not legal advice (docs/ai.md).
pub fn retention_bounds(regulation: &str) -> (Option<i64>, Option<i64>) {
    match regulation {
        // Storage limitation: no longer than the longest other obligation.
        "GDPR" => (None, Some(2555)),
        // SOX §802: seven years.
        "SOX" => (Some(2555), None),
        // HIPAA §164.316(b)(2): six years.
        "HIPAA" => (Some(2190), None),
        // ISPS Code A/10.1: records kept as the administration sets; two years here.
        "ISPS" => (Some(730), None),
        _ => (None, None),
    }
}

/// What a compliance run reads besides [`Facts`].
#[derive(Debug, Clone)]
pub struct Inputs {
    pub now: DateTime<Utc>,
    pub dormant_days: i64,
    pub rotation_days: i64,
    pub max_admins: i64,
    pub sod_rules: Vec<SodRule>,
    /// The tenant's effective audit retention, days.
    pub retention_days: i64,
    /// UTC days of the window that have at least one event of the tenant.
    pub event_days: BTreeSet<NaiveDate>,
    pub platform_tenant: bool,
}

/// One check's result for one regulation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComplianceCheck {
    pub regulation: String,
    pub check: String,
    /// pass, fail or not_modelled
    pub status: String,
    /// low, medium, high or critical
    pub severity: String,
    pub summary: String,
    #[schema(value_type = Object)]
    pub evidence: Value,
}

struct Outcome {
    fail: bool,
    severity: &'static str,
    summary: String,
    evidence: Value,
    modelled: bool,
}

fn outcome(fail: bool, severity: &'static str, summary: String, evidence: Value) -> Outcome {
    Outcome {
        fail,
        severity,
        summary,
        evidence,
        modelled: true,
    }
}

fn check(f: &Facts, x: &Inputs, name: &str, regulation: &str) -> Option<Outcome> {
    let time = crate::audit::event::format_time;
    Some(match name {
        "sod_conflicts" => {
            let hits = sod_conflicts(f, &x.sod_rules);
            let list: Vec<Value> = hits
                .iter()
                .map(|h| json!({"rule": h.rule.name, "principal": {"id": h.principal.id, "name": h.principal.name}}))
                .collect();
            outcome(
                !hits.is_empty(),
                "high",
                format!("{} separation-of-duties conflict(s)", hits.len()),
                json!({"conflicts": list, "rules": x.sod_rules}),
            )
        }
        "dormant_accounts" => {
            let cut = x.now - Duration::days(x.dormant_days);
            let list: Vec<Value> = f
                .principals
                .values()
                .filter(|p| p.usable && !p.service_account)
                .filter(|p| p.last_login.map_or(p.created_at < cut, |t| t < cut))
                .map(|p| json!({"id": p.id, "name": p.name, "last_login": p.last_login.map(|t| time(&t))}))
                .collect();
            outcome(
                !list.is_empty(),
                "medium",
                format!("{} active account(s) without a login in {} days", list.len(), x.dormant_days),
                json!({"accounts": list, "dormant_days": x.dormant_days}),
            )
        }
        "stale_service_account_keys" => {
            let cut = x.now - Duration::days(x.rotation_days);
            let list: Vec<Value> = f
                .principals
                .values()
                .filter(|p| p.usable && p.service_account)
                .filter(|p| p.api_key_created_at.is_none_or(|t| t < cut))
                .map(|p| json!({"id": p.id, "name": p.name, "key_created_at": p.api_key_created_at.map(|t| time(&t))}))
                .collect();
            outcome(
                !list.is_empty(),
                "high",
                format!("{} service account key(s) older than {} days", list.len(), x.rotation_days),
                json!({"service_accounts": list, "rotation_days": x.rotation_days}),
            )
        }
        "admin_mfa" => Outcome {
            fail: false,
            severity: "high",
            summary: "not modelled: accounts carry no MFA enrolment (the gateway's `mfa` condition checks the request, not the account)".to_owned(),
            evidence: json!({}),
            modelled: false,
        },
        "admin_count" => {
            let is_admin = |s: &String| {
                if x.platform_tenant {
                    s == crate::scopes::PLATFORM_ADMIN
                } else {
                    s.ends_with(":admin")
                }
            };
            let list: Vec<Value> = f
                .principals
                .values()
                .filter(|p| p.usable && p.scopes.iter().any(is_admin))
                .map(|p| json!({"id": p.id, "name": p.name}))
                .collect();
            outcome(
                list.len() as i64 > x.max_admins,
                "medium",
                format!(
                    "{} principal(s) hold an {} scope (at most {})",
                    list.len(),
                    if x.platform_tenant { "`platform:admin`" } else { "admin" },
                    x.max_admins
                ),
                json!({"admins": list, "max_admins": x.max_admins}),
            )
        }
        "audit_coverage" => {
            // Days without any event between the first and the last day
            // that has one: a trail that stopped and started again.
            let gaps: Vec<String> = match (x.event_days.first(), x.event_days.last()) {
                (Some(a), Some(b)) => a
                    .iter_days()
                    .take_while(|d| d <= b)
                    .filter(|d| !x.event_days.contains(d))
                    .map(|d| d.to_string())
                    .collect(),
                _ => Vec::new(),
            };
            outcome(
                !gaps.is_empty(),
                "high",
                format!("{} day(s) without audit events inside the window", gaps.len()),
                json!({
                    "gaps": gaps,
                    "days_with_events": x.event_days.len(),
                    "window": {"from": time(&f.from), "to": time(&f.to)},
                }),
            )
        }
        "audit_retention" => {
            let (min, max) = retention_bounds(regulation);
            let fail = min.is_some_and(|m| x.retention_days < m) || max.is_some_and(|m| x.retention_days > m);
            outcome(
                fail,
                "medium",
                format!(
                    "audit retention {} days (wanted: {}{})",
                    x.retention_days,
                    min.map(|m| format!("at least {m}")).unwrap_or_default(),
                    max.map(|m| format!("at most {m}")).unwrap_or_default()
                ),
                json!({"retention_days": x.retention_days, "min_days": min, "max_days": max}),
            )
        }
        _ => return None,
    })
}

/// Every check of `regulations` (unknown names are skipped).
pub fn evaluate(f: &Facts, x: &Inputs, regulations: &[String]) -> Vec<ComplianceCheck> {
    let mut out = Vec::new();
    for (reg, checks) in CHECK_SETS {
        if !regulations.iter().any(|r| r == reg) {
            continue;
        }
        for name in *checks {
            if let Some(o) = check(f, x, name, reg) {
                out.push(ComplianceCheck {
                    regulation: (*reg).to_owned(),
                    check: (*name).to_owned(),
                    status: if !o.modelled {
                        "not_modelled"
                    } else if o.fail {
                        "fail"
                    } else {
                        "pass"
                    }
                    .to_owned(),
                    severity: o.severity.to_owned(),
                    summary: o.summary,
                    evidence: o.evidence,
                });
            }
        }
    }
    out
}

/// One stored run of one tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ComplianceReport {
    pub tenant_id: Uuid,
    pub run_id: Uuid,
    /// `schedule` or `on_demand`
    pub trigger: String,
    pub checked_at: DateTime<Utc>,
    /// Regulations with a failed check.
    pub non_compliant: Vec<String>,
    pub results: Vec<ComplianceCheck>,
}

/// How far back the coverage check looks, days.
pub const COVERAGE_DAYS: i64 = 30;

/// Runs the checks for `tenant` at `now` and stores them.
pub async fn run(
    state: &AppState,
    tenant: Uuid,
    now: DateTime<Utc>,
    trigger: &str,
    regulations: Option<Vec<String>>,
) -> ApiResult<ComplianceReport> {
    let cfg = &state.config;
    let mut tx = super::begin_analysis(&state.pool, tenant).await?;
    let from = now - Duration::days(COVERAGE_DAYS);
    let f = facts::load(&mut tx, tenant, from, now).await?;
    let settings: Value = sqlx::query_scalar("SELECT settings FROM sentinel.tenants WHERE id = $1")
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ApiError::NotFound)?;
    let retention_days = settings
        .get("audit_retention_days")
        .and_then(Value::as_i64)
        .unwrap_or(i64::from(cfg.audit_retention_days));
    let sod_rules = settings
        .get("ai_sod_rules")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_else(|| cfg.ai_sod_rules.clone());
    let regulations = regulations
        .or_else(|| {
            settings
                .get("compliance_regulations")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
        })
        .unwrap_or_else(|| cfg.compliance_regulations.clone());
    let event_days: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT (time AT TIME ZONE 'UTC')::date FROM sentinel.audit_logs
          WHERE tenant_id = $1 AND time >= $2 AND time < $3",
    )
    .bind(tenant)
    .bind(from)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let inputs = Inputs {
        now,
        dormant_days: cfg.ai_dormant_days,
        rotation_days: cfg.service_account_rotation_days,
        max_admins: cfg.ai_max_admins,
        sod_rules,
        retention_days,
        event_days: event_days.into_iter().collect(),
        platform_tenant: tenant == sentinel_policy::PLATFORM_TENANT,
    };
    let results = evaluate(&f, &inputs, &regulations);
    let run_id = Uuid::new_v4();
    for r in &results {
        sqlx::query(
            "INSERT INTO sentinel.compliance_monitoring
                    (tenant_id, run_id, trigger, regulation, check_name, status, severity, summary, evidence, checked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(tenant)
        .bind(run_id)
        .bind(trigger)
        .bind(&r.regulation)
        .bind(&r.check)
        .bind(&r.status)
        .bind(&r.severity)
        .bind(&r.summary)
        .bind(&r.evidence)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.status == "fail" {
            state
                .metrics
                .ai_compliance_failed_checks
                .with_label_values(&[&r.regulation])
                .inc();
        }
    }
    tx.commit().await?;
    state
        .metrics
        .ai_compliance_runs
        .with_label_values(&[trigger])
        .inc();
    Ok(report(tenant, run_id, trigger, now, results))
}

fn report(
    tenant: Uuid,
    run_id: Uuid,
    trigger: &str,
    at: DateTime<Utc>,
    results: Vec<ComplianceCheck>,
) -> ComplianceReport {
    let non_compliant: BTreeSet<String> = results
        .iter()
        .filter(|r| r.status == "fail")
        .map(|r| r.regulation.clone())
        .collect();
    ComplianceReport {
        tenant_id: tenant,
        run_id,
        trigger: trigger.to_owned(),
        checked_at: at,
        non_compliant: non_compliant.into_iter().collect(),
        results,
    }
}

type Row = (
    Uuid,
    String,
    DateTime<Utc>,
    String,
    String,
    String,
    String,
    String,
    Value,
);

/// The tenant's latest run, read under the caller's transaction.
pub async fn latest(tx: &mut crate::db::Tx, tenant: Uuid) -> ApiResult<Option<ComplianceReport>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT run_id, trigger, checked_at, regulation, check_name, status, severity, summary, evidence
           FROM sentinel.compliance_monitoring
          WHERE tenant_id = $1 AND run_id = (
                SELECT run_id FROM sentinel.compliance_monitoring WHERE tenant_id = $1
                 ORDER BY checked_at DESC, id DESC LIMIT 1)
          ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?;
    let Some((run_id, trigger, at, ..)) = rows.first().cloned() else {
        return Ok(None);
    };
    let mut results: Vec<ComplianceCheck> = rows
        .into_iter()
        .map(
            |(_, _, _, regulation, check, status, severity, summary, evidence)| ComplianceCheck {
                regulation,
                check,
                status,
                severity,
                summary,
                evidence,
            },
        )
        .collect();
    let order = |r: &ComplianceCheck| {
        CHECK_SETS
            .iter()
            .position(|(n, _)| *n == r.regulation)
            .unwrap_or(usize::MAX)
    };
    results.sort_by_key(|r| order(r));
    Ok(Some(report(tenant, run_id, &trigger, at, results)))
}

/// RFC 4180 CSV of a report: one line per check.
pub fn csv(r: &ComplianceReport) -> String {
    fn cell(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    }
    let mut out =
        String::from("tenant_id,run_id,checked_at,regulation,check,status,severity,summary\r\n");
    let at = crate::audit::event::format_time(&r.checked_at);
    for c in &r.results {
        let line = [
            r.tenant_id.to_string(),
            r.run_id.to_string(),
            at.clone(),
            c.regulation.clone(),
            c.check.clone(),
            c.status.clone(),
            c.severity.clone(),
            c.summary.clone(),
        ]
        .iter()
        .map(|s| cell(s))
        .collect::<Vec<_>>()
        .join(",");
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

/// The scheduled runs at `now`: one replica at a time (a transaction-level
/// advisory lock; the others skip this round), each active tenant whose
/// last scheduled run is older than the interval. Returns the tenants run.
pub async fn run_due(state: &AppState, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut lock = state.begin(crate::db::TenantCtx::All).await?;
    let leader: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('sentinel.ai.compliance', 0))",
    )
    .fetch_one(&mut *lock)
    .await?;
    if !leader {
        lock.rollback().await?;
        return Ok(0);
    }
    let every = i64::try_from(state.config.compliance_interval_seconds).unwrap_or(i64::MAX / 2);
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT t.id FROM sentinel.tenants t
          WHERE t.status = 'active'
            AND NOT EXISTS (SELECT 1 FROM sentinel.compliance_monitoring c
                             WHERE c.tenant_id = t.id AND c.trigger = 'schedule'
                               AND c.checked_at > $1)
          ORDER BY t.id",
    )
    .bind(now - Duration::seconds(every))
    .fetch_all(&mut *lock)
    .await?;
    let mut done = 0;
    for t in due {
        match run(state, t, now, "schedule", None).await {
            Ok(_) => done += 1,
            Err(e) => tracing::warn!(tenant = %t, error = %e, "scheduled compliance run failed"),
        }
    }
    lock.rollback().await?;
    Ok(done)
}

/// The scheduled worker of `serve`: looks for due tenants every minute (or
/// the interval, when shorter).
pub fn spawn_worker(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let secs = state.config.compliance_interval_seconds.clamp(1, 60);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
        loop {
            tick.tick().await;
            if let Err(e) = run_due(&state, Utc::now()).await {
                tracing::warn!(error = %e, "compliance worker: round failed; retrying next interval");
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        let r = ComplianceReport {
            tenant_id: Uuid::nil(),
            run_id: Uuid::nil(),
            trigger: "on_demand".to_owned(),
            checked_at: DateTime::from_timestamp(0, 0).unwrap(),
            non_compliant: vec![],
            results: vec![ComplianceCheck {
                regulation: "SOX".to_owned(),
                check: "admin_count".to_owned(),
                status: "pass".to_owned(),
                severity: "medium".to_owned(),
                summary: "2 admins, \"ok\"\nfine".to_owned(),
                evidence: json!({}),
            }],
        };
        let out = csv(&r);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "tenant_id,run_id,checked_at,regulation,check,status,severity,summary"
        );
        assert!(
            lines[1].ends_with(",SOX,admin_count,pass,medium,\"2 admins, \"\"ok\"\"\nfine\""),
            "{out}"
        );
    }

    #[test]
    fn every_regulation_has_retention_bounds() {
        for (reg, checks) in CHECK_SETS {
            let (min, max) = retention_bounds(reg);
            assert!(min.is_some() || max.is_some(), "{reg}");
            assert!(checks.contains(&"audit_retention") && checks.contains(&"audit_coverage"));
        }
    }
}
