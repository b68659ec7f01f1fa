//! Endpoint latency bench: p50/p99 per endpoint against a running admin API
//! with the demo data (`sentinel-admin seed-demo`).
//!
//! Run: `cargo run -p sentinel-admin --release --example bench -- http://127.0.0.1:8081 200`
//! (demo password from SENTINEL_DEMO_PASSWORD, default `Demo-Passw0rd!`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::time::Instant;

async fn timed(c: &reqwest::Client, req: reqwest::RequestBuilder) -> (u16, f64, Value) {
    let start = Instant::now();
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let _ = c;
    (status, start.elapsed().as_secs_f64() * 1000.0, body)
}

/// Builds one request of a bench case.
type MakeRequest<'a> = Box<dyn Fn() -> reqwest::RequestBuilder + 'a>;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8081".to_owned());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let password =
        std::env::var("SENTINEL_DEMO_PASSWORD").unwrap_or_else(|_| "Demo-Passw0rd!".to_owned());
    let c = reqwest::Client::new();
    let login =
        json!({"email": "alice@nordic.example", "password": password, "tenant_code": "TEST-001"});
    let (s, _, tok) = timed(&c, c.post(format!("{base}/api/v1/auth/login")).json(&login)).await;
    assert_eq!(s, 200, "login failed: {tok}");
    let token = tok["access_token"].as_str().unwrap().to_owned();
    let get = |path: &str| c.get(format!("{base}{path}")).bearer_auth(&token);
    let (_, _, users) = timed(&c, get("/api/v1/users?email=victor@")).await;
    let user = users["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, _, roles) = timed(&c, get("/api/v1/roles?name=operator")).await;
    let role = roles["items"][0]["id"].as_str().unwrap().to_owned();

    let check = json!({"user_id": user, "resource_type": "vessel", "resource_id": "v-a1", "action": "read"});
    let cases: Vec<(&str, MakeRequest)> = vec![
        ("GET /api/v1/auth/me", Box::new(|| get("/api/v1/auth/me"))),
        ("GET /api/v1/tenants", Box::new(|| get("/api/v1/tenants"))),
        ("GET /api/v1/users", Box::new(|| get("/api/v1/users"))),
        (
            "GET /api/v1/users/{id}",
            Box::new(|| get(&format!("/api/v1/users/{user}"))),
        ),
        (
            "GET /api/v1/users/{id}/permissions",
            Box::new(|| get(&format!("/api/v1/users/{user}/permissions"))),
        ),
        (
            "GET /api/v1/service-accounts",
            Box::new(|| get("/api/v1/service-accounts")),
        ),
        ("GET /api/v1/roles", Box::new(|| get("/api/v1/roles"))),
        (
            "GET /api/v1/roles/{id}/hierarchy",
            Box::new(|| get(&format!("/api/v1/roles/{role}/hierarchy"))),
        ),
        ("GET /api/v1/groups", Box::new(|| get("/api/v1/groups"))),
        (
            "GET /api/v1/permissions",
            Box::new(|| get("/api/v1/permissions")),
        ),
        (
            "GET /api/v1/resources",
            Box::new(|| get("/api/v1/resources")),
        ),
        (
            "GET /api/v1/field-definitions",
            Box::new(|| get("/api/v1/field-definitions")),
        ),
        (
            "GET /api/v1/navigation/menu",
            Box::new(|| get("/api/v1/navigation/menu")),
        ),
        (
            "POST /api/v1/permissions/check",
            Box::new(|| {
                c.post(format!("{base}/api/v1/permissions/check"))
                    .bearer_auth(&token)
                    .json(&check)
            }),
        ),
        (
            "PATCH /api/v1/users/{id}",
            Box::new(|| {
                c.patch(format!("{base}/api/v1/users/{user}"))
                    .bearer_auth(&token)
                    .json(&json!({"attributes": {"department": "fleet"}}))
            }),
        ),
        (
            "GET /healthz",
            Box::new(|| c.get(format!("{base}/healthz"))),
        ),
    ];
    println!("| endpoint | n | p50 ms | p99 ms |");
    println!("| --- | --- | --- | --- |");
    for (name, make) in &cases {
        for _ in 0..10 {
            let _ = timed(&c, make()).await;
        }
        let mut ms = Vec::with_capacity(n);
        for _ in 0..n {
            let (s, t, body) = timed(&c, make()).await;
            assert!(s < 400, "{name}: {s} {body}");
            ms.push(t);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "| `{name}` | {n} | {:.2} | {:.2} |",
            pct(&ms, 0.5),
            pct(&ms, 0.99)
        );
    }
    let mut ms = Vec::new();
    for _ in 0..20 {
        let (s, t, _) = timed(&c, c.post(format!("{base}/api/v1/auth/login")).json(&login)).await;
        assert_eq!(s, 200);
        ms.push(t);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "| `POST /api/v1/auth/login` (argon2id) | 20 | {:.2} | {:.2} |",
        pct(&ms, 0.5),
        pct(&ms, 0.99)
    );
}
