//! Streamed field filtering (`fields.stream = true`) through the real gateway
//! binary: a body far larger than any buffer limit is filtered as it streams,
//! and a body that breaks after the status was sent aborts the connection
//! (the client sees a cut-off body, never a complete-looking one) and is
//! counted in `sentinel_field_stream_aborts_total`.
//!
//! The upstream is a raw HTTP/1.1 server in this file, so that it can break
//! its body at will. Run: `cargo test --test fields_stream`
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::*;
use sentinel_demo_apps::{LAB_SECRET, LAB_VESSEL};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// Entities in the `huge` answer (about 300 bytes each: ~24 MiB).
const HUGE_ENTITIES: usize = 80_000;
/// Entities sent before the `broken` and `dies` answers break (~1.2 MiB,
/// well past the bytes held before the status is sent).
const BEFORE_BREAK: usize = 4_000;

const ROUTES: &str = r#"
[[routes]]
id = "bulk"
path = "/bulk/{kind}"
methods = ["GET"]
upstream = "bulk"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", at = "$.data[*]", stream = true }

[[routes]]
id = "bulk-buffered"
path = "/buffered/bulk/{kind}"
methods = ["GET"]
upstream = "bulk"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", at = "$.data[*]" }
"#;

/// Serves `/bulk/{kind}` (and `/buffered/bulk/{kind}`) as chunked JSON:
/// `huge` (HUGE_ENTITIES vessels), `small` (one), `small-broken` (one, cut
/// short), `broken` (BEFORE_BREAK vessels, then bad JSON, properly ended),
/// `dies` (BEFORE_BREAK vessels, then the connection closes mid-body).
fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || serve(conn));
        }
    });
    addr
}

fn serve(mut conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let kind = path.rsplit('/').next().unwrap_or("");
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = |conn: &mut TcpStream, data: &[u8]| -> bool {
        conn.write_all(format!("{:x}\r\n", data.len()).as_bytes())
            .and_then(|_| conn.write_all(data))
            .and_then(|_| conn.write_all(b"\r\n"))
            .is_ok()
    };
    let (n, tail): (usize, &[u8]) = match kind {
        "huge" => (HUGE_ENTITIES, &b"],\"count\":1}"[..]),
        "small" => (1, &b"],\"count\":1}"[..]),
        "small-broken" => (1, &b"],\"count\":"[..]),
        "broken" | "dies" => (BEFORE_BREAK, &b",{\"id\":}]}"[..]),
        _ => (0, &b"]}"[..]),
    };
    if !chunk(&mut conn, b"{\"data\":[") {
        return;
    }
    let mut buf = Vec::with_capacity(64 * 1024);
    for i in 0..n {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(LAB_VESSEL.as_bytes());
        if buf.len() >= 60 * 1024 {
            if !chunk(&mut conn, &buf) {
                return;
            }
            buf.clear();
        }
    }
    if !buf.is_empty() && !chunk(&mut conn, &buf) {
        return;
    }
    if kind == "dies" {
        // Gone without the terminating chunk.
        let _ = conn.flush();
        return;
    }
    let _ = chunk(&mut conn, tail);
    let _ = conn.write_all(b"0\r\n\r\n");
}

fn start() -> Gateway {
    let upstream = start_upstream();
    start_demo(
        ROUTES,
        &format!("[upstreams.bulk]\naddresses = [\"{upstream}\"]\n"),
    )
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A raw HTTP/1.1 GET as Victor (a vessel viewer: `crew_salary_budget`
/// hidden, `imo` masked): everything the gateway sent until it closed.
fn raw_get(gw: &Gateway, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(gw.proxy).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
        token(VICTOR, NORDIC)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[tokio::test]
async fn a_body_larger_than_any_buffer_limit_is_filtered_as_it_streams() {
    let gw = start();
    let resp = client()
        .get(gw.url("/bulk/huge"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    assert_eq!(resp.headers()["cache-control"], "private");
    let body = resp.bytes().await.unwrap();
    assert!(body.len() > 16 << 20, "{} bytes", body.len());
    assert!(!contains(&body, LAB_SECRET), "secret leaked");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), HUGE_ENTITIES);
    for e in [&data[0], &data[HUGE_ENTITIES / 2], &data[HUGE_ENTITIES - 1]] {
        assert_eq!(e["name"], "Lab Vessel");
        assert_eq!(e["imo"], "****5044");
        assert!(e.get("crew_salary_budget").is_none());
    }
    assert_eq!(v["count"], 1, "outside the entities untouched");

    // The same answer on a buffered route is over its limit: refused, as
    // before streaming existed.
    let resp = client()
        .get(gw.url("/buffered/bulk/huge"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["details"]["reason"], "too_large");
}

#[tokio::test]
async fn small_streamed_answers_keep_their_length_and_502() {
    let gw = start();
    // Held whole: a content-length, and the admin still sees the secret (the
    // viewer's negative below is not vacuous).
    let resp = client()
        .get(gw.url("/bulk/small"))
        .bearer_auth(token_with(ALICE, NORDIC, true, None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let len: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    assert!(contains(&body, LAB_SECRET));
    let got = raw_get(&gw, "/bulk/small");
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(!contains(&got, LAB_SECRET));
    // Broken before the status was sent: a 502, as on buffered routes.
    let resp = client()
        .get(gw.url("/bulk/small-broken"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(v["error"]["details"]["reason"], "malformed");
    assert_eq!(
        gw.metric("sentinel_field_filter_failures_total{reason=\"malformed\",route=\"bulk\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_body_that_breaks_after_the_status_aborts_the_connection() {
    let gw = start();
    for (kind, reason) in [("broken", "malformed"), ("dies", "upstream")] {
        // Through a real HTTP client: the body is an error, never a short success.
        let resp = client()
            .get(gw.url(&format!("/bulk/{kind}")))
            .bearer_auth(token(VICTOR, NORDIC))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{kind}: the status went out first");
        assert!(
            resp.bytes().await.is_err(),
            "{kind}: a cut-off body read as complete"
        );
        // On the wire: chunked, no terminating chunk, and nothing unfiltered.
        let got = raw_get(&gw, &format!("/bulk/{kind}"));
        assert!(got.starts_with(b"HTTP/1.1 200"), "{kind}");
        let head = String::from_utf8_lossy(&got[..got.len().min(2048)]).to_ascii_lowercase();
        assert!(
            head.contains("transfer-encoding: chunked"),
            "{kind}: {head}"
        );
        assert!(
            contains(&got, "****5044"),
            "{kind}: filtered entities were sent"
        );
        assert!(!got.ends_with(b"0\r\n\r\n"), "{kind}: body ended normally");
        assert!(!contains(&got, LAB_SECRET), "{kind}: secret leaked");
        let series =
            format!("sentinel_field_stream_aborts_total{{reason=\"{reason}\",route=\"bulk\"}}");
        assert_eq!(gw.metric(&series).await, 2.0, "{series}");
    }
    // The gateway still serves after aborting.
    let resp = client()
        .get(gw.url("/bulk/small"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
