//! Approval chains and just-in-time access (docs/approvals.md): chains
//! (`chains.rs`), requests and decisions (`requests.rs` over `open.rs` and
//! `workflow.rs`, whose transitions are decided in one place,
//! `model::transition`), grants and delegations (`grants.rs`), the worker
//! that moves time-based states (`worker.rs`) and the notifications each
//! change queues in the outbox (`notify.rs`). A grant is a policy row: the
//! snapshot carries it (`snapshot/source.rs`) and gateways enforce it.

pub mod chains;
pub mod grants;
pub mod model;
pub mod notify;
pub mod open;
pub mod requests;
pub mod worker;
pub mod workflow;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::routes::Routes;
use crate::scopes::{Level, APPROVALS};
use crate::state::AppState;

/// The routes of this area, each under its own prefix of `/api/v1`.
pub fn routers() -> [(&'static str, Routes); 4] {
    [
        ("/approval-chains", chains::router()),
        ("/access-requests", requests::router()),
        ("/access-grants", grants::grants_router()),
        ("/approval-delegations", grants::delegations_router()),
    ]
}

/// The three rights of the approvals area (each includes the ones before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// `approvals:request`
    Request,
    /// `approvals:decide`
    Decide,
    /// `approvals:admin`
    Admin,
}

impl Right {
    fn level(self) -> Level {
        match self {
            Right::Request => Level::Read,
            Right::Decide => Level::Write,
            Right::Admin => Level::Admin,
        }
    }
}

pub fn allows(caller: &Caller, right: Right) -> bool {
    caller.scopes.allows(APPROVALS, right.level())
}

pub fn require(caller: &Caller, right: Right) -> ApiResult<()> {
    if allows(caller, right) {
        Ok(())
    } else {
        Err(ApiError::denied(format!(
            "scope `approvals:{}` required",
            crate::scopes::approvals_level_name(right.level())
        )))
    }
}

/// Counts committed state changes: `sentinel_approval_chains_total` and the
/// cycle time of decided requests.
pub fn record(state: &AppState, outcomes: &[workflow::Outcome]) {
    let m = &state.metrics;
    for o in outcomes {
        m.approval_total
            .with_label_values(&[
                o.action.as_str(),
                o.status,
                if o.auto_approved { "true" } else { "false" },
            ])
            .inc();
        if let Some(s) = o.cycle_seconds {
            m.approval_cycle_seconds.observe(s);
        }
    }
}
