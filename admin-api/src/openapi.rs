//! The OpenAPI 3.1 document (`/api/v1/openapi.json`) and a browsable page
//! (`/api/v1/docs`). The paths come from [`ENDPOINTS`], the table that also
//! documents the scope each endpoint needs.

use axum::response::IntoResponse;
use serde_json::{json, Map, Value};

/// (method, path, scope needed, summary).
pub const ENDPOINTS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/api/v1/auth/login",
        "none",
        "Log in with email, password and tenant; returns access and refresh tokens",
    ),
    (
        "POST",
        "/api/v1/auth/refresh",
        "none",
        "Rotate a refresh token (reuse revokes the whole family)",
    ),
    (
        "POST",
        "/api/v1/auth/logout",
        "authenticated",
        "Revoke the access token (jti blacklist) and optionally the refresh family",
    ),
    (
        "POST",
        "/api/v1/auth/token",
        "none",
        "Exchange a service-account API key for an access token",
    ),
    (
        "GET",
        "/api/v1/auth/validate",
        "authenticated",
        "Whether the presented token is valid now",
    ),
    (
        "GET",
        "/api/v1/auth/me/tokens",
        "authenticated",
        "The caller's live sessions (refresh-token families)",
    ),
    (
        "DELETE",
        "/api/v1/auth/me/tokens/{family_id}",
        "authenticated",
        "End one of the caller's sessions",
    ),
    (
        "GET",
        "/api/v1/auth/me",
        "authenticated",
        "The caller: tenant, roles, scopes",
    ),
    (
        "POST",
        "/api/v1/tenants",
        "tenant:admin",
        "Create a tenant (root tenants: platform superadmin only)",
    ),
    (
        "GET",
        "/api/v1/tenants",
        "tenant:read",
        "List tenants (filters: status, type, parent_id; sort: created_at, name, code)",
    ),
    ("GET", "/api/v1/tenants/{id}", "tenant:read", "Get a tenant"),
    (
        "PATCH",
        "/api/v1/tenants/{id}",
        "tenant:write",
        "Update name/settings (status: tenant:admin)",
    ),
    (
        "DELETE",
        "/api/v1/tenants/{id}",
        "tenant:admin",
        "Delete a tenant without sub-tenants",
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/sub-tenants",
        "tenant:admin",
        "Create a sub-tenant",
    ),
    (
        "GET",
        "/api/v1/tenants/{id}/hierarchy",
        "tenant:read",
        "Ancestors and descendants of a tenant",
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/activate",
        "tenant:admin",
        "Set status active",
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/deactivate",
        "tenant:admin",
        "Set status inactive",
    ),
    (
        "GET",
        "/api/v1/tenants/code/{code}",
        "tenant:read",
        "Get a tenant by code",
    ),
    (
        "POST",
        "/api/v1/users",
        "user:admin",
        "Create a user (optional password, roles, groups)",
    ),
    (
        "GET",
        "/api/v1/users",
        "user:read",
        "List users (filters: email, name, is_active, role_id, group_id)",
    ),
    (
        "POST",
        "/api/v1/users/bulk",
        "user:admin",
        "Activate, deactivate, lock, unlock or delete many users",
    ),
    (
        "GET",
        "/api/v1/users/{id}",
        "user:read",
        "Get a user with roles and groups",
    ),
    ("PATCH", "/api/v1/users/{id}", "user:write", "Update a user"),
    (
        "DELETE",
        "/api/v1/users/{id}",
        "user:admin",
        "Delete a user",
    ),
    (
        "GET",
        "/api/v1/users/{id}/permissions",
        "user:read",
        "Effective roles, scopes and permissions (self: authenticated)",
    ),
    (
        "POST",
        "/api/v1/users/{id}/change-password",
        "user:write",
        "Change a password (self: current password required)",
    ),
    (
        "POST",
        "/api/v1/users/{id}/reset-password",
        "user:admin",
        "Set a new password",
    ),
    (
        "POST",
        "/api/v1/users/{id}/lock",
        "user:admin",
        "Lock an account until unlocked",
    ),
    (
        "POST",
        "/api/v1/users/{id}/unlock",
        "user:admin",
        "Unlock an account and reset failed logins",
    ),
    (
        "POST",
        "/api/v1/users/{id}/roles",
        "role:write",
        "Assign a role (optional validity window)",
    ),
    (
        "DELETE",
        "/api/v1/users/{id}/roles/{role_id}",
        "role:write",
        "Remove a role",
    ),
    (
        "POST",
        "/api/v1/service-accounts",
        "service_account:admin",
        "Create a service account; the API key is shown once",
    ),
    (
        "GET",
        "/api/v1/service-accounts",
        "service_account:read",
        "List service accounts",
    ),
    (
        "GET",
        "/api/v1/service-accounts/{id}",
        "service_account:read",
        "Get a service account",
    ),
    (
        "PATCH",
        "/api/v1/service-accounts/{id}",
        "service_account:write",
        "Update a service account",
    ),
    (
        "DELETE",
        "/api/v1/service-accounts/{id}",
        "service_account:admin",
        "Delete a service account",
    ),
    (
        "POST",
        "/api/v1/service-accounts/{id}/rotate-credentials",
        "service_account:admin",
        "New API key (shown once); the old one stops working",
    ),
    (
        "GET",
        "/api/v1/service-accounts/{id}/validate",
        "service_account:admin",
        "Whether the credentials work now, and why not",
    ),
    (
        "POST",
        "/api/v1/roles",
        "role:admin",
        "Create a role (scopes, parent, permissions)",
    ),
    ("GET", "/api/v1/roles", "role:read", "List roles"),
    (
        "GET",
        "/api/v1/roles/{id}",
        "role:read",
        "Get a role with permission ids and inherited scopes",
    ),
    (
        "PATCH",
        "/api/v1/roles/{id}",
        "role:write",
        "Update a role (adding scopes: role:admin; cycles refused)",
    ),
    (
        "DELETE",
        "/api/v1/roles/{id}",
        "role:admin",
        "Delete a role",
    ),
    (
        "GET",
        "/api/v1/roles/{id}/hierarchy",
        "role:read",
        "Ancestors and descendants of a role",
    ),
    (
        "POST",
        "/api/v1/roles/{id}/assign",
        "role:write",
        "Assign the role to users",
    ),
    (
        "DELETE",
        "/api/v1/roles/{id}/assign/{user_id}",
        "role:write",
        "Remove the role from a user",
    ),
    (
        "GET",
        "/api/v1/roles/{id}/permissions",
        "role:read",
        "The role's own permissions",
    ),
    (
        "POST",
        "/api/v1/roles/{id}/permissions",
        "role:write",
        "Attach permissions",
    ),
    (
        "DELETE",
        "/api/v1/roles/{id}/permissions/{permission_id}",
        "role:write",
        "Detach a permission",
    ),
    ("POST", "/api/v1/groups", "group:admin", "Create a group"),
    ("GET", "/api/v1/groups", "group:read", "List groups"),
    ("GET", "/api/v1/groups/{id}", "group:read", "Get a group"),
    (
        "PATCH",
        "/api/v1/groups/{id}",
        "group:write",
        "Update a group",
    ),
    (
        "DELETE",
        "/api/v1/groups/{id}",
        "group:admin",
        "Delete a group",
    ),
    (
        "GET",
        "/api/v1/groups/{id}/members",
        "group:read",
        "List members",
    ),
    (
        "POST",
        "/api/v1/groups/{id}/members",
        "group:write",
        "Add members",
    ),
    (
        "DELETE",
        "/api/v1/groups/{id}/members/{user_id}",
        "group:write",
        "Remove a member",
    ),
    (
        "GET",
        "/api/v1/groups/{id}/roles",
        "group:read",
        "The group's roles and the scopes they carry",
    ),
    (
        "POST",
        "/api/v1/groups/{id}/roles",
        "group:write",
        "Give the group roles (also needs role:write)",
    ),
    (
        "DELETE",
        "/api/v1/groups/{id}/roles/{role_id}",
        "group:write",
        "Take a role from the group",
    ),
    (
        "POST",
        "/api/v1/permissions",
        "permission:admin",
        "Create a permission (validated by the shared compiler)",
    ),
    (
        "GET",
        "/api/v1/permissions",
        "permission:read",
        "List permissions (filters: name, resource_type, effect, is_active)",
    ),
    (
        "POST",
        "/api/v1/permissions/check",
        "authenticated",
        "Decide a request with the shared evaluator (other principals: permission:read)",
    ),
    (
        "GET",
        "/api/v1/permissions/{id}",
        "permission:read",
        "Get a permission",
    ),
    (
        "PATCH",
        "/api/v1/permissions/{id}",
        "permission:write",
        "Update a permission",
    ),
    (
        "DELETE",
        "/api/v1/permissions/{id}",
        "permission:admin",
        "Delete a permission",
    ),
    (
        "POST",
        "/api/v1/resources",
        "resource:admin",
        "Create a resource",
    ),
    (
        "GET",
        "/api/v1/resources",
        "resource:read",
        "List resources (filters: resource_type, parent_id, external_id, name)",
    ),
    (
        "GET",
        "/api/v1/resources/{id}",
        "resource:read",
        "Get a resource",
    ),
    (
        "PATCH",
        "/api/v1/resources/{id}",
        "resource:write",
        "Update a resource (cycles refused)",
    ),
    (
        "DELETE",
        "/api/v1/resources/{id}",
        "resource:admin",
        "Delete a resource without children",
    ),
    (
        "GET",
        "/api/v1/resources/{id}/children",
        "resource:read",
        "Direct children",
    ),
    (
        "POST",
        "/api/v1/field-definitions",
        "field_definition:admin",
        "Define a field (core/platform_dynamic: platform superadmin)",
    ),
    (
        "GET",
        "/api/v1/field-definitions",
        "field_definition:read",
        "List platform-wide and own fields (filters: entity_type, tier, sensitivity)",
    ),
    (
        "GET",
        "/api/v1/field-definitions/{id}",
        "field_definition:read",
        "Get a field definition",
    ),
    (
        "PATCH",
        "/api/v1/field-definitions/{id}",
        "field_definition:write",
        "Update a field definition",
    ),
    (
        "DELETE",
        "/api/v1/field-definitions/{id}",
        "field_definition:admin",
        "Delete a field definition",
    ),
    (
        "POST",
        "/api/v1/navigation",
        "navigation:admin",
        "Create a menu item",
    ),
    (
        "GET",
        "/api/v1/navigation",
        "navigation:read",
        "List menu items",
    ),
    (
        "GET",
        "/api/v1/navigation/menu",
        "authenticated",
        "The caller's menu, filtered by permission",
    ),
    (
        "GET",
        "/api/v1/navigation/{id}",
        "navigation:read",
        "Get a menu item",
    ),
    (
        "PATCH",
        "/api/v1/navigation/{id}",
        "navigation:write",
        "Update a menu item",
    ),
    (
        "DELETE",
        "/api/v1/navigation/{id}",
        "navigation:admin",
        "Delete a menu item (and its children)",
    ),
    (
        "GET",
        "/api/v1/snapshots/latest",
        "snapshot:read",
        "The latest signed policy snapshot as a bundle: signature, manifest, and the parts first published after ?since= (ETag, If-None-Match, ?wait= long-poll; platform service-account API key)",
    ),
    (
        "GET",
        "/api/v1/snapshots/jwks",
        "none",
        "Public keys that sign policy snapshots (next, current, previous)",
    ),
    ("GET", "/api/v1/openapi.json", "none", "This document"),
    ("GET", "/healthz", "none", "Liveness and database check"),
    ("GET", "/metrics", "none", "Prometheus metrics"),
    (
        "GET",
        "/.well-known/jwks.json",
        "none",
        "Token verification keys (current and previous)",
    ),
];

/// A component schema generated from a Rust type.
fn schema<T: utoipa::ToSchema>() -> (String, Value) {
    let v = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    (T::name().into_owned(), v)
}

fn components() -> Map<String, Value> {
    use crate::routes::*;
    let list = [
        schema::<auth::LoginRequest>(),
        schema::<auth::TokenPair>(),
        schema::<auth::RefreshRequest>(),
        schema::<auth::LogoutRequest>(),
        schema::<auth::TokenRequest>(),
        schema::<tenants::Tenant>(),
        schema::<tenants::CreateTenant>(),
        schema::<tenants::CreateSub>(),
        schema::<tenants::UpdateTenant>(),
        schema::<tenants::Hierarchy>(),
        schema::<users::User>(),
        schema::<users::CreateUser>(),
        schema::<users::UpdateUser>(),
        schema::<users::ChangePassword>(),
        schema::<users::ResetPassword>(),
        schema::<users::Bulk>(),
        schema::<users::AddRole>(),
        schema::<service_accounts::ServiceAccount>(),
        schema::<service_accounts::CreateServiceAccount>(),
        schema::<service_accounts::UpdateServiceAccount>(),
        schema::<service_accounts::Rotate>(),
        schema::<service_accounts::WithKey>(),
        schema::<roles::Role>(),
        schema::<roles::CreateRole>(),
        schema::<roles::UpdateRole>(),
        schema::<roles::AssignUsers>(),
        schema::<roles::AddPermissions>(),
        schema::<roles::RoleHierarchy>(),
        schema::<groups::Group>(),
        schema::<groups::CreateGroup>(),
        schema::<groups::UpdateGroup>(),
        schema::<groups::AddMembers>(),
        schema::<groups::AddRoles>(),
        schema::<permissions::Permission>(),
        schema::<permissions::CreatePermission>(),
        schema::<permissions::UpdatePermission>(),
        schema::<permissions::CheckRequest>(),
        schema::<permissions::CheckContext>(),
        schema::<permissions::CheckResponse>(),
        schema::<resources::Resource>(),
        schema::<resources::CreateResource>(),
        schema::<resources::UpdateResource>(),
        schema::<field_definitions::FieldDefinition>(),
        schema::<field_definitions::CreateField>(),
        schema::<field_definitions::UpdateField>(),
        schema::<navigation::NavItem>(),
        schema::<navigation::CreateItem>(),
        schema::<navigation::UpdateItem>(),
    ];
    let mut out: Map<String, Value> = list.into_iter().collect();
    out.insert(
        "Error".to_owned(),
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
        }),
    );
    out
}

/// (collection, item schema, create schema, update schema).
const COLLECTIONS: &[(&str, &str, &str, &str)] = &[
    ("tenants", "Tenant", "CreateTenant", "UpdateTenant"),
    ("users", "User", "CreateUser", "UpdateUser"),
    (
        "service-accounts",
        "ServiceAccount",
        "CreateServiceAccount",
        "UpdateServiceAccount",
    ),
    ("roles", "Role", "CreateRole", "UpdateRole"),
    ("groups", "Group", "CreateGroup", "UpdateGroup"),
    (
        "permissions",
        "Permission",
        "CreatePermission",
        "UpdatePermission",
    ),
    ("resources", "Resource", "CreateResource", "UpdateResource"),
    (
        "field-definitions",
        "FieldDefinition",
        "CreateField",
        "UpdateField",
    ),
    ("navigation", "NavItem", "CreateItem", "UpdateItem"),
];

/// (method, path, request schema, response schema) beyond plain CRUD.
const SPECIAL: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    (
        "POST",
        "/api/v1/auth/login",
        Some("LoginRequest"),
        Some("TokenPair"),
    ),
    (
        "POST",
        "/api/v1/auth/refresh",
        Some("RefreshRequest"),
        Some("TokenPair"),
    ),
    ("POST", "/api/v1/auth/logout", Some("LogoutRequest"), None),
    (
        "POST",
        "/api/v1/auth/token",
        Some("TokenRequest"),
        Some("TokenPair"),
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/sub-tenants",
        Some("CreateSub"),
        Some("Tenant"),
    ),
    (
        "GET",
        "/api/v1/tenants/{id}/hierarchy",
        None,
        Some("Hierarchy"),
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/activate",
        None,
        Some("Tenant"),
    ),
    (
        "POST",
        "/api/v1/tenants/{id}/deactivate",
        None,
        Some("Tenant"),
    ),
    ("GET", "/api/v1/tenants/code/{code}", None, Some("Tenant")),
    ("POST", "/api/v1/users/bulk", Some("Bulk"), None),
    (
        "POST",
        "/api/v1/users/{id}/change-password",
        Some("ChangePassword"),
        None,
    ),
    (
        "POST",
        "/api/v1/users/{id}/reset-password",
        Some("ResetPassword"),
        None,
    ),
    ("POST", "/api/v1/users/{id}/lock", None, Some("User")),
    ("POST", "/api/v1/users/{id}/unlock", None, Some("User")),
    ("POST", "/api/v1/users/{id}/roles", Some("AddRole"), None),
    (
        "POST",
        "/api/v1/service-accounts",
        Some("CreateServiceAccount"),
        Some("WithKey"),
    ),
    (
        "POST",
        "/api/v1/service-accounts/{id}/rotate-credentials",
        Some("Rotate"),
        Some("WithKey"),
    ),
    (
        "GET",
        "/api/v1/roles/{id}/hierarchy",
        None,
        Some("RoleHierarchy"),
    ),
    (
        "POST",
        "/api/v1/roles/{id}/assign",
        Some("AssignUsers"),
        None,
    ),
    (
        "POST",
        "/api/v1/roles/{id}/permissions",
        Some("AddPermissions"),
        None,
    ),
    (
        "POST",
        "/api/v1/groups/{id}/members",
        Some("AddMembers"),
        None,
    ),
    ("POST", "/api/v1/groups/{id}/roles", Some("AddRoles"), None),
    (
        "POST",
        "/api/v1/permissions/check",
        Some("CheckRequest"),
        Some("CheckResponse"),
    ),
];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Request and response schemas of an endpoint, when known.
fn schemas_for(method: &str, path: &str) -> (Option<String>, Option<Value>) {
    if let Some((_, _, req, resp)) = SPECIAL
        .iter()
        .find(|(m, p, _, _)| *m == method && *p == path)
    {
        return (req.map(str::to_owned), resp.map(schema_ref));
    }
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    let mut parts = rest.split('/');
    let coll = parts.next().unwrap_or("");
    let item = parts.next();
    let more = parts.next();
    let Some((_, out, create, update)) = COLLECTIONS.iter().find(|c| c.0 == coll) else {
        return (None, None);
    };
    match (method, item, more) {
        ("POST", None, None) => (Some((*create).to_owned()), Some(schema_ref(out))),
        ("GET", None, None) => (
            None,
            Some(json!({
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": schema_ref(out)},
                    "next_cursor": {"type": ["string", "null"]},
                    "limit": {"type": "integer"}
                }
            })),
        ),
        ("GET", Some(_), None) => (None, Some(schema_ref(out))),
        ("PATCH", Some(_), None) => (Some((*update).to_owned()), Some(schema_ref(out))),
        _ => (None, None),
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("Error")}}
    })
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, scope, summary) in ENDPOINTS {
        let m = method.to_lowercase();
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = if name == "code" {
                    json!({"type": "string"})
                } else {
                    json!({"type": "string", "format": "uuid"})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        let (req, resp) = schemas_for(method, path);
        let (ok_code, ok_desc) = match (*method, resp.is_some(), path.matches('/').count()) {
            ("POST", true, 3)
                if *path != "/api/v1/permissions/check" && !path.contains("/auth/") =>
            {
                ("201", "created")
            }
            ("DELETE", _, _) => ("204", "done"),
            (_, false, _) if *method != "GET" => ("204", "done"),
            _ => ("200", "ok"),
        };
        let mut ok = json!({ "description": ok_desc });
        if let Some(schema) = resp {
            ok["content"] = json!({"application/json": {"schema": schema}});
        } else if *method == "GET" {
            ok["content"] = json!({"application/json": {"schema": {"type": "object"}}});
        }
        let mut responses = Map::new();
        responses.insert(ok_code.to_owned(), ok);
        responses.insert(
            "422".to_owned(),
            error_response("VALIDATION_ERROR, with per-field details"),
        );
        if *scope != "none" {
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
        let tag = path
            .strip_prefix("/api/v1/")
            .and_then(|p| p.split('/').next())
            .unwrap_or("operations");
        let mut op = json!({
            "summary": summary,
            "tags": [tag],
            "parameters": params,
            "responses": responses,
            "x-required-scope": scope,
        });
        if *scope != "none" {
            op["security"] = json!([{"bearer": []}]);
        }
        if let Some(r) = req {
            op["requestBody"] = json!({
                "required": *method != "POST" || !r.ends_with("Request") || r == "LoginRequest" || r == "RefreshRequest",
                "content": {"application/json": {"schema": schema_ref(&r)}}
            });
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[m] = op;
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
            "schemas": components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}

pub async fn openapi_json() -> impl IntoResponse {
    axum::Json(document())
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
        assert!(ENDPOINTS.len() > 80);
    }
}
