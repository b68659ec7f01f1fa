//! Issue 17, gateway items, against the real binary: hostile identity and
//! forwarding headers, `Host` rules, slow request heads, connections per
//! client and the graceful stop. (Item 5, high-s ES256 signatures, is a
//! row of `jwt_hostile.rs`.)
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use common::{start, token, Gateway, Options, NORDIC, VICTOR};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Sends `request` as is on a fresh connection and reads the answer until
/// the gateway closes it.
fn send_raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {resp:?}"))
}

/// The JSON body of a raw answer (content-length or chunked).
fn body(resp: &str) -> Value {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

/// The request headers the echo upstream received.
fn upstream_headers(resp: &str) -> serde_json::Map<String, Value> {
    assert_eq!(status(resp), 200, "{resp}");
    body(resp)["headers"].as_object().unwrap().clone()
}

const HOSTILE: &str = "x_sentinel_user_id: EVIL\r\n\
X_SENTINEL_TENANT_ID: 99999999-9999-9999-9999-999999999999\r\n\
x-sentinel_roles: tenant_admin\r\n\
x_sentinel_assertion: forged\r\n\
X-Sentinel-User-Id: EVIL2\r\n\
x_custom: 1\r\n\
X-Forwarded-For: 6.6.6.6\r\n\
X-Real-IP: 6.6.6.6\r\n\
Client-IP: 6.6.6.6\r\n\
True-Client-IP: 6.6.6.6\r\n\
Forwarded: for=6.6.6.6\r\n\
X-Forwarded-Host: evil.example\r\n\
X-HTTP-Method-Override: DELETE\r\n\
X-Original-URL: /admin\r\n";

/// What reaches the upstream is the gateway's identity and the client
/// address it decided, never a client's spelling of them.
fn assert_clean(h: &serde_json::Map<String, Value>, user: Option<&str>) {
    let names: Vec<&String> = h.keys().collect();
    assert!(
        !names.iter().any(|n| n.contains('_')),
        "underscore header reached the upstream: {names:?}"
    );
    for gone in [
        "x-real-ip",
        "client-ip",
        "true-client-ip",
        "forwarded",
        "x-forwarded-host",
        "x-http-method-override",
        "x-original-url",
    ] {
        assert!(
            !h.contains_key(gone),
            "`{gone}` reached the upstream: {h:?}"
        );
    }
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h:?}");
    match user {
        Some(u) => {
            assert_eq!(h["x-sentinel-user-id"], u);
            assert_eq!(h["x-sentinel-tenant-id"], NORDIC);
            assert!(h["x-sentinel-roles"]
                .as_str()
                .is_some_and(|r| !r.contains("tenant_admin")));
        }
        None => assert!(!h.contains_key("x-sentinel-user-id"), "{h:?}"),
    }
}

#[test]
fn hostile_identity_and_forwarding_headers_never_reach_the_upstream() {
    let gw = start(Options::default());
    let t = token(VICTOR, NORDIC);
    let authed = send_raw(
        gw.proxy,
        &format!(
            "GET /msw/vessels HTTP/1.1\r\nHost: x\r\n{HOSTILE}Authorization: Bearer {t}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_clean(&upstream_headers(&authed), Some(VICTOR));
    // On a public route the client's lines would be the only identity.
    let public = send_raw(
        gw.proxy,
        &format!("GET /status/200 HTTP/1.1\r\nHost: x\r\n{HOSTILE}Connection: close\r\n\r\n"),
    );
    assert_clean(&upstream_headers(&public), None);
}

#[test]
fn underscore_headers_can_be_rejected_or_allowed() {
    let gw = start(Options {
        extra_config: "[client_headers]\nunderscores = \"reject\"\n".into(),
        ..Options::default()
    });
    let resp = send_raw(
        gw.proxy,
        "GET /status/200 HTTP/1.1\r\nHost: x\r\nx_custom: 1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&resp), 400, "{resp}");
    assert_eq!(body(&resp)["error"]["code"], "BAD_REQUEST");
    drop(gw);

    let gw = start(Options {
        extra_config: "[client_headers]\nunderscores = \"allow\"\n".into(),
        ..Options::default()
    });
    let resp = send_raw(
        gw.proxy,
        &format!("GET /status/200 HTTP/1.1\r\nHost: x\r\n{HOSTILE}Connection: close\r\n\r\n"),
    );
    let h = upstream_headers(&resp);
    // Allowed: the app's own `x_custom` passes; the reserved namespace,
    // `_` read as `-`, never does.
    assert_eq!(h["x_custom"], "1");
    assert!(
        !h.keys().any(|n| n.replace('_', "-").starts_with("x-sentinel-")
            && n != "x-sentinel-request-id"),
        "{h:?}"
    );
}

#[test]
fn host_is_required_in_http_1_1_and_supplied_for_http_1_0() {
    let gw = start(Options::default());
    let resp = send_raw(
        gw.proxy,
        "GET /status/200 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&resp), 400, "{resp}");
    assert_eq!(body(&resp)["error"]["code"], "BAD_REQUEST");
    let resp = send_raw(
        gw.proxy,
        "GET /status/200 HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&resp), 400, "{resp}");
    // HTTP/1.0 may omit it; the upstream (spoken to in 1.1) gets one.
    let resp = send_raw(gw.proxy, "GET /status/200 HTTP/1.0\r\n\r\n");
    let h = upstream_headers(&resp);
    assert!(
        h.get("host")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty()),
        "{h:?}"
    );
}

/// Whether the gateway has closed `s` (EOF or reset), looking for `wait`.
fn closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

fn limited_gateway() -> Gateway {
    let mut gw = start(Options {
        capture_log: true,
        ..Options::default()
    });
    gw.reconfigure(&[(
        "[limits]",
        "[limits]\nrequest_header_timeout = \"1s\"\nclient_idle_timeout = \"3s\"\nmax_connections_per_client = 4",
    )]);
    gw
}

#[test]
fn a_request_head_sent_byte_by_byte_is_cut_at_the_deadline() {
    let gw = limited_gateway();
    let mut s = TcpStream::connect(gw.proxy).unwrap();
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // One header byte every 200 ms: each read is quick, the head never ends.
    let start = Instant::now();
    let mut cut = false;
    while start.elapsed() < Duration::from_secs(15) {
        if s.write_all(b"X").is_err() || closed(&mut s, Duration::from_millis(200)) {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a slow head kept its connection for {:?}",
        start.elapsed()
    );
    println!(
        "slow head cut after {:?} (request_header_timeout 1s)",
        start.elapsed()
    );

    // A kept-alive connection may idle past the deadline between requests.
    let mut s = TcpStream::connect(gw.proxy).unwrap();
    let req = "GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..2 {
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Drain the rest of the answer, then idle past the head deadline.
        let _ = closed(&mut s, Duration::from_millis(1500));
    }
}

#[test]
fn a_silent_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let gw = limited_gateway();
    let mut s = TcpStream::connect(gw.proxy).unwrap();
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Pingora alone keeps a reused HTTP/1.1 connection for ever.
    let start = Instant::now();
    let mut gone = false;
    while start.elapsed() < Duration::from_secs(15) {
        if closed(&mut s, Duration::from_millis(500)) {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "an idle connection stayed open for {:?}",
        start.elapsed()
    );
    println!(
        "idle connection closed after {:?} (client_idle_timeout 3s)",
        start.elapsed()
    );
}

#[test]
fn connections_per_client_are_capped() {
    let gw = limited_gateway();
    let req = "GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n";
    // Four kept-alive connections, each answered once and then idle.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(gw.proxy).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            s
        })
        .collect();
    // The fifth is closed without an answer.
    let mut fifth = TcpStream::connect(gw.proxy).unwrap();
    let _ = fifth.write_all(req.as_bytes());
    assert!(closed(&mut fifth, Duration::from_secs(10)));
    // One goes away: a new connection is served again.
    drop(held.pop());
    let start = Instant::now();
    loop {
        let resp = send_raw(
            gw.proxy,
            "GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if resp.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never served again: {resp:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_when_idle_exits_promptly() {
    let mut gw = start(Options {
        capture_log: true,
        ..Options::default()
    });
    let resp = send_raw(
        gw.proxy,
        "GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&resp), 200);
    // A kept-alive idle connection does not hold the stop up either.
    let mut idle = TcpStream::connect(gw.proxy).unwrap();
    idle.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = idle.read(&mut buf).unwrap();
    let stopping = Instant::now();
    gw.signal("TERM");
    // Bounded well below Pingora's 5-minute grace period and the 25 s drain.
    let exited = gw.wait_exit(Duration::from_secs(20));
    println!("idle gateway exited {:?} after SIGTERM", stopping.elapsed());
    assert!(
        exited.is_some_and(|s| s.success()),
        "still running or failed: {exited:?}; log:\n{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut gw = start(Options {
        capture_log: true,
        slow_read_timeout: "30s",
        ..Options::default()
    });
    let t = token(VICTOR, NORDIC);
    let url = gw.url("/slow/2000");
    let in_flight = tokio::spawn(async move {
        common::client()
            .get(url)
            .bearer_auth(t)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Let the request reach the upstream, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    gw.signal("TERM");
    let answered = in_flight.await.unwrap();
    assert_eq!(
        answered.as_ref().ok(),
        Some(&200),
        "{answered:?}; log:\n{}",
        gw.log()
    );
    let exited = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(20)));
    println!(
        "gateway with a 2 s request in flight exited {:?} after SIGTERM",
        stopping.elapsed()
    );
    assert!(
        exited.is_some_and(|s| s.success()),
        "still running or failed: {exited:?}; log:\n{}",
        gw.log()
    );
}
