//! Authentication: turns a request's credential into a principal of the
//! snapshot. Claims only identify; roles and status always come from the
//! snapshot, never from the token.

pub mod jwks;
pub mod jwt;

use crate::errors::{Denial, ErrorCode};
use crate::request::Credential;
use sentinel_policy::apikey::ApiKeyError;
use sentinel_policy::{Principal, Snapshot};
use uuid::Uuid;

/// Who is calling, as far as the token says (beyond the principal itself).
pub struct Authenticated<'s> {
    pub principal: &'s Principal,
    pub mfa: bool,
}

/// Authenticates a credential against the verifier and the snapshot.
pub async fn authenticate<'s>(
    verifier: &jwt::Verifier,
    snapshot: &'s Snapshot,
    credential: Credential<'_>,
    now: i64,
) -> Result<Authenticated<'s>, Denial> {
    match credential {
        Credential::None => Err(Denial::new(ErrorCode::AuthRequired)),
        Credential::Malformed => Err(Denial::with_message(
            ErrorCode::AuthInvalid,
            "malformed or ambiguous credentials",
        )),
        Credential::Bearer(token) => {
            let verified = verifier.verify(token).await.map_err(|e| {
                let code = if e.code() == "TOKEN_EXPIRED" {
                    ErrorCode::TokenExpired
                } else {
                    ErrorCode::AuthInvalid
                };
                Denial::new(code)
            })?;
            if verified
                .jti
                .as_deref()
                .is_some_and(|j| snapshot.is_revoked(j))
            {
                return Err(Denial::new(ErrorCode::TokenRevoked));
            }
            let principal = Uuid::parse_str(&verified.subject)
                .ok()
                .and_then(|id| snapshot.principal(&id))
                .ok_or_else(|| Denial::with_message(ErrorCode::AuthInvalid, "unknown principal"))?;
            if let Some(tid) = &verified.tenant_id {
                if Uuid::parse_str(tid).ok() != Some(principal.tenant) {
                    return Err(Denial::with_message(
                        ErrorCode::AuthInvalid,
                        "token tenant does not match the principal",
                    ));
                }
            }
            Ok(Authenticated {
                principal,
                mfa: verified.mfa,
            })
        }
        Credential::ApiKey(key) => match snapshot.authenticate_api_key(key, now) {
            Ok(principal) => Ok(Authenticated {
                principal,
                mfa: false,
            }),
            Err(ApiKeyError::Expired) => Err(Denial::with_message(
                ErrorCode::AuthInvalid,
                "API key has expired",
            )),
            Err(_) => Err(Denial::new(ErrorCode::AuthInvalid)),
        },
    }
}
