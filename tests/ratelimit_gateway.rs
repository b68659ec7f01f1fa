//! Rate limiting through the real gateway: local limits per route class,
//! principal and tenant plan; and cluster limits shared by two gateway
//! processes through a real Redis, including Redis going away and coming back.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LIMITED_ROUTES: &str = r#"
[[routes]]
id = "limited"
path = "/limited/*"
upstream = "msw"
auth = "any"
resource = "vessel"
rate_limit = "tiny"

[[routes]]
id = "limited-tenant"
path = "/shared/*"
upstream = "msw"
auth = "any"
resource = "vessel"
rate_limit = "shared"
"#;

fn local_limits() -> String {
    r#"
[rate_limits]
mode = "local"
[rate_limits.classes.tiny]
rate = "3/h"
per = "principal"
[rate_limits.classes.shared]
rate = "1000/h"
burst = 1000
per = "tenant"
[rate_limits.plans.small]
per_minute = 5
per_hour = 60
[rate_limits.tenant]
default_plan = "small"
"#
    .to_owned()
}

#[tokio::test]
async fn local_limits_per_class_principal_and_tenant_plan() {
    let gw = start(Options {
        extra_config: local_limits(),
        extra_routes: LIMITED_ROUTES.to_owned(),
        ..Options::default()
    });
    let victor = token(VICTOR, NORDIC);
    let alice = token(ALICE, NORDIC);
    // Class `tiny`: 3 per principal, then 429 with Retry-After and the draft headers.
    for i in 0..3 {
        let resp = client()
            .get(gw.url(&format!("/limited/{i}")))
            .bearer_auth(&victor)
            .send()
            .await
            .unwrap();
        if resp.status() != 200 {
            panic!(
                "request {i}: {} {}",
                resp.status(),
                resp.text().await.unwrap()
            );
        }
        assert!(
            resp.headers().contains_key("ratelimit-policy"),
            "{:?}",
            resp.headers()
        );
        assert!(resp.headers().contains_key("ratelimit"));
    }
    let resp = client()
        .get(gw.url("/limited/x"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body = expect_error(resp, 429, "RATE_LIMITED").await;
    assert_eq!(body["error"]["details"]["limit"], "route:tiny");
    // Another principal of the same tenant has its own class budget ...
    let resp = client()
        .get(gw.url("/limited/y"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // ... but the tenant plan (5 at once for tenant Nordic) is shared by both:
    // 4 requests so far (Victor 3 + Alice 1, the denied one took nothing).
    let resp = client()
        .get(gw.url("/shared/1"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client()
        .get(gw.url("/shared/2"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 429, "RATE_LIMITED").await;
    assert_eq!(body["error"]["details"]["limit"], "tenant");
    // Another tenant is not affected by Nordic's use.
    let resp = client()
        .get(gw.url("/shared/3"))
        .bearer_auth(token(BOB, PACIFIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        gw.metric(r#"sentinel_rate_limit_checks_total{limit="route:tiny",outcome="limited",source="local"}"#)
            .await,
        1.0
    );
}

fn cluster_config(port: u16, prefix: &str) -> String {
    format!(
        r#"
[rate_limits]
mode = "cluster"
[rate_limits.cluster]
redis_url = "redis://127.0.0.1:{port}"
key_prefix = "{prefix}"
timeout = "200ms"
failure = "open"
[rate_limits.classes.tiny]
rate = "3/h"
per = "principal"
[rate_limits.classes.shared]
rate = "1/h"
burst = 40
per = "tenant"
"#
    )
}

#[tokio::test]
async fn cluster_limits_are_shared_by_two_gateways_and_survive_redis_outages() {
    let port = free_port();
    let mut redis = RedisServer::start(port);
    let prefix = format!("test:{}", uuid::Uuid::new_v4());
    let opts = || Options {
        extra_config: cluster_config(redis.port, &prefix),
        extra_routes: LIMITED_ROUTES.to_owned(),
        ..Options::default()
    };
    let a = start(opts());
    let b = start(opts());
    let alice = token(ALICE, NORDIC);

    // 40 per tenant across both gateways: 120 concurrent requests, split evenly.
    let mut tasks = Vec::new();
    for i in 0..120 {
        let url = if i % 2 == 0 {
            a.url("/shared/x")
        } else {
            b.url("/shared/x")
        };
        let t = alice.clone();
        tasks.push(tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    eprintln!("cluster: {ok} accepted, {limited} limited of 120 (limit 40)");
    assert!(
        ok <= 42,
        "accepted {ok} > limit 40 × 1.05 across two gateways"
    );
    assert!(ok >= 38, "accepted only {ok} of a limit of 40");
    // Another tenant has its own budget on both gateways.
    let bob = token(BOB, PACIFIC);
    assert_eq!(
        client()
            .get(a.url("/shared/y"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(b.url("/shared/y"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Redis goes away: fail-open answers promptly from local limits.
    redis.stop();
    let victor = token(VICTOR, NORDIC);
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let resp = client()
            .get(a.url(&format!("/limited/{i}")))
            .bearer_auth(&victor)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests hung while Redis was down"
    );
    // The local fallback enforces the same quota (3 per principal on this gateway).
    assert_eq!(
        statuses,
        vec![200, 200, 200, 429, 429],
        "fail-open with local limits"
    );
    assert!(
        a.metric_sum(
            "sentinel_rate_limit_checks_total",
            &[r#"source="fallback""#]
        )
        .await
            > 0.0
    );

    // Redis comes back on the same port: cluster limiting resumes.
    let _redis2 = RedisServer::start(port);
    let carl_like = token(ALICE, NORDIC);
    let mut resumed = false;
    for _ in 0..60 {
        let _ = client()
            .get(b.url("/limited/r"))
            .bearer_auth(&carl_like)
            .send()
            .await
            .unwrap();
        let cluster = b
            .metric_sum(
                "sentinel_rate_limit_checks_total",
                &[r#"limit="route:tiny""#, r#"source="cluster""#],
            )
            .await;
        if cluster > 0.0 {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        resumed,
        "cluster limiting did not resume after Redis came back"
    );
}

/// The limiter's own health and counters in `/metrics` (docs/rate-limits.md,
/// "Metrics"), with the names deploy/metrics.txt lists: a gateway whose Redis
/// answers, one pointed at a closed loopback port (fail open, then fail
/// closed), and one in local mode (no Redis series at all).
#[tokio::test]
async fn limiter_health_and_counters_are_exported() {
    // The machine's Redis (REDIS_URL, as .ci/run exports it: `redis://HOST:PORT[/DB]`).
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let authority = redis_url.trim_start_matches("redis://");
    let authority = authority.split('/').next().unwrap_or_default();
    let redis_port: u16 = authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(6379);
    let prefix = format!("test:{}", uuid::Uuid::new_v4());
    let gw = |config: String| {
        start(Options {
            extra_config: config,
            extra_routes: LIMITED_ROUTES.to_owned(),
            ..Options::default()
        })
    };
    let up = gw(cluster_config(redis_port, &prefix));
    let down = gw(cluster_config(closed_port(), &prefix));
    let closed = gw(cluster_config(closed_port(), &prefix)
        .replace("failure = \"open\"", "failure = \"closed\""));
    let local = gw(local_limits());
    let victor = token(VICTOR, NORDIC);
    for g in [&up, &down, &closed, &local] {
        let _ = client()
            .get(g.url("/limited/1"))
            .bearer_auth(&victor)
            .send()
            .await
            .unwrap();
    }

    assert_eq!(up.metric("sentinel_rate_limit_redis_up").await, 1.0);
    assert_eq!(
        up.metric("sentinel_rate_limit_redis_errors_total").await,
        0.0
    );
    assert_eq!(up.metric("sentinel_rate_limit_fallbacks_total").await, 0.0);

    // Redis never answered: down, the failed calls counted, the request
    // answered by the local fallback, which now holds its subject.
    assert_eq!(down.metric("sentinel_rate_limit_redis_up").await, 0.0);
    assert!(down.metric("sentinel_rate_limit_redis_errors_total").await >= 1.0);
    assert_eq!(
        down.metric("sentinel_rate_limit_fallbacks_total").await,
        1.0
    );
    assert_eq!(
        down.metric("sentinel_rate_limit_fail_closed_total").await,
        0.0
    );
    assert!(down.metric("sentinel_rate_limit_local_keys").await >= 1.0);

    assert_eq!(closed.metric("sentinel_rate_limit_redis_up").await, 0.0);
    assert_eq!(
        closed.metric("sentinel_rate_limit_fail_closed_total").await,
        1.0
    );
    assert_eq!(
        closed.metric("sentinel_rate_limit_fallbacks_total").await,
        0.0
    );

    // Local mode: subjects in memory, and no Redis series to alert on.
    let text = client()
        .get(local.ops_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric_value(&text, "sentinel_rate_limit_local_keys") >= 1.0,
        "{text}"
    );
    assert!(!text.contains("sentinel_rate_limit_redis"), "{text}");
    // The names are the ones deploy/metrics.txt lists as exported.
    let listed = std::fs::read_to_string(repo().join("deploy/metrics.txt")).unwrap();
    for name in [
        "sentinel_rate_limit_redis_up",
        "sentinel_rate_limit_redis_errors_total",
        "sentinel_rate_limit_fallbacks_total",
        "sentinel_rate_limit_fail_closed_total",
        "sentinel_rate_limit_local_keys",
    ] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("{name}\t")) && l.contains("\texported\t")),
            "{name} is not listed as exported in deploy/metrics.txt"
        );
    }
}
