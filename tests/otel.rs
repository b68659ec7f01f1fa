//! Request traces through the real gateway (docs/operations.md, "Traces"),
//! exported as OTLP/HTTP JSON to a receiver in this test: the span per
//! request and its phases, a trusted proxy's `traceparent` continued, an
//! untrusted caller's replaced by a fresh trace, and the `traceparent` the
//! upstream (the echo app) receives.
//!
//! Run: `cargo test --test otel`
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use common::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTES: &str = r#"
[[routes]]
id = "traced"
path = "/traced/*"
upstream = "msw"
auth = "any"
resource = "vessel"
rate_limit = "roomy"

[[routes]]
id = "traced-lab"
path = "/fields-lab/{kind}"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", at = "$.data[*]" }
"#;

const LIMITS: &str = r#"
[rate_limits]
mode = "local"
[rate_limits.classes.roomy]
rate = "1000/m"
per = "principal"
"#;

/// A caller's trace: trace id, parent span id.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// One exported span, as the test reads it.
#[derive(Clone, Debug)]
struct SeenSpan {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    service: String,
}

/// An OTLP/HTTP receiver: records the spans of every `POST /v1/traces`.
struct Receiver {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<SeenSpan>>>,
    posts: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (spans.clone(), posts.clone());
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(conn, s.clone(), p.clone()));
            }
        });
        Receiver { addr, spans, posts }
    }

    /// Waits (up to 10 s) for the spans of the trace holding a span named `name`
    /// that no earlier call took, and answers all spans of that trace.
    async fn trace_with(&self, name: &str, taken: &mut Vec<String>) -> Vec<SeenSpan> {
        let start = Instant::now();
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if let Some(root) = spans
                .iter()
                .find(|s| s.name == name && !taken.contains(&s.trace_id))
            {
                let trace = root.trace_id.clone();
                // The children are exported with the root or before it.
                let all: Vec<SeenSpan> = spans
                    .iter()
                    .filter(|s| s.trace_id == trace)
                    .cloned()
                    .collect();
                taken.push(trace);
                return all;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no span `{name}` exported; spans: {spans:#?}; posts: {:?}",
                self.posts.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One connection: HTTP/1.1 requests with a `content-length`, each answered `200 {}`.
async fn serve(
    mut conn: tokio::net::TcpStream,
    spans: Arc<Mutex<Vec<SeenSpan>>>,
    posts: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
        let first = head.lines().next().unwrap_or_default().to_owned();
        posts.lock().unwrap().push(first.clone());
        if first.starts_with("post /v1/traces") {
            assert!(head.contains("content-type: application/json"), "{head}");
            let doc: Value = serde_json::from_slice(&body).unwrap();
            spans.lock().unwrap().extend(read_spans(&doc));
        }
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if conn.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// The spans of an `ExportTraceServiceRequest` in OTLP's JSON encoding.
fn read_spans(doc: &Value) -> Vec<SeenSpan> {
    let mut out = Vec::new();
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
                let text = |k: &str| s[k].as_str().unwrap_or_default().to_ascii_lowercase();
                out.push(SeenSpan {
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent: text("parentSpanId"),
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

/// A gateway that exports to `receiver`; `trusted`: loopback (the test) is a
/// trusted proxy.
fn gateway(receiver: &Receiver, trusted: bool) -> Gateway {
    let mut gw = start(Options {
        extra_config: format!(
            "{LIMITS}\n[otel]\nendpoint = \"http://{}\"\nsample_ratio = 1.0\n",
            receiver.addr
        ),
        extra_routes: ROUTES.to_owned(),
        // Export every 100 ms instead of every 5 s (the SDK reads this).
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())],
        ..Options::default()
    });
    if trusted {
        // The demo config's `[client_ip]` section, edited in place.
        gw.reconfigure(&[(
            "trusted_proxies = []",
            "trusted_proxies = [\"127.0.0.1/32\"]",
        )]);
    }
    gw
}

/// `traceparent` as the upstream received it (the echo app answers with its request headers).
async fn upstream_traceparent(resp: reqwest::Response) -> (String, Value) {
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let tp = body["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {body}"))
        .to_owned();
    (tp, body)
}

fn by_name<'a>(spans: &'a [SeenSpan], name: &str) -> &'a SeenSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span `{name}` in {spans:#?}"))
}

#[tokio::test]
async fn an_untrusted_callers_trace_is_not_continued() {
    let receiver = Receiver::start().await;
    let gw = gateway(&receiver, false);
    let mut taken = Vec::new();
    let resp = client()
        .get(gw.url("/traced/1"))
        .bearer_auth(token(VICTOR, NORDIC))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .header("tracestate", "vendor=secret")
        .send()
        .await
        .unwrap();
    let (tp, body) = upstream_traceparent(resp).await;
    assert!(body["headers"].get("tracestate").is_none(), "{body}");
    let spans = receiver.trace_with("GET traced", &mut taken).await;
    let root = by_name(&spans, "GET traced");
    // A fresh trace, not the caller's; the request span has no parent.
    assert_ne!(root.trace_id, TRACE);
    assert!(root.parent.is_empty(), "{root:?}");
    assert_eq!(root.service, "sentinel-gateway");
    // Every phase is a child of the request span.
    for phase in ["authenticate", "rate_limit", "authorize", "upstream"] {
        let s = by_name(&spans, phase);
        assert_eq!(s.parent, root.span_id, "{phase}: {s:?}");
    }
    // The upstream got the upstream span's context, in the fresh trace.
    let upstream = by_name(&spans, "upstream");
    assert_eq!(
        tp,
        format!("00-{}-{}-01", upstream.trace_id, upstream.span_id)
    );
    assert!(!tp.contains(TRACE));
}

#[tokio::test]
async fn a_trusted_proxys_trace_is_continued_to_the_upstream() {
    let receiver = Receiver::start().await;
    let gw = gateway(&receiver, true);
    let mut taken = Vec::new();
    let resp = client()
        .get(gw.url("/traced/1"))
        .bearer_auth(token(VICTOR, NORDIC))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .send()
        .await
        .unwrap();
    let (tp, _) = upstream_traceparent(resp).await;
    let spans = receiver.trace_with("GET traced", &mut taken).await;
    let root = by_name(&spans, "GET traced");
    assert_eq!(root.trace_id, TRACE);
    assert_eq!(root.parent, PARENT);
    let upstream = by_name(&spans, "upstream");
    assert_eq!(tp, format!("00-{TRACE}-{}-01", upstream.span_id));

    // A bound route: the field filter is a phase too.
    let resp = client()
        .get(gw.url("/fields-lab/plain"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let spans = receiver.trace_with("GET traced-lab", &mut taken).await;
    let root = by_name(&spans, "GET traced-lab");
    for phase in ["authenticate", "authorize", "upstream", "field_filter"] {
        assert_eq!(by_name(&spans, phase).parent, root.span_id, "{phase}");
    }

    // A denial is traced, with the phase that refused it.
    let resp = client()
        .get(gw.url("/traced/1"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let spans = receiver.trace_with("GET traced", &mut taken).await;
    by_name(&spans, "authenticate");
    assert!(spans.iter().all(|s| s.name != "upstream"), "{spans:#?}");
}

#[test]
fn otel_settings_are_validated() {
    let dir = bundled_config_copy("otel-check");
    let config = dir.join("sentinel.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    for (section, problem) in [
        ("[otel]\nsample_ratio = 1.0\n", "`[otel]` needs `endpoint`"),
        (
            "[otel]\nendpoint = \"collector:4318\"\n",
            "invalid OTLP endpoint `collector:4318`",
        ),
        (
            "[otel]\nendpoint = \"http://c:4318\"\nsample_ratio = 2.0\n",
            "`sample_ratio` must be between 0.0 and 1.0",
        ),
    ] {
        std::fs::write(&config, format!("{text}\n{section}")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{section}: {stdout}");
        assert!(stdout.contains(problem), "{section}: {stdout}");
    }
    std::fs::write(
        &config,
        format!("{text}\n[otel]\nenabled = false\nsample_ratio = 0.5\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_collector_that_is_down_costs_spans_not_requests() {
    let gw = start(Options {
        extra_config: format!(
            "{LIMITS}\n[otel]\nendpoint = \"http://127.0.0.1:{}\"\nsample_ratio = 1.0\n",
            closed_port()
        ),
        extra_routes: ROUTES.to_owned(),
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())],
        capture_log: true,
        ..Options::default()
    });
    for i in 0..3 {
        let resp = client()
            .get(gw.url(&format!("/traced/{i}")))
            .bearer_auth(token(VICTOR, NORDIC))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // The failed export is logged (once per batch, never per request).
    let start = Instant::now();
    while !gw.log().contains("ExportError") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no export error logged:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Multi-threaded: waiting for the exit blocks this thread, and the receiver
// must answer the export meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_exports_the_buffered_spans() {
    let receiver = Receiver::start().await;
    // The SDK's default: spans wait up to 5 s for their batch.
    let mut gw = start(Options {
        extra_config: format!(
            "{LIMITS}\n[otel]\nendpoint = \"http://{}\"\nsample_ratio = 1.0\n",
            receiver.addr
        ),
        extra_routes: ROUTES.to_owned(),
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "60000".into())],
        ..Options::default()
    });
    let resp = client()
        .get(gw.url("/traced/1"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(receiver.spans.lock().unwrap().is_empty());
    gw.signal("TERM");
    assert!(
        gw.wait_exit(Duration::from_secs(15)).is_some(),
        "no exit after SIGTERM"
    );
    let spans = receiver.trace_with("GET traced", &mut Vec::new()).await;
    by_name(&spans, "upstream");
}
