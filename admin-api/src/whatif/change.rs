//! A proposed change in the admin API's own terms, applied to a tenant's
//! shard source in memory (docs/policy.md, "What-if on a proposed change").
//!
//! Each operation is the in-memory twin of one write endpoint and touches
//! the same lists the source loader (snapshot/source.rs) builds from those
//! tables, so the proposed source is what the loader would read after the
//! writes: `role_permissions` (`add_permission`/`remove_permission`),
//! `user_roles` (`assign_role`/`unassign_role`), `user_groups`
//! (`add_member`/`remove_member`), `group_roles`
//! (`add_group_role`/`remove_group_role`) and `permissions`
//! (`add_deny`: a new deny rule on a role; `remove_deny`: a deny rule
//! deactivated, so that every role loses it). Pure: no I/O.

use crate::error::FieldErrors;
use crate::routes::valid_ident;
use sentinel_policy::source::{Effect, PermissionSource, PolicySource};
use serde::Deserialize;
use uuid::Uuid;

/// Most operations in one proposal.
pub const MAX_CHANGES: usize = 100;
/// Longest resource pattern of an `add_deny`, bytes.
pub const MAX_PATTERN: usize = 256;

/// One operation of a proposed change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Attach an active permission of the tenant to a role
    /// (`POST /roles/{id}/permissions`).
    AddPermission { role_id: Uuid, permission_id: Uuid },
    /// Detach a permission from a role (`DELETE /roles/{id}/permissions/{permission_id}`).
    RemovePermission { role_id: Uuid, permission_id: Uuid },
    /// Assign a role to a user or service account (`POST /users/{id}/roles`, no validity window).
    AssignRole { user_id: Uuid, role_id: Uuid },
    /// Take a role from a user or service account (`DELETE /users/{id}/roles/{role_id}`).
    UnassignRole { user_id: Uuid, role_id: Uuid },
    /// Add a user to a group (`POST /groups/{id}/members`).
    AddMember { group_id: Uuid, user_id: Uuid },
    /// Remove a user from a group (`DELETE /groups/{id}/members/{user_id}`).
    RemoveMember { group_id: Uuid, user_id: Uuid },
    /// Give a group a role (`POST /groups/{id}/roles`).
    AddGroupRole { group_id: Uuid, role_id: Uuid },
    /// Take a role from a group (`DELETE /groups/{id}/roles/{role_id}`).
    RemoveGroupRole { group_id: Uuid, role_id: Uuid },
    /// A new deny rule, attached to a role: rule id `proposed-deny-N`
    /// (N: the operation's position in `changes`, from 0).
    AddDeny {
        role_id: Uuid,
        /// A resource type (`vessel`) or `*`.
        resource_type: String,
        /// `*` (default), an exact id, or a prefix ending in `*`.
        #[serde(default)]
        resource: Option<String>,
        /// Actions (`read`, `delete`, …) or `*`; at least one.
        actions: Vec<String>,
    },
    /// Deactivate a deny permission of the tenant (`DELETE /permissions/{id}`):
    /// every role loses it.
    RemoveDeny { permission_id: Uuid },
}

/// The rule id `add_deny` at position `i` gets.
pub fn proposed_deny_id(i: usize) -> String {
    format!("proposed-deny-{i}")
}

/// Applies `changes` to the shard source `src` in order; every problem is
/// reported (field `changes[i].<field>`), and an operation that has one is
/// not applied. An operation must change something: adding what is there
/// or removing what is not is a problem (a proposal that does nothing is
/// almost always a wrong id).
pub fn apply(src: &mut PolicySource, changes: &[Change]) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::new();
    if changes.is_empty() {
        errs.add("changes", "must name at least one change");
    } else if changes.len() > MAX_CHANGES {
        errs.add(
            "changes",
            format!("at most {MAX_CHANGES} changes in one proposal"),
        );
    } else {
        for (i, c) in changes.iter().enumerate() {
            apply_one(src, i, c, &mut errs);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Reports missing objects under `changes[i].<field>`.
struct At<'e> {
    i: usize,
    errs: &'e mut FieldErrors,
}

impl At<'_> {
    fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.errs.add(&format!("changes[{}].{field}", self.i), msg);
    }

    fn role(&mut self, src: &PolicySource, id: &Uuid) -> Option<usize> {
        let key = id.to_string();
        let found = src.roles.iter().position(|r| r.id == key);
        if found.is_none() {
            self.add("role_id", format!("no role `{id}` in this tenant"));
        }
        found
    }

    fn permission(&mut self, src: &PolicySource, id: &Uuid) -> Option<usize> {
        let key = id.to_string();
        let found = src.permissions.iter().position(|p| p.id == key);
        if found.is_none() {
            self.add(
                "permission_id",
                format!("no active permission `{id}` in this tenant"),
            );
        }
        found
    }

    fn principal(&mut self, src: &PolicySource, id: &Uuid) -> Option<usize> {
        let found = src.principals.iter().position(|p| p.id == *id);
        if found.is_none() {
            self.add(
                "user_id",
                format!("no user or service account `{id}` in this tenant"),
            );
        }
        found
    }

    fn group(&mut self, src: &PolicySource, id: &Uuid) -> Option<usize> {
        let key = id.to_string();
        let found = src.groups.iter().position(|g| g.id == key);
        if found.is_none() {
            self.add("group_id", format!("no group `{id}` in this tenant"));
        }
        found
    }
}

/// Adds `item` to `list` (or removes it); a problem when that changes nothing.
fn toggle(
    list: &mut Vec<String>,
    item: String,
    add: bool,
    at: &mut At<'_>,
    field: &str,
    what: &str,
) {
    let pos = list.iter().position(|x| *x == item);
    match (add, pos) {
        (true, None) => list.push(item),
        (false, Some(p)) => {
            list.remove(p);
        }
        (true, Some(_)) => at.add(field, format!("{what} already has it")),
        (false, None) => at.add(field, format!("{what} does not have it")),
    }
}

fn apply_one(src: &mut PolicySource, i: usize, c: &Change, errs: &mut FieldErrors) {
    let mut at = At { i, errs };
    match c {
        Change::AddPermission {
            role_id,
            permission_id,
        }
        | Change::RemovePermission {
            role_id,
            permission_id,
        } => {
            let (r, p) = (at.role(src, role_id), at.permission(src, permission_id));
            if let (Some(r), Some(_)) = (r, p) {
                let add = matches!(c, Change::AddPermission { .. });
                let list = &mut src.roles[r].permissions;
                toggle(
                    list,
                    permission_id.to_string(),
                    add,
                    &mut at,
                    "permission_id",
                    "the role",
                );
            }
        }
        Change::AssignRole { user_id, role_id } | Change::UnassignRole { user_id, role_id } => {
            let (u, r) = (at.principal(src, user_id), at.role(src, role_id));
            if let (Some(u), Some(_)) = (u, r) {
                let add = matches!(c, Change::AssignRole { .. });
                let list = &mut src.principals[u].roles;
                toggle(
                    list,
                    role_id.to_string(),
                    add,
                    &mut at,
                    "role_id",
                    "the user",
                );
            }
        }
        Change::AddMember { group_id, user_id } | Change::RemoveMember { group_id, user_id } => {
            let (g, u) = (at.group(src, group_id), at.principal(src, user_id));
            if let (Some(_), Some(u)) = (g, u) {
                let add = matches!(c, Change::AddMember { .. });
                let list = &mut src.principals[u].groups;
                toggle(
                    list,
                    group_id.to_string(),
                    add,
                    &mut at,
                    "user_id",
                    "the group's membership",
                );
            }
        }
        Change::AddGroupRole { group_id, role_id }
        | Change::RemoveGroupRole { group_id, role_id } => {
            let (g, r) = (at.group(src, group_id), at.role(src, role_id));
            if let (Some(g), Some(_)) = (g, r) {
                let add = matches!(c, Change::AddGroupRole { .. });
                let list = &mut src.groups[g].roles;
                toggle(
                    list,
                    role_id.to_string(),
                    add,
                    &mut at,
                    "role_id",
                    "the group",
                );
            }
        }
        Change::AddDeny {
            role_id,
            resource_type,
            resource,
            actions,
        } => {
            let r = at.role(src, role_id);
            let mut ok = r.is_some();
            if resource_type != "*" && !valid_ident(resource_type) {
                at.add(
                    "resource_type",
                    "must be `*` or a lower-case identifier (`port_call`)",
                );
                ok = false;
            }
            let resource = resource.clone().unwrap_or_else(|| "*".to_owned());
            if resource.trim().is_empty() || resource.len() > MAX_PATTERN {
                at.add(
                    "resource",
                    format!(
                        "must be 1-{MAX_PATTERN} bytes (`*`, an id, or a prefix ending in `*`)"
                    ),
                );
                ok = false;
            }
            if actions.is_empty() {
                at.add("actions", "must name at least one action");
                ok = false;
            }
            if actions.iter().any(|a| a != "*" && !valid_ident(a)) {
                at.add(
                    "actions",
                    "each must be `*` or a lower-case identifier (`read`)",
                );
                ok = false;
            }
            if let (true, Some(r)) = (ok, r) {
                let id = proposed_deny_id(i);
                src.permissions.push(PermissionSource {
                    id: id.clone(),
                    effect: Effect::Deny,
                    resource_type: resource_type.clone(),
                    resource,
                    actions: actions.clone(),
                    conditions: Vec::new(),
                    tenant_scope: Default::default(),
                    fields: Default::default(),
                    description: "proposed by what-if".to_owned(),
                    mode: Default::default(),
                });
                src.roles[r].permissions.push(id);
            }
        }
        Change::RemoveDeny { permission_id } => {
            if let Some(p) = at.permission(src, permission_id) {
                if src.permissions[p].effect != Effect::Deny {
                    at.add(
                        "permission_id",
                        "is an allow rule: detach it from a role with `remove_permission`",
                    );
                    return;
                }
                // As the loader leaves an inactive permission and its role links out.
                let key = src.permissions.remove(p).id;
                for r in &mut src.roles {
                    r.permissions.retain(|x| *x != key);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
mod tests {
    use super::*;
    use sentinel_policy::source::{GroupSource, PrincipalSource, RoleSource};

    const T: Uuid = Uuid::from_u128(1);
    const ROLE: Uuid = Uuid::from_u128(10);
    const ALLOW: Uuid = Uuid::from_u128(20);
    const DENY: Uuid = Uuid::from_u128(21);
    const USER: Uuid = Uuid::from_u128(30);
    const GROUP: Uuid = Uuid::from_u128(40);

    fn perm(id: Uuid, effect: Effect) -> PermissionSource {
        PermissionSource {
            id: id.to_string(),
            effect,
            resource_type: "vessel".into(),
            resource: "*".into(),
            actions: vec!["read".into()],
            conditions: Vec::new(),
            tenant_scope: Default::default(),
            fields: Default::default(),
            description: String::new(),
            mode: Default::default(),
        }
    }

    fn src() -> PolicySource {
        let mut s = PolicySource::default();
        s.roles.push(RoleSource {
            id: ROLE.to_string(),
            name: "viewer".into(),
            tenant: Some(T),
            parent: None,
            permissions: vec![ALLOW.to_string(), DENY.to_string()],
        });
        s.permissions.push(perm(ALLOW, Effect::Allow));
        s.permissions.push(perm(DENY, Effect::Deny));
        s.groups.push(GroupSource {
            id: GROUP.to_string(),
            name: "team".into(),
            tenant: T,
            roles: Vec::new(),
        });
        s.principals.push(PrincipalSource {
            id: USER,
            tenant: T,
            name: "u".into(),
            service_account: false,
            status: Default::default(),
            locked: false,
            locked_until: None,
            attributes: Default::default(),
            roles: vec![ROLE.to_string()],
            groups: Vec::new(),
            api_keys: Vec::new(),
        });
        s
    }

    #[test]
    fn each_operation_changes_its_list_and_nothing_else() {
        let mut s = src();
        apply(
            &mut s,
            &[
                Change::RemovePermission {
                    role_id: ROLE,
                    permission_id: ALLOW,
                },
                Change::AddGroupRole {
                    group_id: GROUP,
                    role_id: ROLE,
                },
                Change::AddMember {
                    group_id: GROUP,
                    user_id: USER,
                },
                Change::UnassignRole {
                    user_id: USER,
                    role_id: ROLE,
                },
                Change::RemoveDeny {
                    permission_id: DENY,
                },
                Change::AddDeny {
                    role_id: ROLE,
                    resource_type: "vessel".into(),
                    resource: Some("v-a1".into()),
                    actions: vec!["read".into()],
                },
            ],
        )
        .unwrap();
        assert_eq!(s.roles[0].permissions, vec!["proposed-deny-5".to_owned()]);
        assert_eq!(s.groups[0].roles, vec![ROLE.to_string()]);
        assert_eq!(s.principals[0].groups, vec![GROUP.to_string()]);
        assert!(s.principals[0].roles.is_empty());
        let ids: Vec<&str> = s.permissions.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, vec![ALLOW.to_string().as_str(), "proposed-deny-5"]);
        assert_eq!(s.permissions[1].effect, Effect::Deny);
    }

    #[test]
    fn unknown_ids_and_no_op_changes_are_named_per_field() {
        let mut s = src();
        let before = s.clone();
        let other = Uuid::from_u128(99);
        let errs = apply(
            &mut s,
            &[
                Change::AddPermission {
                    role_id: other,
                    permission_id: ALLOW,
                },
                Change::AddPermission {
                    role_id: ROLE,
                    permission_id: ALLOW,
                },
                Change::AssignRole {
                    user_id: other,
                    role_id: ROLE,
                },
                Change::RemoveMember {
                    group_id: GROUP,
                    user_id: USER,
                },
                Change::RemoveDeny {
                    permission_id: ALLOW,
                },
                Change::AddDeny {
                    role_id: ROLE,
                    resource_type: "Vessel!".into(),
                    resource: Some(String::new()),
                    actions: Vec::new(),
                },
            ],
        )
        .unwrap_err();
        let fields: Vec<&String> = errs.0.keys().collect();
        assert_eq!(
            fields,
            vec![
                "changes[0].role_id",
                "changes[1].permission_id",
                "changes[2].user_id",
                "changes[3].user_id",
                "changes[4].permission_id",
                "changes[5].actions",
                "changes[5].resource",
                "changes[5].resource_type",
            ]
        );
        assert_eq!(s, before, "a refused operation is not applied");
        assert!(apply(&mut s, &[]).is_err());
    }
}
