//! The admin API's request traces: the real binary with
//! `SENTINEL_OTEL_ENDPOINT` exports a span per request to an OTLP/HTTP
//! receiver in this test, continuing a `traceparent` only from
//! `SENTINEL_TRUSTED_PROXIES`.

use crate::binary::{admin_cmd, run, urls};
use crate::common::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// (name, trace id, parent span id, service) of every span POSTed to `/v1/traces`.
type Spans = Arc<Mutex<Vec<(String, String, String, String)>>>;

async fn receiver() -> (std::net::SocketAddr, Spans) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans: Spans = Arc::default();
    let seen = spans.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 8192];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                    if head.starts_with("post /v1/traces") {
                        let doc: Value = serde_json::from_slice(&body).unwrap();
                        for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
                            let service = rs["resource"]["attributes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .find(|a| a["key"] == "service.name")
                                .and_then(|a| a["value"]["stringValue"].as_str())
                                .unwrap_or_default()
                                .to_owned();
                            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                                for s in ss["spans"].as_array().into_iter().flatten() {
                                    let text =
                                        |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                                    seen.lock().unwrap().push((
                                        text("name"),
                                        text("traceId").to_ascii_lowercase(),
                                        text("parentSpanId").to_ascii_lowercase(),
                                        service.clone(),
                                    ));
                                }
                            }
                        }
                    }
                    let answer =
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, spans)
}

/// `serve` on a free port with tracing to `collector`; `trusted`: the
/// test's loopback address is a trusted proxy.
async fn serve(
    api: &str,
    collector: std::net::SocketAddr,
    trusted: bool,
) -> (tokio::process::Child, String) {
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let mut cmd = admin_cmd(api);
    cmd.args(["serve", "--listen", &listen])
        .env("SENTINEL_OTEL_ENDPOINT", format!("http://{collector}"))
        .env("SENTINEL_OTEL_SAMPLE_RATIO", "1")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    if trusted {
        cmd.env("SENTINEL_TRUSTED_PROXIES", "127.0.0.1");
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://{listen}");
    let c = reqwest::Client::new();
    for _ in 0..100 {
        if c.get(format!("{base}/healthz")).send().await.is_ok() {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not come up");
}

/// The span named `name` in trace-id order of arrival, waiting up to 10 s.
async fn span(spans: &Spans, name: &str, skip: usize) -> (String, String, String, String) {
    let start = Instant::now();
    loop {
        if let Some(s) = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0 == name)
            .nth(skip)
        {
            return s.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no span `{name}` (#{skip}): {:?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_traces_requests_and_continues_only_trusted_traceparents() {
    let db = TestDb::new().await;
    let (owner, api) = urls(&db.name);
    let (ok, out) = run(&owner, &["migrate"], &[]).await;
    assert!(ok, "{out}");
    let c = reqwest::Client::new();
    let traceparent = format!("00-{TRACE}-{PARENT}-01");

    // Untrusted caller: a fresh trace.
    let (collector, spans) = receiver().await;
    let (mut child, base) = serve(&api, collector, false).await;
    let r = c
        .get(format!("{base}/api/v1/openapi.json"))
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, trace, parent, service) = span(&spans, "GET /api/v1/openapi.json", 0).await;
    assert_ne!(trace, TRACE);
    assert!(parent.is_empty(), "{parent}");
    assert_eq!(service, "sentinel-admin");
    child.kill().await.unwrap();

    // A trusted proxy: its trace goes on.
    let (collector, spans) = receiver().await;
    let (mut child, base) = serve(&api, collector, true).await;
    let r = c
        .get(format!("{base}/api/v1/openapi.json"))
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, trace, parent, _) = span(&spans, "GET /api/v1/openapi.json", 0).await;
    assert_eq!((trace.as_str(), parent.as_str()), (TRACE, PARENT));
    child.kill().await.unwrap();
}
