//! Live updates without a restart: signed policy snapshots pulled from the
//! admin API ([`snapshot`]) and configuration/route-file reloads ([`reload`]).

pub mod reload;
pub mod snapshot;
