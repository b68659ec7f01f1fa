//! A router that documents itself. Every route of the admin API is
//! registered through [`Routes`] together with its [`Doc`] (scope, summary,
//! request body, answers), and the OpenAPI document is generated from those
//! registrations: a route cannot be served without being documented, and
//! the document names no route that is not served.

use crate::state::AppState;
use axum::handler::Handler;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use serde_json::{json, Value};

/// What the successful answer of an operation is.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `status` with a JSON body of this schema.
    Json(u16, Value),
    /// `204 No Content`.
    NoContent,
    /// `200` with a non-JSON body of this media type.
    Other(&'static str),
}

/// The documentation of one operation.
#[derive(Debug, Clone)]
pub struct Doc {
    /// `none` (public), `authenticated` (any valid token) or `area:level`.
    pub scope: &'static str,
    pub summary: &'static str,
    /// Request body schema name and whether it is required.
    pub body: Option<(String, bool)>,
    /// A required request body that is not JSON: its media type.
    pub raw_body: Option<&'static str>,
    pub answer: Answer,
    /// Statuses beyond the ones every operation of its kind has.
    pub errors: Vec<(u16, &'static str)>,
    /// Component schemas the operation references (name, schema).
    pub schemas: Vec<(String, Value)>,
}

/// Starts the documentation of an operation: `200` with a JSON object.
pub fn doc(scope: &'static str, summary: &'static str) -> Doc {
    Doc {
        scope,
        summary,
        body: None,
        raw_body: None,
        answer: Answer::Json(200, json!({"type": "object"})),
        errors: Vec::new(),
        schemas: Vec::new(),
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

impl Doc {
    /// Registers `T` (and the schemas it refers to) and returns its name.
    fn with<T: utoipa::ToSchema>(&mut self) -> String {
        let name = T::name().into_owned();
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        for (n, s) in nested {
            self.schemas
                .push((n, serde_json::to_value(s).unwrap_or(Value::Null)));
        }
        self.schemas.push((
            name.clone(),
            serde_json::to_value(T::schema()).unwrap_or(Value::Null),
        ));
        name
    }

    /// A required JSON request body.
    pub fn body<T: utoipa::ToSchema>(mut self) -> Self {
        let n = self.with::<T>();
        self.body = Some((n, true));
        self
    }

    /// An optional JSON request body.
    pub fn optional_body<T: utoipa::ToSchema>(mut self) -> Self {
        let n = self.with::<T>();
        self.body = Some((n, false));
        self
    }

    /// A required request body of this (non-JSON) media type, e.g. a file.
    pub fn raw_body(mut self, media_type: &'static str) -> Self {
        self.raw_body = Some(media_type);
        self
    }

    /// `200` with a `T`.
    pub fn ok<T: utoipa::ToSchema>(mut self) -> Self {
        let n = self.with::<T>();
        self.answer = Answer::Json(200, schema_ref(&n));
        self
    }

    /// `201` with the created `T`.
    pub fn created<T: utoipa::ToSchema>(mut self) -> Self {
        let n = self.with::<T>();
        self.answer = Answer::Json(201, schema_ref(&n));
        self
    }

    /// `200` with one page of `T`s.
    pub fn list<T: utoipa::ToSchema>(mut self) -> Self {
        let n = self.with::<T>();
        self.answer = Answer::Json(
            200,
            json!({
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": schema_ref(&n)},
                    "next_cursor": {"type": ["string", "null"]},
                    "limit": {"type": "integer"}
                }
            }),
        );
        self
    }

    /// `200` with a JSON body of this (inline) schema.
    pub fn json(mut self, schema: Value) -> Self {
        self.answer = Answer::Json(200, schema);
        self
    }

    /// `204 No Content`.
    pub fn no_content(mut self) -> Self {
        self.answer = Answer::NoContent;
        self
    }

    /// `200` with a body of this media type.
    pub fn media(mut self, media_type: &'static str) -> Self {
        self.answer = Answer::Other(media_type);
        self
    }

    /// A component schema written by hand (for answers built as JSON values).
    pub fn component(mut self, name: &str, schema: Value) -> Self {
        self.schemas.push((name.to_owned(), schema));
        self
    }

    /// One more error status this operation can answer.
    pub fn error(mut self, status: u16, description: &'static str) -> Self {
        self.errors.push((status, description));
        self
    }
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Op {
    pub method: &'static str,
    /// The whole path, axum's `{param}` syntax (the same as OpenAPI's).
    pub path: String,
    pub doc: Doc,
}

/// An axum router and the documentation of every route it serves.
pub struct Routes {
    router: Router<AppState>,
    ops: Vec<Op>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            ops: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &str,
        m: MethodRouter<AppState>,
        doc: Doc,
    ) -> Self {
        self.router = self.router.route(path, m);
        self.ops.push(Op {
            method,
            path: path.to_owned(),
            doc,
        });
        self
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H, doc: Doc) -> Self {
        self.add("GET", path, get(h), doc)
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H, doc: Doc) -> Self {
        self.add("POST", path, post(h), doc)
    }

    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H, doc: Doc) -> Self {
        self.add("PATCH", path, patch(h), doc)
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H, doc: Doc) -> Self {
        self.add("DELETE", path, delete(h), doc)
    }

    /// Serves `inner` under `prefix` (`/roles` + `/` is `/roles`).
    pub fn nest(mut self, prefix: &str, inner: Routes) -> Self {
        self.router = self.router.nest(prefix, inner.router);
        self.ops.extend(inner.ops.into_iter().map(|mut op| {
            op.path = if op.path == "/" {
                prefix.to_owned()
            } else {
                format!("{prefix}{}", op.path)
            };
            op
        }));
        self
    }

    /// The router and the operations it serves.
    pub fn into_parts(self) -> (Router<AppState>, Vec<Op>) {
        (self.router, self.ops)
    }
}
