//! The policy as the admin API publishes it: [`source`] builds a
//! `PolicySource` from the database, [`publish`] turns it into a signed,
//! sharded snapshot, [`store`] keeps and reads back what was published.
//!
//! Publishing (the live-policy publisher, `sentinel-admin publish`): the
//! policy ships as a sharded snapshot (`sentinel_policy::bundle`): one global
//! part (tenants, field definitions, revoked tokens), one shard per tenant
//! (its principals, roles, groups, permissions), and a signed manifest that
//! lists the SHA-256 of every part and the version that first published it
//! (`since`). A publication rebuilds the global part and the shards of the
//! tenants changed since the previous manifest (`sentinel.policy_dirty`,
//! migration 0003), carries every other shard over unchanged, and stores new
//! parts content-addressed in `sentinel.policy_parts`.
//!
//! A publication must never store a manifest whose parts do not all compile.

pub mod publish;
pub mod source;
pub mod store;

pub use publish::{publish, publish_at_least, publish_with, Outcome, PublishError};
pub use source::{load_global, load_shards, load_source, parse_enum, SnapshotError};
pub use store::{load_parts, load_published, prune, Published};
