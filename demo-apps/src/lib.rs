//! Demo and test upstream apps (`sentinel-demo-apps`): the MSW, fleet and
//! port services that sit behind the gateway in `sentinel demo` and in
//! integration tests, an echo app that shows exactly what the gateway
//! forwarded, and a fixed 1 KiB responder for the load test.
//!
//! Longer than the 700-line guideline on purpose: one file of test fixtures
//! (four apps, the field-filter lab and the seed data they share), never
//! linked into the gateway library.
//!
//! The apps trust the gateway. They authenticate nobody: every read and write
//! is scoped by the `x-sentinel-tenant-id` request header (missing or not a
//! UUID: `401`), and an object of another tenant answers `404` exactly like a
//! missing one. State lives in memory, one store per [`serve`] call, seeded
//! from the fixed demo data in the `Demo data` section at the end of this file
//! (also tabled in the crate's demo notes).
//!
//! Run one on an ephemeral port:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use sentinel_demo_apps::{serve, App};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(serve(listener, App::Msw));
//! println!("curl -H 'x-sentinel-tenant-id: 11111111-1111-1111-1111-111111111111' http://{addr}/msw/vessels");
//! # Ok(()) }
//! ```
//!
//! Routes (`{id}` is one path segment; a single trailing `/` is ignored):
//!
//! | app | routes |
//! | --- | --- |
//! | [`App::Msw`] | `GET\|HEAD\|POST /msw/vessels`, `GET\|HEAD\|PUT\|PATCH\|DELETE /msw/vessels/{id}` |
//! | [`App::Fleet`] | the same under `/fleet/voyages` |
//! | [`App::Port`] | the same under `/port/port-calls`, plus `GET\|HEAD /port/tenants/{tenant_id}/port-calls` |
//! | [`App::Echo`] | anything; `/status/{code}` answers `code`, `/slow/{ms}` waits first, `/fields-lab/{kind}` answers awkward bodies for the field filter ([`LAB_KINDS`]) |
//! | [`App::Static1K`] | anything: `200` with the same 1024-byte JSON body |
//!
//! CRUD semantics: lists answer `{"data": [...], "count": n}` ordered by id;
//! `POST` answers `201` with the stored object and a `location` header; `PUT`
//! replaces, `PATCH` is a JSON merge patch (RFC 7386, `null` removes a field);
//! `DELETE` answers `200 {"deleted": id}` (not `204`, so every response keeps a
//! JSON body). `id` and `tenant_id` are owned by the app: `POST` generates the
//! id (`v-…`, `voy-…`, `pc-…` followed by 32 hex digits), and values sent in a
//! body for either field are ignored. Bodies must be JSON objects: malformed
//! JSON answers `400 INVALID_JSON`, other JSON `422 VALIDATION_ERROR`, and a
//! body over 64 KiB `413 BODY_TOO_LARGE` (1 MiB for the echo app). Errors use
//! the product's error shape, with `request_id` taken from
//! `x-sentinel-request-id` when the gateway sent one.
//!
//! Every response carries `content-type: application/json` and
//! `content-length`, except `204` and `304` from the echo app's
//! `/status/{code}`, which by HTTP's rules carry no body and no length, and
//! the echo app's `/fields-lab/{kind}` answers, which break these rules on
//! purpose.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use uuid::Uuid;

/// The header the gateway sets to the caller's tenant; the apps scope by it.
pub const TENANT_HEADER: &str = "x-sentinel-tenant-id";
/// The header the gateway sets to its request id; echoed in error bodies.
pub const REQUEST_ID_HEADER: &str = "x-sentinel-request-id";
/// Largest request body the MSW, fleet and port apps accept.
pub const CRUD_BODY_LIMIT: usize = 64 * 1024;
/// Largest request body the echo app accepts (larger than the CRUD apps' so
/// gateway body limits above 64 KiB can be tested through it).
pub const ECHO_BODY_LIMIT: usize = 1024 * 1024;
/// Exact length of the [`App::Static1K`] body.
pub const STATIC_BODY_LEN: usize = 1024;
/// Upper bound on `/slow/{ms}`, so a test cannot park a task for hours.
pub const MAX_SLOW_MS: u64 = 60_000;

/// Which demo app [`serve`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum App {
    /// Ship operations: vessels under `/msw/vessels`.
    Msw,
    /// Fleet management: voyages under `/fleet/voyages`.
    Fleet,
    /// Port operations: port calls under `/port/port-calls`.
    Port,
    /// Answers every request with a JSON description of the request.
    Echo,
    /// Answers every request with the same prebuilt 1024-byte JSON body.
    Static1K,
}

impl App {
    /// The collection path of a CRUD app (`/msw/vessels`, ...); `None` for
    /// the echo and static apps.
    pub fn collection_path(self) -> Option<&'static str> {
        Collection::of(self).map(|c| c.path)
    }
}

/// Serves `app` on `listener` until the task is dropped, one task per
/// connection (HTTP/1.1 with keep-alive).
///
/// Never panics on bad input: malformed requests get an error response or a
/// closed connection. Per-connection accept errors are skipped, and other
/// accept errors (such as running out of file descriptors) are logged and
/// retried after a short pause, so in practice this never returns; the
/// `io::Result` keeps the signature of a server that could.
pub async fn serve(listener: TcpListener, app: App) -> io::Result<()> {
    let handler = Arc::new(Handler::new(app));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::warn!(error = %e, ?app, "demo app: accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small JSON answers: do not let Nagle hold them back.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "demo app: cannot set TCP_NODELAY");
        }
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler.handle(req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "demo app: connection ended with an error");
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

type Reply = Response<Full<Bytes>>;

enum Handler {
    Crud(Crud),
    Echo,
    Static(StaticReply),
}

impl Handler {
    fn new(app: App) -> Self {
        match Collection::of(app) {
            Some(collection) => Handler::Crud(Crud::seeded(collection)),
            None if app == App::Echo => Handler::Echo,
            None => Handler::Static(StaticReply::new()),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        match self {
            Handler::Crud(crud) => crud.handle(req).await,
            Handler::Echo => echo(req).await,
            Handler::Static(reply) => reply.reply(),
        }
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const INTERNAL_ERROR_BODY: &str = r#"{"error":{"code":"INTERNAL_ERROR","message":"internal error","details":{}},"request_id":null}"#;

fn bytes_response(status: StatusCode, body: Bytes) -> Reply {
    let len = body.len();
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    // By HTTP's rules 204 and 304 carry neither a body nor a length.
    if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => bytes_response(status, Bytes::from(body)),
        // Unreachable for a `Value` (its map keys are strings), but never panic.
        Err(_) => bytes_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(INTERNAL_ERROR_BODY.as_bytes()),
        ),
    }
}

/// An error in the product's shape: `{"error": {code, message, details}, "request_id"}`.
fn error(
    status: StatusCode,
    code: &str,
    message: String,
    details: Value,
    request_id: &str,
) -> Reply {
    json_response(
        status,
        &json!({
            "error": {"code": code, "message": message, "details": details},
            "request_id": request_id,
        }),
    )
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned)
}

fn tenant_of(headers: &HeaderMap) -> Option<Uuid> {
    let value = headers.get(TENANT_HEADER)?.to_str().ok()?;
    Uuid::parse_str(value.trim()).ok()
}

/// Why a request body was refused.
enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads a whole body of at most `limit` bytes, refusing early when the
/// declared `content-length` is already over the limit.
async fn read_body(body: Incoming, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

fn body_error(e: BodyError, limit: usize, request_id: &str) -> Reply {
    match e {
        BodyError::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            format!("request body is larger than {limit} bytes"),
            json!({"limit_bytes": limit}),
            request_id,
        ),
        BodyError::Unreadable => error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "request body could not be read".to_owned(),
            json!({}),
            request_id,
        ),
    }
}

fn method_not_allowed(allow: &'static str, request_id: &str) -> Reply {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("method not allowed; allowed: {allow}"),
        json!({}),
        request_id,
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

fn route_not_found(path: &str, request_id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route for `{path}`"),
        json!({}),
        request_id,
    )
}

// ---------------------------------------------------------------------------
// CRUD apps (MSW, fleet, port)
// ---------------------------------------------------------------------------

/// The one collection a CRUD app serves.
#[derive(Clone, Copy)]
struct Collection {
    app: App,
    /// Collection path, without a trailing slash.
    path: &'static str,
    /// Prefix of generated ids.
    id_prefix: &'static str,
    /// Singular noun for messages.
    entity: &'static str,
}

impl Collection {
    fn of(app: App) -> Option<Self> {
        let (path, id_prefix, entity) = match app {
            App::Msw => ("/msw/vessels", "v-", "vessel"),
            App::Fleet => ("/fleet/voyages", "voy-", "voyage"),
            App::Port => ("/port/port-calls", "pc-", "port call"),
            App::Echo | App::Static1K => return None,
        };
        Some(Collection {
            app,
            path,
            id_prefix,
            entity,
        })
    }
}

/// One stored object: its owner and its JSON document (which includes `id`
/// and `tenant_id`).
struct Item {
    tenant: Uuid,
    doc: Map<String, Value>,
}

struct Crud {
    collection: Collection,
    /// Objects of every tenant, by id.
    // INVARIANT: `items[id].doc["id"] == id` and
    // `items[id].doc["tenant_id"] == items[id].tenant`.
    items: Mutex<BTreeMap<String, Item>>,
}

enum CrudRoute<'a> {
    List,
    One(&'a str),
    TenantList(&'a str),
}

const ALLOW_LIST: &str = "GET, HEAD, POST";
const ALLOW_ONE: &str = "GET, HEAD, PUT, PATCH, DELETE";
const ALLOW_READ: &str = "GET, HEAD";

impl Crud {
    fn seeded(collection: Collection) -> Self {
        let items = demo_records(collection.app)
            .into_iter()
            .filter_map(|record| match record {
                Value::Object(doc) => {
                    let id = doc.get("id")?.as_str()?.to_owned();
                    let tenant = Uuid::parse_str(doc.get("tenant_id")?.as_str()?).ok()?;
                    Some((id, Item { tenant, doc }))
                }
                _ => None,
            })
            .collect();
        Crud {
            collection,
            items: Mutex::new(items),
        }
    }

    fn route<'a>(&self, path: &'a str) -> Option<CrudRoute<'a>> {
        let path = match path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed,
            _ => path,
        };
        if path == self.collection.path {
            return Some(CrudRoute::List);
        }
        if let Some(id) = path
            .strip_prefix(self.collection.path)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            return (!id.is_empty() && !id.contains('/')).then_some(CrudRoute::One(id));
        }
        if self.collection.app == App::Port {
            let tenant = path
                .strip_prefix("/port/tenants/")?
                .strip_suffix("/port-calls")?;
            return (!tenant.is_empty() && !tenant.contains('/'))
                .then_some(CrudRoute::TenantList(tenant));
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Item>> {
        // A panic while holding the lock cannot leave a map half-written in a
        // way that matters for a demo store; keep serving.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let (parts, body) = req.into_parts();
        let rid = request_id(&parts.headers);
        let Some(route) = self.route(parts.uri.path()) else {
            return route_not_found(parts.uri.path(), &rid);
        };
        let Some(tenant) = tenant_of(&parts.headers) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "AUTH_REQUIRED",
                format!("missing or malformed `{TENANT_HEADER}` header"),
                json!({}),
                &rid,
            );
        };
        let method = &parts.method;
        match route {
            CrudRoute::List if method == Method::GET || method == Method::HEAD => self.list(tenant),
            CrudRoute::List if method == Method::POST => {
                match self.read_object(body, &parts.headers, &rid).await {
                    Ok(doc) => self.create(tenant, doc),
                    Err(reply) => reply,
                }
            }
            CrudRoute::List => method_not_allowed(ALLOW_LIST, &rid),
            CrudRoute::One(id) if method == Method::GET || method == Method::HEAD => {
                self.get(tenant, id, &rid)
            }
            CrudRoute::One(id) if method == Method::PUT || method == Method::PATCH => {
                // Look the object up first, so a write to a missing or foreign
                // id answers 404 whatever the body is.
                if !self.visible(tenant, id) {
                    return self.not_found(id, &rid);
                }
                match self.read_object(body, &parts.headers, &rid).await {
                    Ok(doc) => self.update(tenant, id, doc, method == Method::PATCH, &rid),
                    Err(reply) => reply,
                }
            }
            CrudRoute::One(id) if method == Method::DELETE => self.delete(tenant, id, &rid),
            CrudRoute::One(_) => method_not_allowed(ALLOW_ONE, &rid),
            CrudRoute::TenantList(path_tenant)
                if method == Method::GET || method == Method::HEAD =>
            {
                // The gateway decided whether the caller may see this tenant.
                match Uuid::parse_str(path_tenant) {
                    Ok(path_tenant) => self.list(path_tenant),
                    Err(_) => error(
                        StatusCode::NOT_FOUND,
                        "RESOURCE_NOT_FOUND",
                        format!("no tenant with id `{path_tenant}`"),
                        json!({}),
                        &rid,
                    ),
                }
            }
            CrudRoute::TenantList(_) => method_not_allowed(ALLOW_READ, &rid),
        }
    }

    async fn read_object(
        &self,
        body: Incoming,
        headers: &HeaderMap,
        rid: &str,
    ) -> Result<Map<String, Value>, Reply> {
        let bytes = read_body(body, headers, CRUD_BODY_LIMIT)
            .await
            .map_err(|e| body_error(e, CRUD_BODY_LIMIT, rid))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(doc)) => Ok(doc),
            Ok(_) => Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
                "request body must be a JSON object".to_owned(),
                json!({"body": "must be a JSON object"}),
                rid,
            )),
            Err(e) => Err(error(
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                format!("request body is not valid JSON: {e}"),
                json!({"line": e.line(), "column": e.column()}),
                rid,
            )),
        }
    }

    fn not_found(&self, id: &str, rid: &str) -> Reply {
        // Same answer for a missing id and another tenant's id.
        error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            format!("no {} with id `{id}`", self.collection.entity),
            json!({}),
            rid,
        )
    }

    fn visible(&self, tenant: Uuid, id: &str) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|item| item.tenant == tenant)
    }

    fn list(&self, tenant: Uuid) -> Reply {
        let data: Vec<Value> = self
            .lock()
            .values()
            .filter(|item| item.tenant == tenant)
            .map(|item| Value::Object(item.doc.clone()))
            .collect();
        json_response(StatusCode::OK, &json!({"count": data.len(), "data": data}))
    }

    fn get(&self, tenant: Uuid, id: &str, rid: &str) -> Reply {
        let doc = self
            .lock()
            .get(id)
            .filter(|item| item.tenant == tenant)
            .map(|item| Value::Object(item.doc.clone()));
        match doc {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => self.not_found(id, rid),
        }
    }

    fn create(&self, tenant: Uuid, mut doc: Map<String, Value>) -> Reply {
        let id = format!("{}{}", self.collection.id_prefix, Uuid::new_v4().simple());
        doc.insert("id".to_owned(), Value::String(id.clone()));
        doc.insert("tenant_id".to_owned(), Value::String(tenant.to_string()));
        let body = Value::Object(doc.clone());
        self.lock().insert(id.clone(), Item { tenant, doc });
        let mut resp = json_response(StatusCode::CREATED, &body);
        if let Ok(location) = HeaderValue::try_from(format!("{}/{id}", self.collection.path)) {
            resp.headers_mut().insert(LOCATION, location);
        }
        resp
    }

    fn update(
        &self,
        tenant: Uuid,
        id: &str,
        body: Map<String, Value>,
        merge: bool,
        rid: &str,
    ) -> Reply {
        let updated = {
            let mut items = self.lock();
            match items.get_mut(id).filter(|item| item.tenant == tenant) {
                // Deleted meanwhile (or never visible): same 404 as always.
                None => None,
                Some(item) => {
                    if merge {
                        merge_patch(&mut item.doc, body);
                    } else {
                        item.doc = body;
                    }
                    item.doc
                        .insert("id".to_owned(), Value::String(id.to_owned()));
                    item.doc
                        .insert("tenant_id".to_owned(), Value::String(tenant.to_string()));
                    Some(Value::Object(item.doc.clone()))
                }
            }
        };
        match updated {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => self.not_found(id, rid),
        }
    }

    fn delete(&self, tenant: Uuid, id: &str, rid: &str) -> Reply {
        let removed = {
            let mut items = self.lock();
            if items.get(id).is_some_and(|item| item.tenant == tenant) {
                items.remove(id)
            } else {
                None
            }
        };
        match removed {
            Some(_) => json_response(StatusCode::OK, &json!({"deleted": id})),
            None => self.not_found(id, rid),
        }
    }
}

/// JSON merge patch (RFC 7386) of `patch` into the object `target`;
/// `id` and `tenant_id` at the top level are left to the caller.
fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge_patch(slot, inner);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Echo app
// ---------------------------------------------------------------------------

/// What `/status/{code}` and `/slow/{ms}` ask for.
enum EchoMode {
    Plain,
    Status(StatusCode),
    Slow(Duration),
    Lab(&'static str),
    BadArgument(&'static str),
}

fn echo_mode(path: &str) -> EchoMode {
    if let Some(kind) = path.strip_prefix("/fields-lab/") {
        return LAB_KINDS
            .iter()
            .find(|k| **k == kind)
            .map_or(EchoMode::BadArgument("lab"), |k| EchoMode::Lab(k));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
            Some(code) => {
                StatusCode::from_u16(code).map_or(EchoMode::BadArgument("status"), EchoMode::Status)
            }
            None => EchoMode::BadArgument("status"),
        };
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        return match ms.parse::<u64>() {
            Ok(ms) => EchoMode::Slow(Duration::from_millis(ms.min(MAX_SLOW_MS))),
            Err(_) => EchoMode::BadArgument("slow"),
        };
    }
    EchoMode::Plain
}

async fn echo(req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let mode = echo_mode(parts.uri.path());
    if let EchoMode::BadArgument(what) = mode {
        let rid = request_id(&parts.headers);
        let expected = match what {
            "status" => "`/status/{code}` takes a status code from 200 to 599",
            "lab" => "unknown `/fields-lab/` answer",
            _ => "`/slow/{ms}` takes a whole number of milliseconds",
        };
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            expected.to_owned(),
            json!({}),
            &rid,
        );
    }
    let body = match read_body(body, &parts.headers, ECHO_BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => return body_error(e, ECHO_BODY_LIMIT, &request_id(&parts.headers)),
    };
    if let EchoMode::Lab(kind) = mode {
        return lab(kind, &parts.headers);
    }
    let status = match mode {
        EchoMode::Status(status) => status,
        EchoMode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
        EchoMode::Plain | EchoMode::BadArgument(_) | EchoMode::Lab(_) => StatusCode::OK,
    };
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return bytes_response(status, Bytes::new());
    }
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            // Repeated headers are joined as HTTP allows: `a, b`.
            Some(Value::String(seen)) => {
                seen.push_str(", ");
                seen.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    json_response(
        status,
        &json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or(""),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }),
    )
}

// ---------------------------------------------------------------------------
// Field-security lab (echo app, `/fields-lab/{kind}`)
// ---------------------------------------------------------------------------

/// The answers of the echo app's `/fields-lab/{kind}`: awkward upstream
/// behaviour for the gateway's field filter. Every one carries the vessel
/// [`LAB_VESSEL`], whose `crew_salary_budget` holds [`LAB_SECRET`].
///
/// | kind | answer |
/// | --- | --- |
/// | `plain` | the list, `content-length` |
/// | `gzip`, `br` | the list, compressed (ignores `accept-encoding`) |
/// | `chunked` | the list, `transfer-encoding: chunked` |
/// | `not-json` | the list's text as `text/plain` |
/// | `broken` | the list cut short (malformed JSON) |
/// | `duplicate` | a vessel with `crew_salary_budget` twice |
/// | `big` | a list of 4 096 vessels (about 600 KiB) |
/// | `error` | `404` with a JSON error body |
/// | `error-entity` | `409` whose body carries the vessel under `data` |
pub const LAB_KINDS: [&str; 10] = [
    "plain",
    "gzip",
    "br",
    "chunked",
    "not-json",
    "broken",
    "duplicate",
    "big",
    "error",
    "error-entity",
];

/// The value of the lab vessel's `crew_salary_budget`: must never reach a
/// caller who may not read that field.
pub const LAB_SECRET: &str = "SECRET-1450000";

/// The lab vessel (tenant A), all three tiers.
pub const LAB_VESSEL: &str = r#"{"id":"v-lab","tenant_id":"11111111-1111-1111-1111-111111111111","name":"Lab Vessel","imo":"9395044","flag":"NO","vessel_type":"container","gross_tonnage":54214,"eco_score":78.5,"crew_count":22,"charter_rate_usd":28500,"crew_salary_budget":"SECRET-1450000"}"#;

fn lab(kind: &'static str, headers: &HeaderMap) -> Reply {
    use pingora::protocols::http::compression::Algorithm;
    let list = format!(r#"{{"data":[{LAB_VESSEL}],"count":1}}"#);
    let mut status = StatusCode::OK;
    let mut content_type = JSON;
    let mut encoding = None;
    let mut chunked = false;
    let body: Vec<u8> = match kind {
        "gzip" | "br" => {
            let algorithm = if kind == "gzip" {
                Algorithm::Gzip
            } else {
                Algorithm::Brotli
            };
            encoding = Some(kind);
            algorithm
                .compressor(5)
                .and_then(|mut c| c.encode(list.as_bytes(), true).ok())
                .map_or_else(Vec::new, |b| b.to_vec())
        }
        "chunked" => {
            chunked = true;
            list.into_bytes()
        }
        "not-json" => {
            content_type = HeaderValue::from_static("text/plain");
            list.into_bytes()
        }
        "broken" => list.as_bytes()[..list.len() - 3].to_vec(),
        "duplicate" => {
            let twice = LAB_VESSEL.replacen(
                r#""name":"#,
                &format!(r#""crew_salary_budget":"{LAB_SECRET}","name":"#),
                1,
            );
            format!(r#"{{"data":[{twice}],"count":1}}"#).into_bytes()
        }
        "big" => {
            let items = vec![LAB_VESSEL; 4096].join(",");
            format!(r#"{{"data":[{items}],"count":4096}}"#).into_bytes()
        }
        "error" => {
            status = StatusCode::NOT_FOUND;
            let rid = request_id(headers);
            format!(r#"{{"error":{{"code":"NOT_FOUND","message":"no such vessel","details":{{}}}},"request_id":"{rid}"}}"#).into_bytes()
        }
        "error-entity" => {
            status = StatusCode::CONFLICT;
            format!(r#"{{"error":{{"code":"CONFLICT","message":"vessel changed","details":{{}}}},"data":[{LAB_VESSEL}]}}"#).into_bytes()
        }
        _ => list.into_bytes(),
    };
    let len = body.len();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    if let Some(e) = encoding {
        resp.headers_mut()
            .insert(http::header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    if chunked {
        resp.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    } else {
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

// ---------------------------------------------------------------------------
// Static 1 KiB app
// ---------------------------------------------------------------------------

/// The load test's upstream answer, built once; each reply clones two
/// reference-counted handles and allocates nothing else.
struct StaticReply {
    body: Bytes,
    content_length: HeaderValue,
}

impl StaticReply {
    fn new() -> Self {
        let body = static_1k_body();
        let content_length = HeaderValue::from(body.len());
        StaticReply {
            body,
            content_length,
        }
    }

    fn reply(&self) -> Reply {
        let mut resp = Response::new(Full::new(self.body.clone()));
        resp.headers_mut().insert(CONTENT_TYPE, JSON);
        resp.headers_mut()
            .insert(CONTENT_LENGTH, self.content_length.clone());
        resp
    }
}

/// A vessel list padded to exactly [`STATIC_BODY_LEN`] bytes.
fn static_1k_body() -> Bytes {
    let mut doc = json!({
        "data": [{
            "id": "v-static",
            "tenant_id": TENANT_A.to_string(),
            "name": "Nordic Aurora",
            "imo": "9395044",
            "flag": "NO",
            "vessel_type": "container",
            "gross_tonnage": 54_214,
            "eco_score": 78.5,
            "ais_last_position": {"lat": 59.9071, "lon": 10.7534},
            "crew_count": 22,
        }],
        "count": 1,
        "padding": "",
    });
    let unpadded = serde_json::to_vec(&doc).map_or(0, |v| v.len());
    if let Some(padding) = doc.get_mut("padding") {
        *padding = Value::String(".".repeat(STATIC_BODY_LEN.saturating_sub(unpadded)));
    }
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Demo data
// ---------------------------------------------------------------------------
//
// Three tenants; S is a sub-tenant of A. Every record has the three tiers of
// the field model, grouped below as core / platform_dynamic / tenant_specific.
// Tenant-specific fields differ per tenant:
//
// | entity    | A (Nordic Shipping)                   | B (Pacific Lines)     | S (Nordic Tankers)     |
// | --------- | ------------------------------------- | --------------------- | ---------------------- |
// | vessel    | charter_rate_usd, crew_salary_budget  | insurance_policy_no   | sire_inspection_due    |
// | voyage    | cargo_value_usd                       | customer_ref          | charterer              |
// | port call | agent_contact                         | pilot_notes           | bunker_order_ref       |

/// A demo tenant the seeded data belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoTenant {
    pub id: Uuid,
    pub code: &'static str,
    pub name: &'static str,
    pub parent: Option<Uuid>,
}

/// Tenant A, `TEST-001`, "Nordic Shipping".
pub const TENANT_A: Uuid = Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111);
/// Tenant B, `TEST-002`, "Pacific Lines".
pub const TENANT_B: Uuid = Uuid::from_u128(0x2222_2222_2222_2222_2222_2222_2222_2222);
/// Tenant S, `TEST-001-SUB`, "Nordic Tankers", a sub-tenant of A.
pub const TENANT_S: Uuid = Uuid::from_u128(0x3333_3333_3333_3333_3333_3333_3333_3333);

/// The tenants of the demo data.
pub const DEMO_TENANTS: [DemoTenant; 3] = [
    DemoTenant {
        id: TENANT_A,
        code: "TEST-001",
        name: "Nordic Shipping",
        parent: None,
    },
    DemoTenant {
        id: TENANT_B,
        code: "TEST-002",
        name: "Pacific Lines",
        parent: None,
    },
    DemoTenant {
        id: TENANT_S,
        code: "TEST-001-SUB",
        name: "Nordic Tankers",
        parent: Some(TENANT_A),
    },
];

/// The seed records of a CRUD app, as JSON objects (empty for the echo and
/// static apps). Every [`serve`] call starts from a fresh copy.
pub fn demo_records(app: App) -> Vec<Value> {
    match app {
        App::Msw => vessels(),
        App::Fleet => voyages(),
        App::Port => port_calls(),
        App::Echo | App::Static1K => Vec::new(),
    }
}

const A: &str = "11111111-1111-1111-1111-111111111111";
const B: &str = "22222222-2222-2222-2222-222222222222";
const S: &str = "33333333-3333-3333-3333-333333333333";

fn vessels() -> Vec<Value> {
    vec![
        // Tenant A: Nordic Shipping
        json!({
            "id": "v-a1", "tenant_id": A, "name": "Nordic Aurora", "imo": "9395044", "flag": "NO",
            "vessel_type": "container", "gross_tonnage": 54_214,
            "eco_score": 78.5, "ais_last_position": {"lat": 59.9071, "lon": 10.7534}, "crew_count": 22,
            "charter_rate_usd": 28_500, "crew_salary_budget": 1_450_000,
        }),
        json!({
            "id": "v-a2", "tenant_id": A, "name": "Nordic Fjord", "imo": "9421087", "flag": "NO",
            "vessel_type": "bulk_carrier", "gross_tonnage": 43_012,
            "eco_score": 71.2, "ais_last_position": {"lat": 53.5461, "lon": 9.9661}, "crew_count": 19,
            "charter_rate_usd": 17_250, "crew_salary_budget": 1_120_000,
        }),
        json!({
            "id": "v-a3", "tenant_id": A, "name": "Nordic Star", "imo": "9512343", "flag": "DK",
            "vessel_type": "ro_ro", "gross_tonnage": 25_890,
            "eco_score": 83.0, "ais_last_position": {"lat": 55.6867, "lon": 12.6009}, "crew_count": 16,
            "charter_rate_usd": 21_800, "crew_salary_budget": 980_000,
        }),
        // Tenant B: Pacific Lines
        json!({
            "id": "v-b1", "tenant_id": B, "name": "Pacific Pearl", "imo": "9634567", "flag": "SG",
            "vessel_type": "container", "gross_tonnage": 94_511,
            "eco_score": 66.4, "ais_last_position": {"lat": 1.2644, "lon": 103.8222}, "crew_count": 24,
            "insurance_policy_no": "PL-HM-2026-00481",
        }),
        json!({
            "id": "v-b2", "tenant_id": B, "name": "Pacific Horizon", "imo": "9701231", "flag": "PA",
            "vessel_type": "container", "gross_tonnage": 71_786,
            "eco_score": 74.9, "ais_last_position": {"lat": 33.7395, "lon": -118.2610}, "crew_count": 21,
            "insurance_policy_no": "PL-HM-2026-00522",
        }),
        // Tenant S: Nordic Tankers (sub-tenant of A)
        json!({
            "id": "v-s1", "tenant_id": S, "name": "Nordic Crude", "imo": "9456783", "flag": "MT",
            "vessel_type": "tanker", "gross_tonnage": 61_341,
            "eco_score": 62.7, "ais_last_position": {"lat": 51.8850, "lon": 4.2867}, "crew_count": 25,
            "sire_inspection_due": "2027-03-15",
        }),
        json!({
            "id": "v-s2", "tenant_id": S, "name": "Nordic Naphtha", "imo": "9567893", "flag": "MT",
            "vessel_type": "tanker", "gross_tonnage": 29_733,
            "eco_score": 69.1, "ais_last_position": {"lat": 57.6886, "lon": 11.8440}, "crew_count": 20,
            "sire_inspection_due": "2026-12-01",
        }),
    ]
}

fn voyages() -> Vec<Value> {
    vec![
        // Tenant A: Nordic Shipping
        json!({
            "id": "voy-a1", "tenant_id": A, "vessel_id": "v-a1", "origin": "NOOSL", "destination": "DEHAM",
            "departure": "2026-11-18T06:00:00Z", "status": "underway",
            "eta_confidence": 0.92, "fuel_estimate_t": 148.5,
            "cargo_value_usd": 18_400_000,
        }),
        json!({
            "id": "voy-a2", "tenant_id": A, "vessel_id": "v-a2", "origin": "DEHAM", "destination": "NLRTM",
            "departure": "2026-11-25T14:30:00Z", "status": "planned",
            "eta_confidence": 0.81, "fuel_estimate_t": 96.0,
            "cargo_value_usd": 7_250_000,
        }),
        // Tenant B: Pacific Lines
        json!({
            "id": "voy-b1", "tenant_id": B, "vessel_id": "v-b1", "origin": "SGSIN", "destination": "CNSHA",
            "departure": "2026-11-15T22:00:00Z", "status": "underway",
            "eta_confidence": 0.88, "fuel_estimate_t": 412.3,
            "customer_ref": "PL-CUST-7731",
        }),
        json!({
            "id": "voy-b2", "tenant_id": B, "vessel_id": "v-b2", "origin": "CNSHA", "destination": "USLAX",
            "departure": "2026-10-02T08:00:00Z", "status": "completed",
            "eta_confidence": 1.0, "fuel_estimate_t": 1_287.9,
            "customer_ref": "PL-CUST-7604",
        }),
        // Tenant S: Nordic Tankers (sub-tenant of A)
        json!({
            "id": "voy-s1", "tenant_id": S, "vessel_id": "v-s1", "origin": "NLRTM", "destination": "SEGOT",
            "departure": "2026-11-20T03:15:00Z", "status": "underway",
            "eta_confidence": 0.86, "fuel_estimate_t": 122.4,
            "charterer": "Baltic Energy Trading AS",
        }),
        json!({
            "id": "voy-s2", "tenant_id": S, "vessel_id": "v-s2", "origin": "SEGOT", "destination": "NOOSL",
            "departure": "2026-12-03T10:00:00Z", "status": "planned",
            "eta_confidence": 0.74, "fuel_estimate_t": 58.7,
            "charterer": "Skagerrak Chemicals AB",
        }),
    ]
}

fn port_calls() -> Vec<Value> {
    vec![
        // Tenant A: Nordic Shipping
        json!({
            "id": "pc-a1", "tenant_id": A, "vessel_id": "v-a1", "port_code": "DEHAM",
            "eta": "2026-11-20T04:00:00Z", "etd": "2026-11-21T18:00:00Z", "berth": "CTA-3",
            "congestion_index": 0.42,
            "agent_contact": "Hanse Port Agency, +49 40 555 0142, ops@hanse-agency.example",
        }),
        json!({
            "id": "pc-a2", "tenant_id": A, "vessel_id": "v-a2", "port_code": "NLRTM",
            "eta": "2026-11-27T09:00:00Z", "etd": "2026-11-28T20:00:00Z", "berth": "Maasvlakte-EMO-2",
            "congestion_index": 0.67,
            "agent_contact": "Maas Shipping Services, +31 10 555 0199, desk@maas-ss.example",
        }),
        // Tenant B: Pacific Lines
        json!({
            "id": "pc-b1", "tenant_id": B, "vessel_id": "v-b1", "port_code": "CNSHA",
            "eta": "2026-11-21T12:00:00Z", "etd": "2026-11-23T06:00:00Z", "berth": "Yangshan-Ph4-B07",
            "congestion_index": 0.78,
            "pilot_notes": "Board at Yangshan pilot station B; strong ebb set to the east after 14:00",
        }),
        json!({
            "id": "pc-b2", "tenant_id": B, "vessel_id": "v-b2", "port_code": "USLAX",
            "eta": "2026-10-16T15:00:00Z", "etd": "2026-10-18T02:00:00Z", "berth": "Pier-400",
            "congestion_index": 0.35,
            "pilot_notes": "Two tugs required inside the breakwater; fog advisory in effect",
        }),
        // Tenant S: Nordic Tankers (sub-tenant of A)
        json!({
            "id": "pc-s1", "tenant_id": S, "vessel_id": "v-s1", "port_code": "SEGOT",
            "eta": "2026-11-22T07:00:00Z", "etd": "2026-11-23T15:00:00Z", "berth": "Skarvik-Oil-521",
            "congestion_index": 0.21,
            "bunker_order_ref": "NT-BNK-2026-118",
        }),
        json!({
            "id": "pc-s2", "tenant_id": S, "vessel_id": "v-s2", "port_code": "NOOSL",
            "eta": "2026-12-05T11:00:00Z", "etd": "2026-12-06T09:00:00Z", "berth": "Sjursoya-Tank-2",
            "congestion_index": 0.18,
            "bunker_order_ref": "NT-BNK-2026-131",
        }),
    ]
}

/// Starts the MSW, fleet and port apps on loopback ports, on their own
/// thread and runtime (`sentinel demo`); returns their addresses in that order.
pub fn start() -> io::Result<[std::net::SocketAddr; 3]> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.set_nonblocking(true)?;
        listeners.push(l);
    }
    let addrs = [
        listeners[0].local_addr()?,
        listeners[1].local_addr()?,
        listeners[2].local_addr()?,
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("demo-apps")
        .build()?;
    std::thread::Builder::new()
        .name("demo-apps".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for (l, app) in listeners.into_iter().zip([App::Msw, App::Fleet, App::Port]) {
                    match TcpListener::from_std(l) {
                        Ok(l) => tasks.push(tokio::spawn(serve(l, app))),
                        Err(e) => tracing::error!(error = %e, "demo app listener"),
                    }
                }
                for t in tasks {
                    let _ = t.await;
                }
            })
        })?;
    Ok(addrs)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
mod tests {
    use super::*;

    #[test]
    fn static_body_is_exactly_1k_of_json() {
        let body = static_1k_body();
        assert_eq!(body.len(), STATIC_BODY_LEN);
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
    }

    #[test]
    fn seed_records_are_well_formed() {
        assert_eq!(
            (A, B, S),
            (
                &*TENANT_A.to_string(),
                &*TENANT_B.to_string(),
                &*TENANT_S.to_string()
            )
        );
        for app in [App::Msw, App::Fleet, App::Port] {
            let records = demo_records(app);
            let crud = Crud::seeded(Collection::of(app).unwrap());
            assert_eq!(
                crud.lock().len(),
                records.len(),
                "{app:?}: a record has no id or tenant"
            );
            for tenant in DEMO_TENANTS {
                let n = crud
                    .lock()
                    .values()
                    .filter(|i| i.tenant == tenant.id)
                    .count();
                assert!(
                    (2..=3).contains(&n),
                    "{app:?}: {} has {n} records",
                    tenant.code
                );
            }
        }
    }

    #[test]
    fn seed_imo_numbers_have_valid_check_digits() {
        for vessel in vessels() {
            let imo = vessel["imo"].as_str().unwrap();
            let digits: Vec<u32> = imo.chars().map(|c| c.to_digit(10).unwrap()).collect();
            let sum: u32 = digits[..6]
                .iter()
                .zip((2..=7).rev())
                .map(|(d, w)| d * w)
                .sum();
            assert_eq!(sum % 10, digits[6], "IMO {imo}");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"a": "z", "c": {"f": null}, "n": [1]})
            .as_object()
            .unwrap()
            .clone();
        merge_patch(&mut target, patch);
        assert_eq!(
            Value::Object(target),
            json!({"a": "z", "c": {"d": "e"}, "n": [1]})
        );
    }
}
