//! Live updates without a restart: policy files watched and reloaded
//! ([`files`]), signed policy snapshots pulled from the admin API
//! ([`snapshot`]) with the anomaly model they name ([`model`]), and
//! configuration/route-file reloads ([`reload`]).

pub mod files;
pub mod model;
pub mod reload;
pub mod snapshot;
