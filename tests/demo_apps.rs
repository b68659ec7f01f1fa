//! Demo upstream apps over real sockets: each test starts an app on
//! `127.0.0.1:0` and talks to it with reqwest, as the gateway would.
//!
//! Run: `cargo test --test demo_apps`
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use sentinel_demo_apps::{demo_records, serve, App, CRUD_BODY_LIMIT, STATIC_BODY_LEN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const A: &str = "11111111-1111-1111-1111-111111111111";
const B: &str = "22222222-2222-2222-2222-222222222222";
const S: &str = "33333333-3333-3333-3333-333333333333";

/// Starts `app` on an ephemeral port; the server task dies with the test's runtime.
async fn start(app: App) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app));
    addr
}

struct Demo {
    base: String,
    client: Client,
}

impl Demo {
    async fn start(app: App) -> Self {
        let addr = start(app).await;
        Demo {
            base: format!("http://{addr}"),
            client: Client::new(),
        }
    }

    fn req(&self, method: Method, path: &str, tenant: Option<&str>) -> RequestBuilder {
        let req = self.client.request(method, format!("{}{path}", self.base));
        match tenant {
            Some(t) => req.header("x-sentinel-tenant-id", t),
            None => req,
        }
    }

    /// Sends, checks the headers every answer must carry, and returns status and JSON body.
    async fn send(&self, req: RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "{status}"
        );
        let declared: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = resp.bytes().await.unwrap();
        assert_eq!(declared, body.len());
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, json)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.req(method, path, tenant);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    async fn get(&self, path: &str, tenant: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(tenant), None).await
    }
}

fn ids(list: &Value) -> Vec<&str> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

const CRUD_APPS: [(App, &str); 3] = [
    (App::Msw, "/msw/vessels"),
    (App::Fleet, "/fleet/voyages"),
    (App::Port, "/port/port-calls"),
];

#[tokio::test]
async fn lists_are_scoped_to_the_tenant_header() {
    // (app, collection, tenant, expected ids)
    let table: &[(App, &str, &str, &[&str])] = &[
        (App::Msw, "/msw/vessels", A, &["v-a1", "v-a2", "v-a3"]),
        (App::Msw, "/msw/vessels", B, &["v-b1", "v-b2"]),
        (App::Msw, "/msw/vessels", S, &["v-s1", "v-s2"]),
        (App::Fleet, "/fleet/voyages", A, &["voy-a1", "voy-a2"]),
        (App::Fleet, "/fleet/voyages", B, &["voy-b1", "voy-b2"]),
        (App::Fleet, "/fleet/voyages", S, &["voy-s1", "voy-s2"]),
        (App::Port, "/port/port-calls", A, &["pc-a1", "pc-a2"]),
        (App::Port, "/port/port-calls", B, &["pc-b1", "pc-b2"]),
        (App::Port, "/port/port-calls", S, &["pc-s1", "pc-s2"]),
        // An unknown tenant owns nothing.
        (
            App::Msw,
            "/msw/vessels",
            "44444444-4444-4444-4444-444444444444",
            &[],
        ),
        // A trailing slash is the same collection.
        (App::Msw, "/msw/vessels/", B, &["v-b1", "v-b2"]),
    ];
    for &(app, path, tenant, expected) in table {
        let demo = Demo::start(app).await;
        let (status, body) = demo.get(path, tenant).await;
        assert_eq!(status, StatusCode::OK, "{path} as {tenant}");
        assert_eq!(ids(&body), expected, "{path} as {tenant}");
        assert_eq!(body["count"], expected.len(), "{path} as {tenant}");
        for item in body["data"].as_array().unwrap() {
            assert_eq!(item["tenant_id"], tenant);
        }
    }
}

#[tokio::test]
async fn seeded_records_carry_all_three_tiers() {
    let demo = Demo::start(App::Msw).await;
    let (_, a1) = demo.get("/msw/vessels/v-a1", A).await;
    for field in [
        "id",
        "tenant_id",
        "name",
        "imo",
        "flag",
        "vessel_type",
        "gross_tonnage",
    ] {
        assert!(a1.get(field).is_some(), "core field {field}");
    }
    for field in ["eco_score", "ais_last_position", "crew_count"] {
        assert!(a1.get(field).is_some(), "platform_dynamic field {field}");
    }
    assert!(a1["ais_last_position"]["lat"].is_f64());
    assert!(a1.get("charter_rate_usd").is_some() && a1.get("crew_salary_budget").is_some());
    assert!(a1.get("insurance_policy_no").is_none());
    let (_, b1) = demo.get("/msw/vessels/v-b1", B).await;
    assert!(b1.get("insurance_policy_no").is_some());
    assert!(b1.get("charter_rate_usd").is_none());
}

#[tokio::test]
async fn missing_or_malformed_tenant_header_is_401() {
    for (app, path) in CRUD_APPS {
        let demo = Demo::start(app).await;
        for tenant in [None, Some("not-a-uuid"), Some("")] {
            for sub in ["", "/x-1"] {
                let (status, body) = demo
                    .call(Method::GET, &format!("{path}{sub}"), tenant, None)
                    .await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}{sub} {tenant:?}");
                assert_eq!(body["error"]["code"], "AUTH_REQUIRED");
            }
        }
    }
}

#[tokio::test]
async fn another_tenants_object_answers_exactly_like_a_missing_one() {
    for (app, path, foreign_id) in [
        (App::Msw, "/msw/vessels", "v-a1"),
        (App::Fleet, "/fleet/voyages", "voy-a1"),
        (App::Port, "/port/port-calls", "pc-a1"),
    ] {
        let demo = Demo::start(app).await;
        let missing_id = format!("{foreign_id}-missing");
        let patch = json!({"name": "hijacked"});
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(patch.clone())),
            (Method::PATCH, Some(patch.clone())),
            (Method::DELETE, None),
        ] {
            let answer = |id: String| {
                let req = demo
                    .req(method.clone(), &format!("{path}/{id}"), Some(B))
                    .header("x-sentinel-request-id", "req-fixed");
                let req = match &body {
                    Some(b) => req.json(b),
                    None => req,
                };
                demo.send(req)
            };
            let foreign = answer(foreign_id.to_owned()).await;
            let missing = answer(missing_id.clone()).await;
            assert_eq!(
                foreign.0,
                StatusCode::NOT_FOUND,
                "{method} {path}/{foreign_id}"
            );
            assert_eq!(foreign.1["error"]["code"], "RESOURCE_NOT_FOUND");
            // Byte-for-byte the same apart from the id the caller sent.
            let foreign_text = foreign.1.to_string().replace(foreign_id, "ID");
            let missing_text = missing.1.to_string().replace(&missing_id, "ID");
            assert_eq!(foreign_text, missing_text, "{method} {path}");
        }
        // Sub-tenants do not see the parent's objects either (the gateway
        // decides cross-tenant access; the app scopes by the header only).
        assert_eq!(
            demo.get(&format!("{path}/{foreign_id}"), S).await.0,
            StatusCode::NOT_FOUND
        );
        // And the owner's object is untouched.
        let seed = demo_records(app)
            .into_iter()
            .find(|r| r["id"] == foreign_id)
            .unwrap();
        assert_eq!(
            demo.get(&format!("{path}/{foreign_id}"), A).await,
            (StatusCode::OK, seed)
        );
    }
}

#[tokio::test]
async fn crud_round_trip() {
    for (app, path) in CRUD_APPS {
        let demo = Demo::start(app).await;
        // Create: id and tenant_id come from the app, not the body.
        let (status, created) = demo
            .call(
                Method::POST,
                path,
                Some(A),
                Some(json!({"id": "chosen", "tenant_id": B, "name": "Nordic Breeze", "extra": {"x": 1, "y": 2}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{path}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_ne!(id, "chosen");
        assert_eq!(created["tenant_id"], A);
        assert_eq!(created["name"], "Nordic Breeze");

        let item = format!("{path}/{id}");
        assert_eq!(demo.get(&item, A).await, (StatusCode::OK, created.clone()));
        assert!(ids(&demo.get(path, A).await.1).contains(&id.as_str()));
        assert_eq!(demo.get(&item, B).await.0, StatusCode::NOT_FOUND);

        // PATCH merges (null removes), PUT replaces.
        let (status, patched) = demo
            .call(
                Method::PATCH,
                &item,
                Some(A),
                Some(json!({"name": "Nordic Gale", "extra": {"x": null}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(patched["name"], "Nordic Gale");
        assert_eq!(patched["extra"], json!({"y": 2}));
        assert_eq!(demo.get(&item, A).await.1, patched);

        let (status, replaced) = demo
            .call(
                Method::PUT,
                &item,
                Some(A),
                Some(json!({"name": "Nordic Calm", "tenant_id": B})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            replaced,
            json!({"id": id, "tenant_id": A, "name": "Nordic Calm"})
        );

        let (status, deleted) = demo.call(Method::DELETE, &item, Some(A), None).await;
        assert_eq!((status, deleted), (StatusCode::OK, json!({"deleted": id})));
        assert_eq!(demo.get(&item, A).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            demo.call(Method::DELETE, &item, Some(A), None).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn seeded_objects_can_be_updated_and_deleted_by_their_owner() {
    let demo = Demo::start(App::Fleet).await;
    let (status, voy) = demo
        .call(
            Method::PATCH,
            "/fleet/voyages/voy-b1",
            Some(B),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(voy["status"], "completed");
    assert_eq!(voy["customer_ref"], "PL-CUST-7731");
    assert_eq!(
        demo.call(Method::DELETE, "/fleet/voyages/voy-b2", Some(B), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(ids(&demo.get("/fleet/voyages", B).await.1), ["voy-b1"]);
}

#[tokio::test]
async fn bad_bodies_are_refused() {
    let demo = Demo::start(App::Msw).await;
    let post = |body: Vec<u8>| {
        demo.send(
            demo.req(Method::POST, "/msw/vessels", Some(A))
                .header("content-type", "application/json")
                .body(body),
        )
    };
    for bad in [&b"{"[..], b"", b"{\"name\": }", b"\xff\xfe", b"{} trailing"] {
        let (status, body) = post(bad.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(body["error"]["code"], "INVALID_JSON");
    }
    for not_object in ["[]", "42", "\"vessel\"", "null"] {
        let (status, body) = post(not_object.as_bytes().to_vec()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{not_object}");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    }
    // Bad JSON to another tenant's id is still a 404 (nothing to learn).
    let (status, _) = demo
        .send(
            demo.req(Method::PUT, "/msw/vessels/v-a1", Some(B))
                .body("{"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = demo
        .send(
            demo.req(Method::PUT, "/msw/vessels/v-a1", Some(A))
                .body("{"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A JSON object of exactly `len` bytes.
fn object_of_len(len: usize) -> Vec<u8> {
    let overhead = br#"{"pad":""}"#.len();
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(len - overhead)).into_bytes()
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let demo = Demo::start(App::Port).await;
    let at_limit = object_of_len(CRUD_BODY_LIMIT);
    assert_eq!(at_limit.len(), 64 * 1024);
    let (status, _) = demo
        .send(
            demo.req(Method::POST, "/port/port-calls", Some(A))
                .body(at_limit),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let over = object_of_len(CRUD_BODY_LIMIT + 1);
    for (method, path) in [
        (Method::POST, "/port/port-calls"),
        (Method::PATCH, "/port/port-calls/pc-a1"),
    ] {
        let (status, body) = demo
            .send(demo.req(method, path, Some(A)).body(over.clone()))
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(body["error"]["code"], "BODY_TOO_LARGE");
    }
}

#[tokio::test]
async fn oversized_chunked_body_is_413() {
    // No content-length: the limit must hold while reading.
    let addr = start(App::Msw).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /msw/vessels HTTP/1.1\r\nhost: x\r\nx-sentinel-tenant-id: {A}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..5 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn tenant_port_calls_route_lists_the_named_tenant() {
    let demo = Demo::start(App::Port).await;
    // The gateway has already decided the caller (A) may see its sub-tenant S.
    let (status, body) = demo.get(&format!("/port/tenants/{S}/port-calls"), A).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), ["pc-s1", "pc-s2"]);
    let (status, body) = demo.get(&format!("/port/tenants/{B}/port-calls"), B).await;
    assert_eq!(
        (status, ids(&body)),
        (StatusCode::OK, vec!["pc-b1", "pc-b2"])
    );
    assert_eq!(
        demo.get("/port/tenants/nope/port-calls", A).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = demo
        .call(
            Method::GET,
            &format!("/port/tenants/{A}/port-calls"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = demo
        .call(
            Method::POST,
            &format!("/port/tenants/{A}/port-calls"),
            Some(A),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let demo = Demo::start(App::Msw).await;
    for path in [
        "/",
        "/msw",
        "/msw/vesselsX",
        "/msw/vessels/v-a1/extra",
        "/fleet/voyages",
    ] {
        let (status, body) = demo.get(path, A).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
    let resp = demo
        .req(Method::DELETE, "/msw/vessels", Some(A))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET, HEAD, POST");
    let (status, _) = demo
        .call(Method::POST, "/msw/vessels/v-a1", Some(A), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn head_answers_the_get_length_without_a_body() {
    let demo = Demo::start(App::Msw).await;
    let get = demo
        .req(Method::GET, "/msw/vessels", Some(A))
        .send()
        .await
        .unwrap();
    let get_len = get.headers()["content-length"].clone();
    let head = demo
        .req(Method::HEAD, "/msw/vessels", Some(A))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], get_len);
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn echo_shows_what_was_forwarded() {
    let demo = Demo::start(App::Echo).await;
    let (status, body) = demo
        .send(
            demo.req(Method::POST, "/any/path?a=1&b=two", Some(A))
                .header("x-sentinel-roles", "vessel_viewer,ops")
                .header("x-multi", "one")
                .header("x-multi", "two")
                .body("raw body, not JSON"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/any/path");
    assert_eq!(body["query"], "a=1&b=two");
    assert_eq!(body["body"], "raw body, not JSON");
    let headers = &body["headers"];
    assert_eq!(headers["x-sentinel-tenant-id"], A);
    assert_eq!(headers["x-sentinel-roles"], "vessel_viewer,ops");
    assert_eq!(headers["x-multi"], "one, two");
    assert!(headers.get("host").is_some());
    assert!(headers.get("authorization").is_none());

    // Any method, no tenant needed, no query gives "".
    let (status, body) = demo.call(Method::DELETE, "/", None, None).await;
    assert_eq!(
        (status, &body["method"], &body["query"]),
        (StatusCode::OK, &json!("DELETE"), &json!(""))
    );
}

#[tokio::test]
async fn echo_status_and_slow_endpoints() {
    let demo = Demo::start(App::Echo).await;
    for code in [200u16, 201, 400, 404, 418, 429, 500, 502, 503, 504] {
        let (status, body) = demo
            .call(Method::GET, &format!("/status/{code}"), None, None)
            .await;
        assert_eq!(status.as_u16(), code);
        assert_eq!(body["path"], format!("/status/{code}"));
    }
    for bad in [
        "/status/abc",
        "/status/99",
        "/status/600",
        "/status/",
        "/slow/soon",
        "/slow/-1",
    ] {
        let (status, body) = demo.call(Method::GET, bad, None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
    }
    // 204 carries no body and no content-length, by HTTP's rules.
    let resp = demo
        .req(Method::GET, "/status/204", None)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.headers().get("content-length").is_none());

    let started = Instant::now();
    let (status, _) = demo.call(Method::GET, "/slow/300", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let timed_out = demo
        .req(Method::GET, "/slow/2000", None)
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(timed_out.is_timeout());
}

#[tokio::test]
async fn static_1k_answers_the_same_kilobyte() {
    let demo = Demo::start(App::Static1K).await;
    let mut first = None;
    for (method, path) in [
        (Method::GET, "/"),
        (Method::POST, "/anything?x=1"),
        (Method::GET, "/msw/vessels"),
    ] {
        let resp = demo.req(method, path, None).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(
            resp.headers()["content-length"],
            STATIC_BODY_LEN.to_string().as_str()
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len(), STATIC_BODY_LEN);
        serde_json::from_slice::<Value>(&body).unwrap();
        assert_eq!(first.get_or_insert_with(|| body.clone()), &body);
    }
}

#[tokio::test]
async fn garbage_on_the_wire_does_not_take_the_server_down() {
    for app in [App::Msw, App::Echo, App::Static1K] {
        let addr = start(app).await;
        for garbage in [
            &b"\x00\x01\x02\xff\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET /msw/vessels HTTP/1.1\r\ncontent-length: -5\r\n\r\n",
            b"POST /msw/vessels HTTP/1.1\r\ncontent-length: 10\r\n\r\n{",
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(garbage).await.unwrap();
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
        }
        let resp = Client::new()
            .get(format!("http://{addr}/msw/vessels"))
            .header("x-sentinel-tenant-id", A)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{app:?}");
    }
}
