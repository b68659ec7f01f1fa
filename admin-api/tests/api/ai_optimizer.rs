//! The permission optimizer on a generated tenant (`ai::fixture`): every
//! planted problem is found and nothing else; applying a proposal changes
//! policy through the normal handlers (and is audited); findings stay in
//! their tenant and need `ai:read` / `ai:apply`.

use crate::common::*;
use axum::http::StatusCode;
use sentinel_admin::ai::fixture::{self, Planted, Spec};
use sentinel_admin::db::{self, TenantCtx};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

pub const FIXTURE_PASSWORD: &str = "Fixture-Passw0rd!";

pub async fn planted(t: &TestApp, code: &str) -> Planted {
    fixture::generate(
        &t.db.owner,
        &t.state.config,
        &Spec {
            code: code.to_owned(),
            users: 22,
            days: 14,
            events_per_user_day: 2,
            now: chrono::Utc::now(),
            admin_password: FIXTURE_PASSWORD.to_owned(),
        },
    )
    .await
    .unwrap()
}

pub async fn fixture_admin(t: &TestApp, p: &Planted, code: &str) -> String {
    t.login(&p.admin_email, FIXTURE_PASSWORD, code).await
}

async fn run(t: &TestApp, token: &str) -> Value {
    let (s, v) = t
        .post(
            "/api/v1/ai/optimizer/run",
            token,
            json!({"window_days": 30}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn of_kind<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn uuid(v: &Value) -> Uuid {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_planted_problem_is_found_and_nothing_else() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-OPT").await;
    let tok = fixture_admin(&t, &p, "AI-OPT").await;
    let v = run(&t, &tok).await;
    let all = v["findings"].as_array().unwrap();
    let kinds: Vec<&str> = all.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(all.len(), 7, "findings: {kinds:?}\n{v:#}");

    let f = of_kind(&v, "unused_permission");
    assert_eq!(f.len(), 1);
    assert_eq!(
        uuid(&f[0]["evidence"]["permission"]["id"]),
        p.unused_permission
    );
    assert_eq!(f[0]["evidence"]["uses"]["count"], 0);
    assert!(f[0]["evidence"]["audit_query"]["sql"]
        .as_str()
        .unwrap()
        .contains(&p.unused_permission.to_string()));
    assert_eq!(
        f[0]["proposal"],
        json!([{"method": "PATCH", "path": format!("/api/v1/permissions/{}", p.unused_permission),
                "body": {"is_active": false}}])
    );

    let f = of_kind(&v, "unused_role");
    assert_eq!(f.len(), 1);
    assert_eq!(uuid(&f[0]["evidence"]["role"]["id"]), p.unused_role);
    assert_eq!(f[0]["proposal"][0]["method"], "DELETE");

    let f = of_kind(&v, "over_privileged");
    let who: BTreeSet<Uuid> = f
        .iter()
        .map(|x| uuid(&x["evidence"]["principal"]["id"]))
        .collect();
    assert_eq!(who, p.over_privileged.iter().copied().collect());
    let reporting = p.roles["reporting"];
    for x in &f {
        let u = uuid(&x["evidence"]["principal"]["id"]);
        let unused: BTreeSet<&str> = x["evidence"]["unused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        assert_eq!(unused, BTreeSet::from(["report.read", "report.export"]));
        assert_eq!(x["evidence"]["used"], 3);
        assert_eq!(
            x["proposal"],
            json!([{"method": "DELETE", "path": format!("/api/v1/users/{u}/roles/{reporting}"), "body": null}])
        );
    }

    let f = of_kind(&v, "near_duplicate_roles");
    assert_eq!(f.len(), 1);
    let pair: BTreeSet<Uuid> = [
        uuid(&f[0]["evidence"]["keep"]["id"]),
        uuid(&f[0]["evidence"]["drop"]["id"]),
    ]
    .into();
    assert_eq!(
        pair,
        BTreeSet::from([p.near_duplicate.0, p.near_duplicate.1])
    );
    assert!(f[0]["evidence"]["jaccard"].as_f64().unwrap() >= 0.8);
    assert_eq!(
        f[0]["proposal"].as_array().unwrap().last().unwrap()["method"],
        "DELETE"
    );

    let f = of_kind(&v, "role_mining");
    assert_eq!(f.len(), 1);
    let users: BTreeSet<Uuid> = f[0]["evidence"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| uuid(&u["id"]))
        .collect();
    assert_eq!(users, p.mined_users.iter().copied().collect());
    assert_eq!(f[0]["proposal"][0]["path"], "/api/v1/roles");
    assert_eq!(
        f[0]["proposal"][0]["body"]["permission_ids"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(f[0]["proposal"][1]["path"], "/api/v1/roles/{{0.id}}/assign");
    // Then each user's two roles, now covered by the new one, go.
    assert_eq!(f[0]["proposal"].as_array().unwrap().len(), 2 + 2 * 4);

    let f = of_kind(&v, "sod_conflict");
    assert_eq!(f.len(), 1);
    assert_eq!(uuid(&f[0]["evidence"]["principal"]["id"]), p.sod_user);
    assert_eq!(f[0]["evidence"]["rule"]["name"], "payment-create-approve");
    assert_eq!(f[0]["proposal"].as_array().unwrap().len(), 1);

    // A second run refreshes the same findings instead of adding others.
    let again = run(&t, &tok).await;
    let ids = |v: &Value| -> BTreeSet<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&v), ids(&again));
}

#[tokio::test]
async fn applying_a_proposal_changes_policy_through_the_normal_path() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-APPLY").await;
    let tok = fixture_admin(&t, &p, "AI-APPLY").await;
    let v = run(&t, &tok).await;
    let reporting = p.roles["reporting"];
    let target = p.over_privileged[0];
    let f = of_kind(&v, "over_privileged")
        .into_iter()
        .find(|f| uuid(&f["evidence"]["principal"]["id"]) == target)
        .unwrap()
        .clone();
    let id = f["id"].as_str().unwrap();
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.user_roles WHERE user_id = $1 AND role_id = $2",
    )
    .bind(target)
    .bind(reporting)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(before, 1, "nothing is applied by a run");

    let (s, done) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/apply"),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "applied");
    assert_eq!(done["applied_result"]["complete"], true);
    assert_eq!(done["applied_result"]["calls"][0]["status"], 204);
    let after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.user_roles WHERE user_id = $1 AND role_id = $2",
    )
    .bind(target)
    .bind(reporting)
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(after, 0);
    // Audited as the admin's own call, and the decision on the finding too.
    let events: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT action, principal_id, path FROM sentinel.audit_logs
          WHERE source = 'admin' AND tenant_id = $1 AND action IN ('role.unassign', 'permission_optimization.update')
          ORDER BY time",
    )
    .bind(p.tenant)
    .fetch_all(&t.db.owner)
    .await
    .unwrap();
    let admin = p.admin.to_string();
    assert!(
        events.iter().any(|(a, who, path)| a == "role.unassign"
            && who.as_deref() == Some(admin.as_str())
            && path.as_deref()
                == Some(format!("/api/v1/users/{target}/roles/{reporting}").as_str())),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(a, _, _)| a == "permission_optimization.update"),
        "{events:?}"
    );

    // Applied once: a second apply is refused and changes nothing.
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/apply"),
            &tok,
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");

    // The unused permission, applied: deactivated through PATCH /permissions.
    let f = of_kind(&v, "unused_permission")[0].clone();
    let (s, b) = t
        .post(
            &format!(
                "/api/v1/ai/optimizer/findings/{}/apply",
                f["id"].as_str().unwrap()
            ),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let active: bool =
        sqlx::query_scalar("SELECT is_active FROM sentinel.permissions WHERE id = $1")
            .bind(p.unused_permission)
            .fetch_one(&t.db.owner)
            .await
            .unwrap();
    assert!(!active);

    // Dismissed stays dismissed across runs.
    let f = of_kind(&v, "unused_role")[0].clone();
    let fid = f["id"].as_str().unwrap();
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{fid}/dismiss"),
            &tok,
            json!({"note": "kept for the 2027 audit"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "dismissed");
    let again = run(&t, &tok).await;
    assert!(
        of_kind(&again, "unused_role").is_empty(),
        "dismissed findings are not listed as open"
    );
    assert!(of_kind(&again, "unused_permission").is_empty());
    let left: BTreeSet<Uuid> = of_kind(&again, "over_privileged")
        .iter()
        .map(|f| uuid(&f["evidence"]["principal"]["id"]))
        .collect();
    assert_eq!(left, BTreeSet::from([p.over_privileged[1]]));
    let (s, b) = t
        .get("/api/v1/ai/optimizer/findings?status=dismissed", &tok)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert_eq!(b["items"][0]["id"], fid);
    assert_eq!(b["items"][0]["decision_note"], "kept for the 2027 audit");
    let (s, b) = t
        .get("/api/v1/ai/optimizer/findings?status=applied", &tok)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 2);
}

/// A principal of the fixture tenant holding only the given scopes.
async fn scoped_user(t: &TestApp, p: &Planted, name: &str, scopes: &[&str], code: &str) -> String {
    let mut tx = db::begin(&t.db.owner, TenantCtx::All).await.unwrap();
    let role: Uuid = sqlx::query_scalar(
        "INSERT INTO sentinel.roles (tenant_id, name, scopes) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(p.tenant)
    .bind(name)
    .bind(scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let hash = sentinel_admin::password::hash(&t.state.config, FIXTURE_PASSWORD).unwrap();
    let email = format!("{name}@fixture.example");
    let user: Uuid = sqlx::query_scalar("INSERT INTO sentinel.users (tenant_id, email, password_hash) VALUES ($1, $2, $3) RETURNING id")
        .bind(p.tenant)
        .bind(&email)
        .bind(hash)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sentinel.user_roles (user_id, role_id, tenant_id) VALUES ($1, $2, $3)",
    )
    .bind(user)
    .bind(role)
    .bind(p.tenant)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t.login(&email, FIXTURE_PASSWORD, code).await
}

#[tokio::test]
async fn scopes_and_tenant_isolation() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-ISO").await;
    let tok = fixture_admin(&t, &p, "AI-ISO").await;
    let v = run(&t, &tok).await;
    let f = of_kind(&v, "over_privileged")[0].clone();
    let id = f["id"].as_str().unwrap().to_owned();

    // Another tenant's admin sees none of it, and its ids answer as missing.
    let alice = t.admin("TEST-001").await;
    let (s, b) = t.get("/api/v1/ai/optimizer/findings", &alice).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["items"].as_array().unwrap().is_empty());
    let (s, b) = t
        .get(&format!("/api/v1/ai/optimizer/findings/{id}"), &alice)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/apply"),
            &alice,
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/dismiss"),
            &alice,
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");

    // Without ai:read nothing is shown; ai:read alone neither applies nor dismisses.
    let victor = t.nordic(VICTOR).await;
    let (s, b) = t.get("/api/v1/ai/optimizer/findings", &victor).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, b) = t.post("/api/v1/ai/optimizer/run", &victor, json!({})).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let reader = scoped_user(&t, &p, "reader", &["ai:read"], "AI-ISO").await;
    let (s, b) = t
        .get(&format!("/api/v1/ai/optimizer/findings/{id}"), &reader)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/apply"),
            &reader,
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/dismiss"),
            &reader,
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");

    // ai:apply is no way around the scopes of the change itself: the call
    // is refused by its own handler, and the finding stays open.
    let applier = scoped_user(&t, &p, "applier", &["ai:apply"], "AI-ISO").await;
    let (s, b) = t
        .post(
            &format!("/api/v1/ai/optimizer/findings/{id}/apply"),
            &applier,
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, b) = t
        .get(&format!("/api/v1/ai/optimizer/findings/{id}"), &tok)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "open");
    assert_eq!(b["applied_result"]["complete"], false);
    let still: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sentinel.user_roles WHERE user_id = $1 AND role_id = $2",
    )
    .bind(uuid(&f["evidence"]["principal"]["id"]))
    .bind(p.roles["reporting"])
    .fetch_one(&t.db.owner)
    .await
    .unwrap();
    assert_eq!(still, 1);

    // Row-level security: the API role in TEST-001's context sees no row of
    // the fixture tenant's (the owner does: the positive control).
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.permission_optimizations")
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert!(all > 0);
    let test001: Uuid = "11111111-1111-1111-1111-111111111111".parse().unwrap();
    let mut tx = db::begin(&t.db.api, TenantCtx::One(test001)).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.permission_optimizations")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let wrote = sqlx::query(
        "INSERT INTO sentinel.permission_optimizations (tenant_id, kind, fingerprint, summary, window_from, window_to)
         VALUES ($1, 'unused_role', 'x', 'x', now(), now())",
    )
    .bind(p.tenant)
    .execute(&mut *tx)
    .await;
    assert!(
        wrote.is_err(),
        "a tenant context cannot write another tenant's findings"
    );
}

/// The optimizer's run time on 1,000 users and 90 days of decisions
/// (docs/PERFORMANCE.md): `cargo test -p sentinel-admin --test api
/// ai_optimizer::measure_run_time -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement (docs/PERFORMANCE.md): generates 449k audit events, ~40 s; run by hand"]
async fn measure_run_time() {
    let t = TestApp::new().await;
    let started = std::time::Instant::now();
    let p = fixture::generate(
        &t.db.owner,
        &t.state.config,
        &Spec {
            code: "AI-SCALE".to_owned(),
            users: 1000,
            days: 90,
            events_per_user_day: 5,
            now: chrono::Utc::now(),
            admin_password: FIXTURE_PASSWORD.to_owned(),
        },
    )
    .await
    .unwrap();
    let generated = started.elapsed();
    sqlx::query("ANALYZE sentinel.audit_logs")
        .execute(&t.db.owner)
        .await
        .unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let r = sentinel_admin::routes::ai_optimizer::run_for(
            &t.state,
            p.tenant,
            90,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(r.findings.len(), 7, "{:?}", r.counts);
        runs.push(r.duration_ms);
    }
    println!(
        "optimizer: {} users, {} events over 90 days (generated in {:.1} s); runs: {:?} ms",
        1000 + 11,
        p.events,
        generated.as_secs_f64(),
        runs.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
}

/// Every kind of proposal is a valid call sequence of this API: applied one
/// after another, each answers 2xx, and a new run no longer finds what was
/// applied.
#[tokio::test]
async fn every_kind_of_proposal_applies() {
    let t = TestApp::new().await;
    let p = planted(&t, "AI-ALL").await;
    let tok = fixture_admin(&t, &p, "AI-ALL").await;
    let v = run(&t, &tok).await;
    for f in v["findings"].as_array().unwrap() {
        let (s, b) = t
            .post(
                &format!(
                    "/api/v1/ai/optimizer/findings/{}/apply",
                    f["id"].as_str().unwrap()
                ),
                &tok,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{}: {b}", f["kind"]);
        assert_eq!(b["status"], "applied");
    }
    let gone: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.roles WHERE id = ANY($1)")
        .bind(vec![p.unused_role])
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert_eq!(gone, 0);
    let dup: i64 = sqlx::query_scalar("SELECT count(*) FROM sentinel.roles WHERE id = ANY($1)")
        .bind(vec![p.near_duplicate.0, p.near_duplicate.1])
        .fetch_one(&t.db.owner)
        .await
        .unwrap();
    assert_eq!(dup, 1, "one of the pair merged into the other");
    let again = run(&t, &tok).await;
    for kind in [
        "unused_permission",
        "unused_role",
        "near_duplicate_roles",
        "role_mining",
        "sod_conflict",
    ] {
        assert!(
            of_kind(&again, kind).is_empty(),
            "{kind} still found: {again:#}"
        );
    }
    // The policy these calls left compiles: the evaluator still decides.
    let (s, b) = t
        .post(
            "/api/v1/permissions/check",
            &tok,
            json!({"user_id": p.mined_users[0], "resource_type": "berth", "action": "update"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["allowed"], true, "{b}");
}

#[tokio::test]
async fn turned_off_answers_not_found() {
    let t = TestApp::with_config(sentinel_admin::config::Config {
        ai_enabled: false,
        ..test_config()
    })
    .await;
    let alice = t.admin("TEST-001").await;
    for (m, path) in [
        ("POST", "/api/v1/ai/optimizer/run"),
        ("GET", "/api/v1/ai/optimizer/findings"),
        ("GET", "/api/v1/ai/compliance"),
        ("POST", "/api/v1/ai/compliance/run"),
    ] {
        let (s, b) = t.request(m, path, Some(&alice), None, &[]).await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    }
}
