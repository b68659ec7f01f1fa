//! The policy source format: what a policy file holds and what the admin API
//! compiles from. Plain serde data; [`crate::compile`] lowers it into a
//! [`crate::Snapshot`] and reports every problem it finds.
//!
//! Times are Unix seconds (UTC). Ids of tenants and principals are UUIDs; ids of
//! roles, groups, permissions and grants are free-form strings (a database row
//! id or a readable name in a policy file).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A whole policy: every object the gateway enforces.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySource {
    /// Monotonic version; the admin API sets it when publishing.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub tenants: Vec<TenantSource>,
    #[serde(default)]
    pub principals: Vec<PrincipalSource>,
    #[serde(default)]
    pub roles: Vec<RoleSource>,
    #[serde(default)]
    pub groups: Vec<GroupSource>,
    #[serde(default)]
    pub permissions: Vec<PermissionSource>,
    #[serde(default)]
    pub grants: Vec<GrantSource>,
    #[serde(default)]
    pub revoked_tokens: Vec<RevokedTokenSource>,
    #[serde(default)]
    pub field_definitions: Vec<FieldDefinitionSource>,
    /// `shadow`: every permission (allow or deny) of this source is a shadow
    /// rule (evaluated beside the live decision, never enforced).
    #[serde(default, skip_serializing_if = "RuleMode::is_enforce")]
    pub mode: RuleMode,
}

impl PolicySource {
    /// Appends every object of `other` (used to merge several policy files).
    /// A `mode = "shadow"` file's permissions become shadow rules, so the
    /// mode stays with the file it was written in.
    pub fn merge(&mut self, other: PolicySource) {
        self.version = self.version.max(other.version);
        self.tenants.extend(other.tenants);
        self.principals.extend(other.principals);
        self.roles.extend(other.roles);
        self.groups.extend(other.groups);
        let file_mode = other.mode;
        self.permissions
            .extend(other.permissions.into_iter().map(|mut p| {
                if file_mode == RuleMode::Shadow {
                    p.mode = RuleMode::Shadow;
                }
                p
            }));
        self.grants.extend(other.grants);
        self.revoked_tokens.extend(other.revoked_tokens);
        self.field_definitions.extend(other.field_definitions);
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    #[default]
    Active,
    Suspended,
    Inactive,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantSource {
    pub id: Uuid,
    pub code: String,
    #[serde(default)]
    pub name: String,
    /// Parent tenant for sub-tenants.
    #[serde(default)]
    pub parent: Option<Uuid>,
    #[serde(default)]
    pub status: TenantStatus,
    /// Free-form settings (rate-limit plan and the like).
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalStatus {
    #[default]
    Active,
    Inactive,
}

/// A user or a service account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSource {
    pub id: Uuid,
    pub tenant: Uuid,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub service_account: bool,
    #[serde(default)]
    pub status: PrincipalStatus,
    /// Locked indefinitely (until an admin unlocks).
    #[serde(default)]
    pub locked: bool,
    /// Locked until this time (Unix seconds), e.g. after failed logins.
    #[serde(default)]
    pub locked_until: Option<i64>,
    /// ABAC attributes (department, clearance, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Role ids held directly.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Group ids the principal belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// API keys (service accounts only), stored as hashes.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySource {
    /// The key's public prefix (the 8 characters after `sk_`).
    pub prefix: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub sha256: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleSource {
    pub id: String,
    pub name: String,
    /// Owning tenant; `None` for a platform-wide role any tenant may assign.
    #[serde(default)]
    pub tenant: Option<Uuid>,
    /// Parent role id: this role inherits every permission of its parent chain.
    #[serde(default)]
    pub parent: Option<String>,
    /// Permission ids.
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupSource {
    pub id: String,
    pub name: String,
    pub tenant: Uuid,
    /// Role ids every member receives.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Whether a permission decides requests (`enforce`) or is only evaluated
/// beside the live decision and compared with it (`shadow`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    #[default]
    Enforce,
    Shadow,
}

impl RuleMode {
    pub fn is_enforce(&self) -> bool {
        *self == RuleMode::Enforce
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TenantScope {
    /// Only the caller's own tenant.
    #[default]
    Own,
    /// The caller's tenant and every tenant below it.
    OwnAndChildren,
    /// Every tenant; honoured only for principals of the platform tenant.
    Any,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PermissionSource {
    pub id: String,
    #[serde(default)]
    pub effect: Effect,
    /// Resource type (`vessel`), or `*` for every type.
    pub resource_type: String,
    /// `*`, an exact id, or a prefix ending in `*` (`v-a*`).
    #[serde(default = "star")]
    pub resource: String,
    /// Actions (`read`, `create`, `update`, `delete`, custom names) or `*`.
    pub actions: Vec<String>,
    /// ABAC conditions; all must hold.
    #[serde(default)]
    pub conditions: Vec<ConditionSource>,
    #[serde(default)]
    pub tenant_scope: TenantScope,
    #[serde(default)]
    pub fields: FieldRulesSource,
    #[serde(default)]
    pub description: String,
    /// `shadow`: evaluated beside the live decision, never enforced.
    #[serde(default, skip_serializing_if = "RuleMode::is_enforce")]
    pub mode: RuleMode,
}

fn star() -> String {
    "*".to_owned()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FieldRule {
    Read,
    Write,
    Masked,
    Hidden,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Core,
    PlatformDynamic,
    TenantSpecific,
}

/// Field rules of a permission, per tier: field name (or `*`) to rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldRulesSource {
    #[serde(default)]
    pub core: BTreeMap<String, FieldRule>,
    #[serde(default)]
    pub platform_dynamic: BTreeMap<String, FieldRule>,
    #[serde(default)]
    pub tenant_specific: BTreeMap<String, FieldRule>,
}

impl FieldRulesSource {
    pub fn is_empty(&self) -> bool {
        self.core.is_empty() && self.platform_dynamic.is_empty() && self.tenant_specific.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttributeOp {
    Eq,
    Ne,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// One ABAC condition. Written as a table with a `type` key, e.g.
/// `{ type = "client_ip", cidrs = ["10.0.0.0/8"] }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionSource {
    /// A principal attribute compared with a value.
    Attribute {
        name: String,
        op: AttributeOp,
        value: serde_json::Value,
    },
    /// The client IP lies in one of these CIDRs.
    ClientIp { cidrs: Vec<String> },
    /// The token carries an MFA claim.
    Mfa {},
    /// The request time (UTC) lies in `[from, to)` hours and on one of the weekdays.
    Time {
        #[serde(default)]
        hours_utc: Option<[u8; 2]>,
        #[serde(default)]
        weekdays: Option<Vec<Weekday>>,
    },
    /// The request's risk score is at most `max`. A request without a score
    /// (unknown risk) does not meet it, fail closed, unless `on_missing =
    /// "allow"`.
    Risk {
        max: f64,
        #[serde(default, skip_serializing_if = "OnMissing::is_deny")]
        on_missing: OnMissing,
    },
    /// The request method is one of these.
    Method { methods: Vec<String> },
}

/// What a `risk` condition makes of a request without a risk score.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Unknown risk does not meet the condition (the default: fail closed).
    #[default]
    Deny,
    /// Unknown risk meets the condition (an explicit escape hatch).
    Allow,
}

impl OnMissing {
    pub fn is_deny(&self) -> bool {
        *self == OnMissing::Deny
    }
}

/// A time-bound grant from an approved access request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrantSource {
    pub id: String,
    pub principal: Uuid,
    pub resource_type: String,
    #[serde(default = "star")]
    pub resource: String,
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_before: Option<i64>,
    pub expires_at: i64,
    /// The approval chain this grant satisfies (`None`: any chain).
    #[serde(default)]
    pub approval_chain: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RevokedTokenSource {
    pub jti: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MaskStyle {
    /// Every character replaced (`"********"`).
    #[default]
    Full,
    /// All but the last `keep` characters replaced.
    Last,
    /// A short SHA-256 digest in place of the value.
    Hash,
    /// `null` in place of the value.
    Null,
}

/// A field of an entity type, in one of the three tiers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldDefinitionSource {
    pub entity: String,
    pub field: String,
    pub tier: Tier,
    /// Required for, and only allowed on, `tenant_specific` fields.
    #[serde(default)]
    pub tenant: Option<Uuid>,
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub mask: MaskStyle,
    /// For `mask = "last"`: how many trailing characters stay visible.
    #[serde(default)]
    pub mask_keep: Option<u8>,
}
