//! End-to-end: the real `sentinel` binary in front of the echo upstream, with
//! the demo policy. One test per decision path of the issue, plus identity
//! headers, header stripping and edge behaviour.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(gw.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn echoed(resp: reqwest::Response) -> Value {
    assert_eq!(
        resp.status().as_u16(),
        200,
        "expected the upstream's answer"
    );
    resp.json().await.unwrap()
}

/// (who, method, path, expected status, expected error code or "" for allowed)
const TABLE: &[(&str, &str, &str, u16, &str)] = &[
    // allow: a viewer reads vessels of the own tenant (role viewer)
    ("victor", "GET", "/msw/vessels", 200, ""),
    ("victor", "GET", "/msw/vessels/v-a1", 200, ""),
    // deny by default: a viewer may not update or create
    (
        "victor",
        "PATCH",
        "/msw/vessels/v-a2",
        403,
        "PERMISSION_DENIED",
    ),
    ("victor", "POST", "/msw/vessels", 403, "PERMISSION_DENIED"),
    // inheritance: tenant_admin -> operator -> viewer grants read and update
    ("alice", "PATCH", "/msw/vessels/v-a2", 200, ""),
    ("alice", "GET", "/fleet/voyages/voy-a1", 200, ""),
    // deny overrides allow: fleet-all allows delete, deny-delete-flagship forbids v-a1
    (
        "alice",
        "DELETE",
        "/msw/vessels/v-a1",
        403,
        "PERMISSION_DENIED",
    ),
    ("alice", "DELETE", "/msw/vessels/v-a2", 200, ""),
    // groups + ABAC: port_agent (through the port team group) may update port calls
    // when department = port-ops and the client is on the office network
    ("alice", "PATCH", "/port/port-calls/pc-a1", 200, ""),
    (
        "victor",
        "PATCH",
        "/port/port-calls/pc-a1",
        403,
        "PERMISSION_DENIED",
    ),
    // sub-tenant: own_and_children lets Alice list Nordic Tankers' port calls
    (
        "alice",
        "GET",
        "/port/tenants/33333333-3333-3333-3333-333333333333/port-calls",
        200,
        "",
    ),
    // ... but Victor's plain read is own-tenant only
    (
        "victor",
        "GET",
        "/port/tenants/33333333-3333-3333-3333-333333333333/port-calls",
        403,
        "PERMISSION_DENIED",
    ),
    // cross-tenant through the tenant parameter
    (
        "bob",
        "GET",
        "/port/tenants/11111111-1111-1111-1111-111111111111/port-calls",
        403,
        "PERMISSION_DENIED",
    ),
    // an unknown tenant answers exactly like another tenant's
    (
        "bob",
        "GET",
        "/port/tenants/99999999-9999-9999-9999-999999999999/port-calls",
        403,
        "PERMISSION_DENIED",
    ),
    (
        "bob",
        "GET",
        "/port/tenants/not-a-uuid/port-calls",
        403,
        "PERMISSION_DENIED",
    ),
    // approval: deleting a voyage needs a grant; Alice holds one for voy-a2 only
    (
        "alice",
        "DELETE",
        "/fleet/voyages/voy-a1",
        403,
        "APPROVAL_REQUIRED",
    ),
    ("alice", "DELETE", "/fleet/voyages/voy-a2", 200, ""),
    // locked account, suspended tenant
    ("lena", "GET", "/msw/vessels", 403, "ACCOUNT_LOCKED"),
    ("carl", "GET", "/msw/vessels", 403, "TENANT_SUSPENDED"),
    // unknown route
    ("alice", "GET", "/nowhere", 404, "ROUTE_NOT_FOUND"),
    ("alice", "PUT", "/msw/vessels", 404, "ROUTE_NOT_FOUND"),
    // users-only and service-accounts-only routes
    ("alice", "GET", "/users/vessels", 200, ""),
    ("alice", "GET", "/sync/vessels", 403, "PERMISSION_DENIED"),
];

fn who(name: &str) -> String {
    match name {
        "alice" => token_with(ALICE, NORDIC, true, None),
        "victor" => token(VICTOR, NORDIC),
        "bob" => token(BOB, PACIFIC),
        "lena" => token(LENA, NORDIC),
        "carl" => token(CARL, SUSPENDED),
        other => panic!("unknown persona {other}"),
    }
}

#[tokio::test]
async fn decision_table() {
    let gw = start(Options::default());
    let mut failures = Vec::new();
    for (persona, method, path, status, code) in TABLE {
        let resp = client()
            .request(method.parse().unwrap(), gw.url(path))
            .bearer_auth(who(persona))
            .header("content-type", "application/json")
            .body(if *method == "GET" || *method == "DELETE" {
                ""
            } else {
                r#"{"name":"x"}"#
            })
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let ok = got == *status
            && if code.is_empty() {
                // Allowed requests reach the echo upstream, which answers
                // with the method and path it saw, and no error.
                body["method"] == *method && body["path"] == *path && body.get("error").is_none()
            } else {
                body["error"]["code"] == *code
            };
        if !ok {
            failures.push(format!(
                "{persona} {method} {path}: want {status} {code}, got {got} {body}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "decision table failures:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn cross_tenant_object_is_forwarded_with_the_callers_tenant() {
    // Bob may read vessels of his own tenant; the gateway forwards with his
    // tenant id and the app answers another tenant's vessel as missing.
    let gw = start(Options::default());
    let body = echoed(get(&gw, "/msw/vessels/v-a1", Some(&token(BOB, PACIFIC))).await).await;
    assert_eq!(body["headers"]["x-sentinel-tenant-id"], PACIFIC);
    assert_eq!(body["headers"]["x-sentinel-user-id"], BOB);
}

#[tokio::test]
async fn identity_headers_replace_client_ones() {
    let gw = start(Options::default());
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(token(VICTOR, NORDIC))
        .header("x-sentinel-user-id", BOB)
        .header("X-Sentinel-Tenant-Id", PACIFIC)
        .header("x-sentinel-roles", "tenant_admin")
        .header("x-sentinel-service-account", "true")
        .header("x-sentinel-assertion", "forged")
        .header("x-sentinel-request-id", "forged")
        .header("x-sentinel-anything", "forged")
        .send()
        .await
        .unwrap();
    let response_request_id = resp.headers()["x-sentinel-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = echoed(resp).await;
    let h = &body["headers"];
    assert_eq!(h["x-sentinel-user-id"], VICTOR);
    assert_eq!(h["x-sentinel-tenant-id"], NORDIC);
    assert_eq!(
        h["x-sentinel-roles"], "viewer,port_agent",
        "direct and group roles"
    );
    assert_eq!(h["x-sentinel-service-account"], "false");
    assert!(
        h.get("x-sentinel-anything").is_none(),
        "unknown x-sentinel-* header forwarded: {h}"
    );
    assert_ne!(h["x-sentinel-request-id"], "forged");
    assert_eq!(h["x-sentinel-request-id"], response_request_id.as_str());
    // The assertion verifies with the gateway's JWKS and names the caller.
    let assertion = h["x-sentinel-assertion"].as_str().unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = client()
        .get(gw.ops_url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["sentinel-upstream"]);
    v.set_issuer(&["sentinel-gateway"]);
    let claims = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], VICTOR);
    assert_eq!(claims["tid"], NORDIC);
    assert_eq!(claims["roles"], "viewer,port_agent");
    // A forged assertion does not verify.
    let mut parts: Vec<&str> = assertion.split('.').collect();
    let forged_payload = base64_url(&serde_json::to_vec(&serde_json::json!({"sub": BOB})).unwrap());
    parts[1] = &forged_payload;
    assert!(jsonwebtoken::decode::<Value>(
        &parts.join("."),
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v
    )
    .is_err());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn connection_header_cannot_drop_identity_headers() {
    // Raw HTTP/1.1 so the Connection header reaches the gateway as written.
    let gw = start(Options::default());
    let token = token(VICTOR, NORDIC);
    let req = format!(
        "GET /msw/vessels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: keep-alive, x-sentinel-user-id, X-Sentinel-Tenant-Id\r\nx-sentinel-user-id: {BOB}\r\n\r\n"
    );
    let text = raw_http(gw.proxy, req.as_bytes());
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let body: Value = serde_json::from_str(body.trim()).unwrap_or_else(|_| {
        // chunked: take the JSON object
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        serde_json::from_str(&body[start..=end]).unwrap()
    });
    let h = &body["headers"];
    assert_eq!(h["x-sentinel-user-id"], VICTOR);
    assert_eq!(h["x-sentinel-tenant-id"], NORDIC);
    let conn = h["connection"].as_str().unwrap_or("");
    assert!(
        !conn.to_ascii_lowercase().contains("x-sentinel"),
        "connection forwarded: {conn}"
    );
}

/// An upstream that answers every request with `x-sentinel-*` headers of its
/// own, in mixed case: none may reach the client, streamed or filtered.
fn forging_upstream() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = r#"{"data":[],"count":0}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     X-Sentinel-Request-Id: forged\r\nx-sentinel-user-id: forged\r\n\
                     X-SENTINEL-DECISION: allow; forged\r\nx-sentinel-other: forged\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

#[tokio::test]
async fn upstreams_cannot_send_sentinel_headers() {
    let upstream = forging_upstream();
    let gw = start(Options {
        extra_config: format!("\n[upstreams.forger]\naddresses = [\"{upstream}\"]\n"),
        extra_routes: r#"
[[routes]]
id = "forger-streamed"
path = "/forger/streamed"
methods = ["GET"]
upstream = "forger"
auth = "any"
resource = "vessel"

[[routes]]
id = "forger-filtered"
path = "/forger/filtered"
methods = ["GET"]
upstream = "forger"
auth = "any"
resource = "vessel"
fields = { entity = "vessel", at = "$.data[*]" }
"#
        .to_owned(),
        ..Options::default()
    });
    let t = token(VICTOR, NORDIC);
    for path in ["/forger/streamed", "/forger/filtered"] {
        let resp = get(&gw, path, Some(&t)).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers();
        let ids: Vec<_> = h.get_all("x-sentinel-request-id").iter().collect();
        assert_eq!(ids.len(), 1, "{path}: {ids:?}");
        assert_ne!(ids[0], "forged", "{path}");
        for (name, value) in h {
            assert_ne!(value, "forged", "{path}: {name} came from the upstream");
            assert!(
                !value.to_str().unwrap_or("").contains("forged"),
                "{path}: {name}: {value:?}"
            );
        }
        assert!(h.get("x-sentinel-user-id").is_none(), "{path}");
        assert!(h.get("x-sentinel-other").is_none(), "{path}");
        assert_eq!(resp.text().await.unwrap(), r#"{"data":[],"count":0}"#);
    }
}

fn raw_http(addr: std::net::SocketAddr, req: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    // Read until the response is complete (content-length or terminating chunk).
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_ascii_lowercase();
                    if let Some(cl) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
                        if buf.len() >= end + 4 + cl.trim().parse::<usize>().unwrap() {
                            break;
                        }
                    } else if text.ends_with("0\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The credential the gateway verified never reaches the upstream (it gets
/// the signed assertion), unless the route says `forward_credentials`; a
/// public route reads no credential and forwards every header.
#[tokio::test]
async fn the_callers_credential_stays_at_the_edge() {
    let gw = start(Options {
        extra_routes: r#"
[[routes]]
id = "relay"
path = "/relay/vessels"
methods = ["GET"]
upstream = "msw"
auth = "any"
resource = "vessel"
forward_credentials = true

[[routes]]
id = "open"
path = "/open/vessels"
methods = ["GET"]
upstream = "msw"
auth = "public"
"#
        .to_owned(),
        ..Options::default()
    });
    let t = token(VICTOR, NORDIC);
    let key = sentinel::demo::DEMO_API_KEY;
    let seen = |body: Value| body["headers"].clone();

    let h = seen(echoed(get(&gw, "/msw/vessels", Some(&t)).await).await);
    assert!(
        h.get("authorization").is_none(),
        "bearer token forwarded: {h}"
    );
    assert_eq!(h["x-sentinel-user-id"], VICTOR);
    assert!(h["x-sentinel-assertion"]
        .as_str()
        .is_some_and(|a| a.len() > 100));
    for (name, value) in [
        ("x-api-key", key.to_owned()),
        ("authorization", format!("ApiKey {key}")),
    ] {
        let resp = client()
            .get(gw.url("/sync/vessels"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        let h = seen(echoed(resp).await);
        assert!(h.get(name).is_none(), "API key forwarded in {name}: {h}");
        assert_eq!(h["x-sentinel-user-id"], FLEET_SA);
    }

    let h = seen(echoed(get(&gw, "/relay/vessels", Some(&t)).await).await);
    assert_eq!(h["authorization"], format!("Bearer {t}"));
    assert_eq!(h["x-sentinel-user-id"], VICTOR);

    let resp = client()
        .get(gw.url("/open/vessels"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .header("x-api-key", "the-upstreams-own-key")
        .send()
        .await
        .unwrap();
    let h = seen(echoed(resp).await);
    assert_eq!(h["authorization"], "Basic dXNlcjpwYXNz");
    assert_eq!(h["x-api-key"], "the-upstreams-own-key");
    assert!(h.get("x-sentinel-user-id").is_none());
}

#[tokio::test]
async fn api_keys_authenticate_service_accounts_only() {
    let gw = start(Options::default());
    let key = sentinel::demo::DEMO_API_KEY;
    // X-API-Key and Authorization: ApiKey
    let body = echoed(
        client()
            .get(gw.url("/sync/vessels"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["headers"]["x-sentinel-service-account"], "true");
    assert_eq!(body["headers"]["x-sentinel-user-id"], FLEET_SA);
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .header("authorization", format!("ApiKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The service account may not use a users-only route.
    let resp = client()
        .get(gw.url("/users/vessels"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "PERMISSION_DENIED").await;
    // Wrong secret with the right prefix, unknown prefix, malformed, both credentials at once.
    let wrong = format!("{}X", &key[..key.len() - 1]);
    for bad in [
        wrong.as_str(),
        "sk_nothere1_Q7wN2kR9pX4mT6vB8cJ3hL5dF1gS0aZeYu",
        "sk_short",
        "garbage",
    ] {
        let resp = client()
            .get(gw.url("/msw/vessels"))
            .header("x-api-key", bad)
            .send()
            .await
            .unwrap();
        expect_error(resp, 401, "AUTH_INVALID").await;
    }
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .header("x-api-key", key)
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "AUTH_INVALID").await;
}

#[tokio::test]
async fn authentication_failures() {
    let gw = start(Options::default());
    expect_error(get(&gw, "/msw/vessels", None).await, 401, "AUTH_REQUIRED").await;
    expect_error(
        get(&gw, "/msw/vessels", Some("not.a.token")).await,
        401,
        "AUTH_INVALID",
    )
    .await;
    let revoked = token_with(ALICE, NORDIC, false, Some("demo-logged-out"));
    expect_error(
        get(&gw, "/msw/vessels", Some(&revoked)).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    let now = now();
    let expired = sign_claims(
        &serde_json::json!({"iss": "https://demo.sentinel.local", "aud": "sentinel", "sub": ALICE, "tid": NORDIC, "exp": now - 3600}),
        Some("demo-issuer-1"),
    );
    expect_error(
        get(&gw, "/msw/vessels", Some(&expired)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
    // The token names another tenant than the principal's.
    let wrong_tenant = token(VICTOR, PACIFIC);
    expect_error(
        get(&gw, "/msw/vessels", Some(&wrong_tenant)).await,
        401,
        "AUTH_INVALID",
    )
    .await;
    // A subject the snapshot does not know.
    let unknown = token("dddddddd-0000-4000-8000-000000000009", NORDIC);
    expect_error(
        get(&gw, "/msw/vessels", Some(&unknown)).await,
        401,
        "AUTH_INVALID",
    )
    .await;
    // Roles in the token are ignored: a viewer claiming tenant_admin is still a viewer.
    let claims_admin = sign_claims(
        &serde_json::json!({"iss": "https://demo.sentinel.local", "aud": "sentinel", "sub": VICTOR, "tid": NORDIC, "exp": now + 600, "roles": ["tenant_admin"], "scope": "admin"}),
        Some("demo-issuer-1"),
    );
    let resp = client()
        .delete(gw.url("/msw/vessels/v-a2"))
        .bearer_auth(claims_admin)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "PERMISSION_DENIED").await;
}

#[tokio::test]
async fn public_routes_need_no_credentials_and_hosts_match() {
    let gw = start(Options::default());
    let resp = client().get(gw.url("/status/200")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // A host-specific route wins over the generic one for its host only.
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .header("host", "MSW.example.com:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "public hosted route");
    let resp = client().get(gw.url("/msw/vessels")).send().await.unwrap();
    expect_error(resp, 401, "AUTH_REQUIRED").await;
}

#[tokio::test]
async fn explain_header_for_configured_principals_only() {
    let gw = start(Options::default());
    let resp = get(&gw, "/msw/vessels", Some(&token(VICTOR, NORDIC))).await;
    let explain = resp.headers()["x-sentinel-decision"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(explain, "allow; reason=allowed; rules=vessel-read");
    let resp = client()
        .delete(gw.url("/msw/vessels/v-a1"))
        .bearer_auth(token_with(ALICE, NORDIC, true, None))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-sentinel-decision"],
        "deny; reason=explicit_deny; rules=deny-delete-flagship"
    );
    // Bob is not configured for explain.
    let resp = get(&gw, "/msw/vessels", Some(&token(BOB, PACIFIC))).await;
    assert!(resp.headers().get("x-sentinel-decision").is_none());
}

#[tokio::test]
async fn upstream_down_and_slow() {
    let gw = start(Options::default());
    let t = token(VICTOR, NORDIC);
    expect_error(
        get(&gw, "/down/x", Some(&t)).await,
        502,
        "UPSTREAM_UNAVAILABLE",
    )
    .await;
    expect_error(
        get(&gw, "/slow/3000", Some(&t)).await,
        504,
        "UPSTREAM_TIMEOUT",
    )
    .await;
    // A fast enough answer on the same route passes.
    let resp = get(&gw, "/slow/10", Some(&t)).await;
    assert_eq!(resp.status(), 200);
}

/// Timeouts of a second or more run on tokio's timer, shorter ones on
/// Pingora's (`server::build`): both must end a slow upstream with a 504.
#[tokio::test]
async fn an_upstream_read_timeout_of_seconds_fires() {
    let gw = start(Options {
        slow_read_timeout: "1s",
        ..Options::default()
    });
    let t = token(VICTOR, NORDIC);
    // The upstream answers 200 after 4 s; only the gateway's timer makes a 504.
    expect_error(
        get(&gw, "/slow/4000", Some(&t)).await,
        504,
        "UPSTREAM_TIMEOUT",
    )
    .await;
    let resp = get(&gw, "/slow/300", Some(&t)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn hostile_paths_and_sizes() {
    let gw = start(Options::default());
    let t = token(ALICE, NORDIC);
    for path in [
        "/msw/vessels/%2e%2e/x",
        "/msw/vessels/a%2Fb",
        "/msw/vessels/%zz",
        "/msw//vessels",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n");
        let text = raw_http(gw.proxy, raw.as_bytes());
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(text.contains("\"BAD_REQUEST\""), "{path}: {text}");
    }
    // An encoded id is decoded before matching: `v%2Da1` is the flagship `v-a1`, so the deny still applies.
    let resp = client()
        .delete(gw.url("/msw/vessels/v%2Da1"))
        .bearer_auth(token_with(ALICE, NORDIC, true, None))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "PERMISSION_DENIED").await;
    // Body over max_body_bytes (1 MiB): declared length and chunked.
    let big = vec![b'a'; 1024 * 1024 + 1];
    let resp = client()
        .post(gw.url("/fleet/voyages"))
        .bearer_auth(&t)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "BODY_TOO_LARGE").await;
    // Headers over max_header_bytes (32 KiB).
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(&t)
        .header("x-big", "a".repeat(40_000))
        .send()
        .await
        .unwrap();
    expect_error(resp, 431, "HEADERS_TOO_LARGE").await;
    // An oversized token is refused without being parsed.
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth("a".repeat(9000))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "AUTH_INVALID").await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_as_it_streams() {
    // No content-length, a route that streams (no field binding): the limit
    // (1 MiB) holds while the body is forwarded, and the client sees the 413.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start(Options::default());
    let mut stream = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    let head = "POST /status/200 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    // 1.25 MiB. The gateway may stop reading once it has refused.
    let mut sent = 0;
    for _ in 0..20 {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "sent {sent}: {answer:.300}"
    );
    assert!(answer.contains("\"BODY_TOO_LARGE\""), "{answer:.300}");
    assert!(answer.contains("x-sentinel-request-id"), "{answer:.300}");
    // The gateway refused it, not the echo upstream (whose limit is also 1 MiB).
    assert!(
        answer.contains("request body is too large"),
        "{answer:.300}"
    );
    assert_eq!(
        gw.metric(
            r#"sentinel_requests_total{code="BODY_TOO_LARGE",outcome="denied",route="public-status"}"#
        )
        .await,
        1.0
    );
    // Under the limit, the same route takes the body.
    let resp = client()
        .post(gw.url("/status/200"))
        .body(reqwest::Body::from(vec![b'a'; 512 * 1024]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn cors_preflight_is_answered_at_the_edge() {
    let gw = start(Options::default());
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/msw/vessels"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    assert!(resp.headers().contains_key("x-sentinel-request-id"));
    // A foreign origin gets no CORS headers.
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/msw/vessels"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Actual requests from an allowed origin get the header.
    let resp = client()
        .get(gw.url("/msw/vessels"))
        .bearer_auth(token(VICTOR, NORDIC))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn policy_reload_applies_good_and_rejects_broken() {
    let gw = start(Options::default());
    let victor = token(VICTOR, NORDIC);
    let resp = client()
        .patch(gw.url("/msw/vessels/v-a2"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "PERMISSION_DENIED").await;
    // Grant viewers vessel updates: the watcher picks it up.
    let path = gw.policy_path();
    let original = std::fs::read_to_string(&path).unwrap();
    let granted = original.replace(
        "permissions = [\"vessel-read\", \"voyage-read\", \"port-call-read\"]",
        "permissions = [\"vessel-read\", \"voyage-read\", \"port-call-read\", \"vessel-update\"]",
    );
    assert_ne!(granted, original);
    std::fs::write(&path, &granted).unwrap();
    let allowed = wait_for(|| async {
        client()
            .patch(gw.url("/msw/vessels/v-a2"))
            .bearer_auth(&victor)
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(allowed, "policy change not applied");
    // A broken policy is rejected whole; the previous snapshot keeps serving.
    std::fs::write(
        &path,
        granted.replace("parent = \"viewer\"", "parent = \"no-such-role\""),
    )
    .unwrap();
    // Wait until the watcher has read and refused it, then ask afresh.
    let rejected = "sentinel_snapshot_rejected_total{reason=\"compile\"}";
    gw.wait_metric(rejected, 1.0).await;
    let resp = client()
        .patch(gw.url("/msw/vessels/v-a2"))
        .bearer_auth(&victor)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "broken policy must not replace the good one"
    );
    assert_eq!(gw.metric(rejected).await, 1.0);
}

async fn wait_for<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn ops_endpoints() {
    let gw = start(Options::default());
    let c = client();
    assert_eq!(
        c.get(gw.ops_url("/healthz")).send().await.unwrap().status(),
        200
    );
    let ready: Value = c
        .get(gw.ops_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["snapshot_version"], 1);
    let _ = get(&gw, "/msw/vessels", Some(&token(VICTOR, NORDIC))).await;
    let _ = get(&gw, "/msw/vessels", None).await;
    // Requests are counted in Pingora's logging phase, which runs after the
    // response has been written: the client can see its answer before the
    // counter moves. Wait (bounded) instead of reading once.
    let allowed =
        r#"sentinel_requests_total{code="OK",outcome="allowed",route="msw-vessels-list"}"#;
    let denied = r#"sentinel_requests_total{code="AUTH_REQUIRED",outcome="denied",route="msw-vessels-list"}"#;
    gw.wait_metric(allowed, 1.0).await;
    gw.wait_metric(denied, 1.0).await;
    assert_eq!(gw.metric(allowed).await, 1.0);
    assert_eq!(gw.metric(denied).await, 1.0);
    assert_eq!(
        gw.metric(
            r#"sentinel_decisions_total{decision="allow",reason="allowed",route="msw-vessels-list"}"#
        )
        .await,
        1.0
    );
    assert_eq!(gw.metric("sentinel_snapshot_version").await, 1.0);
    assert!(
        gw.metric_sum("sentinel_request_duration_seconds_bucket", &[])
            .await
            > 0.0
    );
    let jwks: Value = c
        .get(gw.ops_url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "gateway-demo-1");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "private key material in the JWKS"
    );
}

#[tokio::test]
async fn run_refuses_an_invalid_config() {
    let dir = std::env::temp_dir().join(format!("sentinel-bad-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sentinel.toml"),
        "routes = []\n[policy]\nsource = \"file\"\npaths = []\nbogus = 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--config"])
        .arg(dir.join("sentinel.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sentinel.toml:5:1: unknown field `bogus`"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(dir.join("sentinel.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_refuses_forward_credentials_on_a_public_route() {
    let dir = bundled_config_copy("fwd");
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
            .args(["check", "--config"])
            .arg(dir.join("sentinel.toml"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let route = |auth: &str, forward: bool| {
        format!(
            "[[routes]]\nid = \"fwd\"\npath = \"/fwd/x\"\nupstream = \"msw\"\nauth = \"{auth}\"\nresource = \"vessel\"\nforward_credentials = {forward}\n"
        )
    };
    std::fs::write(dir.join("routes/zz-fwd.toml"), route("public", true)).unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("zz-fwd.toml:7:")
            && text.contains("`forward_credentials` has no effect on a public route"),
        "{text}"
    );
    // Where it means something, or when it says the default, it is accepted.
    for (auth, forward) in [("any", true), ("public", false)] {
        std::fs::write(dir.join("routes/zz-fwd.toml"), route(auth, forward)).unwrap();
        let (code, text) = check();
        assert_eq!(
            code,
            Some(0),
            "auth = {auth}, forward_credentials = {forward}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn run_refuses_a_listen_address_in_use() {
    // A second gateway on the same config finds the proxy port taken. It must
    // exit with a clear error, not run on with only its ops listener (Pingora
    // alone retries for 30 s and then panics just the proxy's thread).
    let gw = start(Options::default());
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--config"])
        .arg(gw.dir.join("sentinel.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a gateway whose proxy port is taken kept running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {} (proxy)", gw.proxy)),
        "{err}"
    );
    // The first one is untouched.
    let resp = get(&gw, "/msw/vessels", Some(&token(VICTOR, NORDIC))).await;
    assert_eq!(resp.status(), 200);
}

#[test]
fn demo_refuses_a_listen_address_in_use_before_printing_the_tour() {
    // `sentinel demo` on a taken proxy port: exit 1 with the address, and no
    // banner of tokens and curl lines for a gateway that is not there.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("sentinel-demo-taken-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["demo", "--listen", &addr.to_string()])
        .args(["--ops", &format!("127.0.0.1:{}", common::free_port())])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (proxy)")),
        "{stderr}"
    );
    assert!(
        !stdout.contains("export "),
        "the tour was printed: {stdout}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn check_accepts_the_bundled_config() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["check", "--config"])
        .arg(repo().join("config/sentinel.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn a_dead_pool_member_is_skipped() {
    // The pool's first address refuses connections; every request still succeeds.
    let gw = start(Options::default());
    let t = token(VICTOR, NORDIC);
    for i in 0..8 {
        let resp = get(&gw, &format!("/pool/{i}"), Some(&t)).await;
        assert_eq!(resp.status(), 200, "request {i}");
    }
}
