//! Authentication: turns a request's credential into a principal of the
//! snapshot. Claims only identify; roles and status always come from the
//! snapshot, never from the token.

/// ECDSA canonical form, shared with the admin API's signer (in `sentinel-policy`).
pub use sentinel_policy::ecdsa;
pub mod jwks;
pub mod jwt;

use crate::errors::{Denial, ErrorCode};
use crate::request::Credential;
use sentinel_policy::apikey::ApiKeyError;
use sentinel_policy::{Policy, Principal, Snapshot};
use std::sync::Arc;

/// Who is calling, as far as the token says (beyond the principal itself).
pub struct Authenticated<'s> {
    pub principal: &'s Principal,
    /// The view of the principal's shard: everything after authentication
    /// (decision, explain, field rules) reads this.
    pub snapshot: &'s Snapshot,
    pub mfa: bool,
    /// The verified bearer token (none for an API key).
    pub token: Option<Arc<jwt::VerifiedToken>>,
}

/// Authenticates a credential against the verifier and the policy.
pub async fn authenticate<'s>(
    verifier: &jwt::Verifier,
    policy: &'s Policy,
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
            let verified = verifier
                .verify(token)
                .await
                .map_err(|e| Denial::new(e.into()))?;
            if verified
                .jti
                .as_deref()
                .is_some_and(|j| policy.is_revoked(j))
            {
                return Err(Denial::new(ErrorCode::TokenRevoked));
            }
            let (snapshot, principal) = verified
                .subject_id
                .and_then(|id| policy.principal(&id))
                .ok_or_else(|| Denial::with_message(ErrorCode::AuthInvalid, "unknown principal"))?;
            // A `tid` that is not a UUID matches no principal.
            if verified.tenant_id.is_some() && verified.tenant_uuid != Some(principal.tenant) {
                return Err(Denial::with_message(
                    ErrorCode::AuthInvalid,
                    "token tenant does not match the principal",
                ));
            }
            Ok(Authenticated {
                principal,
                snapshot,
                mfa: verified.mfa,
                token: Some(verified),
            })
        }
        Credential::ApiKey(key) => match policy.authenticate_api_key(key, now) {
            Ok((snapshot, principal)) => Ok(Authenticated {
                principal,
                snapshot,
                mfa: false,
                token: None,
            }),
            Err(ApiKeyError::Expired) => Err(Denial::with_message(
                ErrorCode::AuthInvalid,
                "API key has expired",
            )),
            Err(_) => Err(Denial::new(ErrorCode::AuthInvalid)),
        },
    }
}
