//! The admin API's domain rules, apart from HTTP: who may grant what
//! ([`roles`], [`groups`]), how API keys are made ([`api_keys`]), and the
//! row helpers every area shares ([`rows`]). Handlers parse, call these and
//! answer; route modules never import rules from one another.
//!
//! Every function here runs inside the caller's tenant-scoped transaction
//! and must never widen what it may see.

pub mod api_keys;
pub mod groups;
pub mod roles;
pub mod rows;
pub mod safety;
