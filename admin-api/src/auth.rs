//! Who is calling: the bearer-token extractor ([`Caller`]), the scopes a
//! principal holds through its roles, and token issuing.

use crate::db::{self, TenantCtx, Tx};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::keys::{Claims, TokenError};
use crate::scopes::{Level, ScopeSet};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use sentinel_policy::PLATFORM_TENANT;
use uuid::Uuid;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    /// The caller's own tenant.
    pub tenant_id: Uuid,
    /// The tenant the request acts on: the caller's own, or the one named in
    /// `X-Tenant-ID` (platform superadmins: any; others: a direct sub-tenant).
    pub target: Uuid,
    pub jti: String,
    pub exp: i64,
    pub service_account: bool,
    pub scopes: ScopeSet,
}

impl Caller {
    pub fn require(&self, area: &str, level: Level) -> ApiResult<()> {
        if self.scopes.allows(area, level) {
            Ok(())
        } else {
            let l = match level {
                Level::Read => "read",
                Level::Write => "write",
                Level::Admin => "admin",
            };
            Err(ApiError::denied(format!("scope `{area}:{l}` required")))
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        self.scopes.is_platform_admin()
    }

    /// The transaction context of this request's target tenant.
    pub fn ctx(&self) -> TenantCtx {
        TenantCtx::One(self.target)
    }

    /// Refuses granting `scopes` the caller does not hold itself.
    pub fn ensure_holds<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
        what: &str,
    ) -> ApiResult<()> {
        let missing = self.scopes.missing(scopes);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::denied(format!(
                "{what} would grant scopes you do not hold: {}",
                missing
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

fn bearer(parts: &Parts) -> ApiResult<&str> {
    let h = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(ApiError::AuthRequired)?;
    let s = h.to_str().map_err(|_| ApiError::AuthInvalid)?;
    let (scheme, token) = s.split_once(' ').ok_or(ApiError::AuthInvalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::AuthInvalid);
    }
    Ok(token.trim())
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => ApiError::TokenExpired,
            TokenError::Invalid => ApiError::AuthInvalid,
            TokenError::NoKey | TokenError::Sign(_) => ApiError::internal(e),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let claims = state
            .keys
            .verify(token, &state.config.issuer, &state.config.audience)?;
        let requested = match parts.headers.get("x-tenant-id") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| Uuid::parse_str(s.trim()).ok())
                    .ok_or_else(|| FieldErrors::one("X-Tenant-ID", "must be a tenant id (UUID)"))?,
            ),
        };
        let mut tx = db::begin(&state.pool, TenantCtx::One(claims.tid)).await?;
        // One round trip: revocation, account and tenant status, and scopes.
        let row: Option<CallerRow> = sqlx::query_as(&format!(
            "{EFFECTIVE_ROLES_CTE}
             SELECT EXISTS (SELECT 1 FROM sentinel.token_blacklist WHERE jti = $2) AS revoked,
                    u.is_active, u.is_locked, u.locked_until, t.status AS tenant_status,
                    ARRAY(SELECT DISTINCT s FROM sentinel.roles r, unnest(r.scopes) s
                           WHERE r.id IN (SELECT id FROM chain)) AS scopes
               FROM sentinel.users u JOIN sentinel.tenants t ON t.id = u.tenant_id
              WHERE u.id = $1"
        ))
        .bind(claims.sub)
        .bind(&claims.jti)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(ApiError::AuthInvalid);
        };
        if row.revoked {
            return Err(ApiError::TokenRevoked);
        }
        PrincipalStatus {
            is_active: row.is_active,
            is_locked: row.is_locked,
            locked_until: row.locked_until,
            tenant_status: row.tenant_status,
        }
        .check()?;
        let scope_strings = row.scopes;
        let scopes = ScopeSet::from_scopes(
            scope_strings.iter().map(String::as_str),
            claims.tid == PLATFORM_TENANT,
        );
        let target = match requested {
            None => claims.tid,
            Some(t) if t == claims.tid => t,
            Some(t) if scopes.is_platform_admin() => t,
            Some(t) => {
                // RLS shows a tenant its direct sub-tenants.
                let child: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM sentinel.tenants WHERE id = $1 AND parent_id = $2)",
                )
                .bind(t)
                .bind(claims.tid)
                .fetch_one(&mut *tx)
                .await?;
                if !child {
                    return Err(ApiError::denied("you may not act on this tenant"));
                }
                t
            }
        };
        tx.commit().await?;
        // Every transaction of this request records its writes as this actor.
        crate::audit::record::set_actor(crate::audit::record::Actor {
            user_id: claims.sub,
            tenant: target,
            service_account: claims.sa,
        });
        Ok(Caller {
            user_id: claims.sub,
            tenant_id: claims.tid,
            target,
            jti: claims.jti,
            exp: claims.exp,
            service_account: claims.sa,
            scopes,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CallerRow {
    revoked: bool,
    is_active: bool,
    is_locked: bool,
    locked_until: Option<DateTime<Utc>>,
    tenant_status: String,
    scopes: Vec<String>,
}

/// What decides whether a principal may act at all.
pub struct PrincipalStatus {
    pub is_active: bool,
    pub is_locked: bool,
    pub locked_until: Option<DateTime<Utc>>,
    pub tenant_status: String,
}

impl PrincipalStatus {
    pub fn check(&self) -> ApiResult<()> {
        if self.is_locked {
            return Err(ApiError::AccountLocked { until: None });
        }
        if let Some(t) = self.locked_until.filter(|t| *t > Utc::now()) {
            return Err(ApiError::AccountLocked { until: Some(t) });
        }
        if !self.is_active {
            return Err(ApiError::AuthInvalid);
        }
        if self.tenant_status != "active" {
            return Err(ApiError::TenantSuspended);
        }
        Ok(())
    }
}

pub async fn principal_status(
    tx: &mut Tx,
    user_id: Uuid,
) -> Result<Option<PrincipalStatus>, sqlx::Error> {
    let row: Option<(bool, bool, Option<DateTime<Utc>>, String)> = sqlx::query_as(
        "SELECT u.is_active, u.is_locked, u.locked_until, t.status
           FROM sentinel.users u JOIN sentinel.tenants t ON t.id = u.tenant_id
          WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(
        |(is_active, is_locked, locked_until, tenant_status)| PrincipalStatus {
            is_active,
            is_locked,
            locked_until,
            tenant_status,
        },
    ))
}

/// Role ids a user holds now: direct (active, inside their validity window),
/// through groups, and every ancestor of those.
pub const EFFECTIVE_ROLES_CTE: &str = "
WITH RECURSIVE direct AS (
    SELECT ur.role_id FROM sentinel.user_roles ur
     WHERE ur.user_id = $1 AND ur.is_active
       AND (ur.valid_from IS NULL OR ur.valid_from <= now())
       AND (ur.valid_until IS NULL OR ur.valid_until > now())
    UNION
    SELECT gr.role_id FROM sentinel.user_groups ug
      JOIN sentinel.group_roles gr ON gr.group_id = ug.group_id
     WHERE ug.user_id = $1
), chain (id, depth) AS (
    SELECT role_id, 0 FROM direct
    UNION
    SELECT r.parent_role_id, c.depth + 1 FROM chain c JOIN sentinel.roles r ON r.id = c.id
     WHERE r.parent_role_id IS NOT NULL AND c.depth < 64
)";

pub async fn effective_scopes(tx: &mut Tx, user_id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "{EFFECTIVE_ROLES_CTE}
         SELECT DISTINCT s FROM sentinel.roles r, unnest(r.scopes) s WHERE r.id IN (SELECT id FROM chain)"
    ))
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await
}

pub async fn effective_role_names(tx: &mut Tx, user_id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "{EFFECTIVE_ROLES_CTE}
         SELECT r.name FROM sentinel.roles r WHERE r.id IN (SELECT id FROM chain) ORDER BY r.name"
    ))
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await
}

/// Scopes a role carries with its whole parent chain.
pub async fn role_chain_scopes(tx: &mut Tx, role_id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE chain (id, depth) AS (
             SELECT $1::uuid, 0
             UNION
             SELECT r.parent_role_id, c.depth + 1 FROM chain c JOIN sentinel.roles r ON r.id = c.id
              WHERE r.parent_role_id IS NOT NULL AND c.depth < 64)
         SELECT DISTINCT s FROM sentinel.roles r, unnest(r.scopes) s WHERE r.id IN (SELECT id FROM chain)",
    )
    .bind(role_id)
    .fetch_all(&mut **tx)
    .await
}

/// Signs an access token for a principal.
pub fn issue_access(
    state: &AppState,
    user_id: Uuid,
    tenant_id: Uuid,
    roles: Vec<String>,
    sa: bool,
    email: Option<String>,
) -> ApiResult<(String, Claims)> {
    let now = Utc::now().timestamp();
    let claims = Claims {
        iss: state.config.issuer.clone(),
        aud: state.config.audience.clone(),
        sub: user_id,
        tid: tenant_id,
        jti: Uuid::new_v4().to_string(),
        iat: now,
        nbf: now,
        exp: now + state.config.access_ttl,
        roles,
        sa,
        email,
    };
    let token = state.keys.sign(&claims)?;
    Ok((token, claims))
}
