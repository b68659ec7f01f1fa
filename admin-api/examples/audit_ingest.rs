//! Audit ingest bench: posts real gateway batches (ndjson, gzip) to a running
//! admin API with a gateway key and reports events per second.
//!
//! Run (docs/PERFORMANCE.md, "Audit"):
//! `KEY=$(sentinel-admin gateway-key create --name bench) \
//!  cargo run -p sentinel-admin --example audit_ingest -- http://127.0.0.1:8081 "$KEY" 40 10000 4`
//! (batches, events per batch, concurrent senders). Check with
//! `curl -s 127.0.0.1:8081/metrics | grep sentinel_admin_audit`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use std::io::Write;
use std::time::Instant;

const TENANTS: &[&str] = &[
    "11111111-1111-1111-1111-111111111111",
    "22222222-2222-2222-2222-222222222222",
    "33333333-3333-3333-3333-333333333333",
];

/// One gzip-compressed batch of `n` events, like a gateway's.
fn batch(n: usize, seed: usize) -> Vec<u8> {
    let mut nd = Vec::with_capacity(n * 600);
    let now = chrono::Utc::now();
    for i in 0..n {
        let k = seed * n + i;
        let denied = k.is_multiple_of(10);
        let e = json!({
            "id": sentinel_admin::audit::event::new_v7().to_string(),
            "time": (now - chrono::Duration::milliseconds((k % 60_000) as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "source": "gateway",
            "request_id": format!("bench-{seed}-{i}"),
            "tenant_id": TENANTS[k % TENANTS.len()],
            "principal_id": format!("aaaaaaaa-0000-4000-8000-{:012}", k % 500),
            "principal_kind": "user",
            "method": if denied { "DELETE" } else { "GET" },
            "route": "msw-vessels",
            "path": format!("/api/msw/vessels/{}", k % 1000),
            "resource": "vessel",
            "resource_id": (k % 1000).to_string(),
            "action": if denied { "delete" } else { "read" },
            "outcome": if denied { "denied" } else { "allowed" },
            "code": if denied { Some("PERMISSION_DENIED") } else { None },
            "reason": if denied { "no permission allows `delete` on `vessel`" } else { "allowed by permission" },
            "rules": ["perm-vessel-read"],
            "client_ip": format!("203.0.113.{}", k % 250),
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) bench",
            "status": if denied { 403 } else { 200 },
            "latency_ms": 0.4,
            "risk_score": 0.05,
            "snapshot_version": 42
        });
        nd.extend_from_slice(e.to_string().as_bytes());
        nd.push(b'\n');
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&nd).unwrap();
    enc.finish().unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8081".into());
    let key = args
        .get(2)
        .cloned()
        .expect("a gateway key (sentinel-admin gateway-key create)");
    let batches: usize = args.get(3).map_or(40, |s| s.parse().unwrap());
    let per: usize = args.get(4).map_or(10_000, |s| s.parse().unwrap());
    let senders: usize = args.get(5).map_or(4, |s| s.parse().unwrap());
    eprintln!("building {batches} batches of {per} events ...");
    let bodies: Vec<Vec<u8>> = (0..batches).map(|b| batch(per, b)).collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let client = reqwest::Client::new();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, queue, url, key) = (client.clone(), queue.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let Some(body) = queue.lock().unwrap().pop() else {
                    return lat;
                };
                let t = Instant::now();
                let r = client
                    .post(format!("{url}/api/v1/audit/events"))
                    .header("authorization", format!("ApiKey {key}"))
                    .header("content-type", "application/x-ndjson")
                    .header("content-encoding", "gzip")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                assert!(status.is_success(), "{status}: {text}");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{} events in {batches} batches ({:.1} MiB gzip) with {senders} senders: {secs:.2} s, \
         {:.0} events/s; batch p50 {:.0} ms, p99 {:.0} ms",
        batches * per,
        bytes as f64 / 1048576.0,
        (batches * per) as f64 / secs,
        p(0.5),
        p(0.99)
    );
}
