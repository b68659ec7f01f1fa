//! The OpenAPI 3.1 document (`/api/v1/openapi.json`) and a browsable page
//! (`/api/v1/docs`), generated from the routes themselves: every route is
//! registered with its documentation ([`routes::Routes`]), which names the
//! scope it needs (`x-required-scope`), its body and its answers.

use axum::response::IntoResponse;
use serde_json::{json, Map, Value};

pub mod routes;

use routes::{Answer, Op};
use std::sync::OnceLock;

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("Error")}}
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                    "message": {"type": "string"},
                    "details": {"type": "object", "description": "for VALIDATION_ERROR: field name to a list of messages"}
                }
            },
            "request_id": {"type": "string"}
        }
    })
}

/// The OpenAPI operation object of one route.
fn operation(op: &Op) -> Value {
    let d = &op.doc;
    let params: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if name == "code" || name == "request_id" {
                json!({"type": "string"})
            } else if name == "sha256" {
                json!({"type": "string", "pattern": "^[0-9a-f]{64}$"})
            } else {
                json!({"type": "string", "format": "uuid"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    let mut responses = Map::new();
    match &d.answer {
        Answer::Json(status, schema) => {
            let desc = if *status == 201 { "created" } else { "ok" };
            responses.insert(
                status.to_string(),
                json!({"description": desc, "content": {"application/json": {"schema": schema}}}),
            );
        }
        Answer::NoContent => {
            responses.insert("204".to_owned(), json!({"description": "done"}));
        }
        Answer::Other(media) => {
            responses.insert(
                "200".to_owned(),
                json!({"description": "ok", "content": {*media: {"schema": {"type": "string"}}}}),
            );
        }
    }
    responses.insert(
        "422".to_owned(),
        error_response("VALIDATION_ERROR, with per-field details"),
    );
    if d.scope != "none" {
        responses.insert(
            "401".to_owned(),
            error_response("AUTH_REQUIRED, AUTH_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED"),
        );
        responses.insert(
            "403".to_owned(),
            error_response("PERMISSION_DENIED, ACCOUNT_LOCKED, TENANT_SUSPENDED"),
        );
    }
    if !params.is_empty() {
        responses.insert(
            "404".to_owned(),
            error_response("RESOURCE_NOT_FOUND (also for another tenant's object)"),
        );
    }
    for (status, desc) in &d.errors {
        responses.insert(status.to_string(), error_response(desc));
    }
    let tag = op
        .path
        .strip_prefix("/api/v1/")
        .and_then(|p| p.split('/').next())
        .unwrap_or("operations");
    let mut out = json!({
        "summary": d.summary,
        "tags": [tag],
        "parameters": params,
        "responses": responses,
        "x-required-scope": d.scope,
    });
    if d.scope != "none" {
        out["security"] = json!([{"bearer": []}]);
    }
    if let Some(media) = d.raw_body {
        out["requestBody"] = json!({
            "required": true,
            "content": {media: {"schema": {"type": "string", "contentMediaType": media}}}
        });
    }
    if let Some((name, required)) = &d.body {
        out["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema_ref(name)}}
        });
    }
    out
}

/// The document of these operations.
pub fn document_of(ops: &[Op]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut schemas: Map<String, Value> = Map::new();
    schemas.insert("Error".to_owned(), error_schema());
    for op in ops {
        for (name, schema) in &op.doc.schemas {
            schemas.insert(name.clone(), schema.clone());
        }
        let entry = paths.entry(op.path.clone()).or_insert_with(|| json!({}));
        entry[op.method.to_lowercase()] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sentinel admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tenants, principals and policy of the Sentinel gateway. Every endpoint names the scope it needs in `x-required-scope`. `X-Tenant-ID` selects the tenant acted on (platform superadmins: any; others: a direct sub-tenant)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}

/// The document of every route the app serves ([`crate::all_routes`]).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| document_of(&crate::all_routes().into_parts().1))
}

pub async fn openapi_json() -> impl IntoResponse {
    axum::Json(document().clone())
}

/// The ReDoc page; Redoc comes from the console build, never a CDN.
pub async fn docs_page() -> axum::response::Response {
    crate::console::docs_page()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(schemas.contains_key(&name), "unresolved schema `{name}`");
        }
        assert_eq!(
            doc["paths"]["/api/v1/users"]["post"]["x-required-scope"],
            "user:admin"
        );
        assert!(doc["paths"]["/api/v1/users/{id}"]["patch"]["requestBody"].is_object());
    }

    #[test]
    fn every_route_is_documented_once_with_a_scope_that_exists() {
        let (_, ops) = crate::all_routes().into_parts();
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for op in &ops {
            assert!(
                seen.insert((op.method, op.path.clone())),
                "{} {} registered twice",
                op.method,
                op.path
            );
            let entry = &doc["paths"][&op.path][op.method.to_lowercase()];
            assert_eq!(
                entry["x-required-scope"], op.doc.scope,
                "{} {}",
                op.method, op.path
            );
            let scope = op.doc.scope;
            assert!(
                scope == "none"
                    || scope == "authenticated"
                    || crate::scopes::parse(scope).is_some(),
                "{} {}: `{scope}` is not a scope",
                op.method,
                op.path
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, ops.len());
        assert!(ops.len() > 80);
    }
}
