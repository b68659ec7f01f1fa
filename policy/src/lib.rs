//! Sentinel's policy model: the source format, the compiler that lowers it into
//! an indexed [`Snapshot`], and the evaluator that decides requests.
//!
//! Plain data and pure functions: no I/O, no clocks (the caller passes `now`),
//! no Pingora. Shared by the gateway (`sentinel`) and the admin API
//! (`sentinel-admin`), so that what the admin API validates is exactly what the
//! gateway evaluates.
#![forbid(unsafe_code)]

pub mod apikey;
pub mod bundle;
pub mod compile;
pub mod ecdsa;
pub mod eval;
pub mod explain;
pub mod model;
pub mod sharded;
pub mod signed;
pub mod source;
pub mod whatif;

pub use compile::{compile, compile_global, compile_shard, CompileError, Location};
pub use eval::{AccessRequest, Decision, Reason, RequestContext, RuleIds};
pub use explain::{FailedCondition, EXPLAIN_ACTION, EXPLAIN_RESOURCE_TYPE};
pub use model::{Global, Principal, Snapshot, Tenant, PLATFORM_TENANT};
pub use sharded::Policy;
pub use source::PolicySource;

/// The action a method implies when a route names none (SPEC: GET/HEAD `read`,
/// POST `create`, PUT/PATCH `update`, DELETE `delete`).
pub fn default_action(method: &str) -> Option<&'static str> {
    match method {
        "GET" | "HEAD" => Some("read"),
        "POST" => Some("create"),
        "PUT" | "PATCH" => Some("update"),
        "DELETE" => Some("delete"),
        _ => None,
    }
}
