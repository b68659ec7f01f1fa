//! The generated policy of the scale benches: 1,000 tenants, 100,000 users,
//! 10,000 roles (with parents), 1,000,000 permission rows (wildcard, exact and
//! prefix patterns over five types, some deny, some conditional) and groups.
//! Shared by `benches/decision.rs` and `examples/snapshot_scale.rs`.
#![allow(dead_code)]

use sentinel_policy::source::*;
use sentinel_policy::PolicySource;
use uuid::Uuid;

pub const TENANTS: usize = 1_000;
pub const USERS_PER_TENANT: usize = 100;
pub const ROLES_PER_TENANT: usize = 10;
pub const PERMS_PER_ROLE: usize = 100;
pub const TYPES: [&str; 5] = ["vessel", "voyage", "crew", "cargo", "invoice"];
pub const NOW: i64 = 1_795_003_200;

pub fn tenant_id(t: usize) -> Uuid {
    Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000_0000 + t as u128)
}

pub fn user_id(t: usize, u: usize) -> Uuid {
    Uuid::from_u128(0xa000_0000_0000_0000_0000_0000_0000_0000 + (t * USERS_PER_TENANT + u) as u128)
}

/// The permission row `j` of role `k` of tenant `t`.
pub fn permission(t: usize, k: usize, j: usize) -> PermissionSource {
    let ty = TYPES[j % TYPES.len()];
    // 10% wildcard, 60% exact, 30% prefix.
    let resource = match j % 10 {
        0 => "*".to_string(),
        1..=6 => format!("{ty}-{t}-{k}-{j}"),
        _ => format!("{ty}-{t}-{}*", j % 7),
    };
    let actions: Vec<String> = match j % 4 {
        0 => vec!["read".into()],
        1 => vec!["read".into(), "update".into()],
        2 => vec!["*".into()],
        _ => vec!["delete".into()],
    };
    let mut conditions = Vec::new();
    if j % 13 == 12 {
        conditions.push(ConditionSource::ClientIp {
            cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
        });
    }
    if j % 19 == 18 {
        conditions.push(ConditionSource::Attribute {
            name: "dept".into(),
            op: AttributeOp::In,
            value: serde_json::json!(["eng", "ops"]),
        });
    }
    PermissionSource {
        id: format!("t{t}-r{k}-p{j}"),
        // About 6% deny rows.
        effect: if j % 17 == 16 {
            Effect::Deny
        } else {
            Effect::Allow
        },
        resource_type: ty.into(),
        resource,
        actions,
        conditions,
        tenant_scope: if j % 11 == 10 {
            TenantScope::OwnAndChildren
        } else {
            TenantScope::Own
        },
        fields: FieldRulesSource::default(),
        description: String::new(),
        mode: Default::default(),
    }
}

pub fn generate() -> PolicySource {
    let mut src = PolicySource {
        version: 1,
        ..PolicySource::default()
    };
    src.tenants.reserve(TENANTS);
    src.permissions
        .reserve(TENANTS * ROLES_PER_TENANT * PERMS_PER_ROLE);
    src.roles.reserve(TENANTS * ROLES_PER_TENANT);
    src.principals.reserve(TENANTS * USERS_PER_TENANT);
    for t in 0..TENANTS {
        let tid = tenant_id(t);
        src.tenants.push(TenantSource {
            id: tid,
            code: format!("T{t:04}"),
            name: format!("Tenant {t}"),
            // Every tenant not divisible by 10 is a sub-tenant of the one that is.
            parent: (t % 10 != 0).then(|| tenant_id(t - t % 10)),
            status: TenantStatus::Active,
            settings: Default::default(),
        });
        for k in 0..ROLES_PER_TENANT {
            let perms = (0..PERMS_PER_ROLE)
                .map(|j| permission(t, k, j))
                .collect::<Vec<_>>();
            src.roles.push(RoleSource {
                id: format!("t{t}-r{k}"),
                name: format!("role-{k}"),
                tenant: Some(tid),
                // Chains r0 <- r1 <- r2, r3 <- r4 <- r5, …
                parent: (k % 3 != 0).then(|| format!("t{t}-r{}", k - 1)),
                permissions: perms.iter().map(|p| p.id.clone()).collect(),
            });
            src.permissions.extend(perms);
        }
        for g in 0..2 {
            src.groups.push(GroupSource {
                id: format!("t{t}-g{g}"),
                name: format!("group-{g}"),
                tenant: tid,
                roles: vec![format!("t{t}-r{}", 5 + g * 3)],
            });
        }
        for u in 0..USERS_PER_TENANT {
            let mut roles = vec![
                format!("t{t}-r{}", u % 10),
                format!("t{t}-r{}", (u + 3) % 10),
            ];
            if u % 2 == 0 {
                roles.push(format!("t{t}-r{}", (u + 7) % 10));
            }
            let groups = match u % 4 {
                0 => vec![format!("t{t}-g0")],
                1 => vec![format!("t{t}-g1")],
                _ => Vec::new(),
            };
            let mut attributes = std::collections::BTreeMap::new();
            attributes.insert(
                "dept".to_string(),
                serde_json::json!(if u % 3 == 0 { "eng" } else { "sales" }),
            );
            src.principals.push(PrincipalSource {
                id: user_id(t, u),
                tenant: tid,
                name: format!("user-{t}-{u}"),
                service_account: false,
                status: PrincipalStatus::Active,
                locked: false,
                locked_until: None,
                attributes,
                roles,
                groups,
                api_keys: Vec::new(),
            });
        }
    }
    src
}
