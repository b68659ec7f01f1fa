//! Every validation of the compiler reports an error at the right location, and
//! every error of a source is reported at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sentinel_policy::source::*;
use sentinel_policy::{compile, CompileError, PolicySource};
use uuid::Uuid;

const BASE: &str = r#"
[[tenants]]
id = "00000000-0000-0000-0000-000000000000"
code = "PLATFORM"

[[tenants]]
id = "11111111-1111-1111-1111-111111111111"
code = "TEST-001"

[[tenants]]
id = "22222222-2222-2222-2222-222222222222"
code = "OTHER"

[[permissions]]
id = "p0"
resource_type = "vessel"
actions = ["read"]

[[permissions]]
id = "p1"
resource_type = "vessel"
resource = "v-*"
actions = ["update"]

[[roles]]
id = "r0"
name = "R0"
permissions = ["p0"]

[[roles]]
id = "r1"
name = "R1"
tenant = "11111111-1111-1111-1111-111111111111"
parent = "r0"
permissions = ["p1"]

[[groups]]
id = "g0"
name = "G0"
tenant = "11111111-1111-1111-1111-111111111111"
roles = ["r1"]

[[principals]]
id = "a0000000-0000-0000-0000-000000000001"
tenant = "11111111-1111-1111-1111-111111111111"
roles = ["r1"]
groups = ["g0"]

[[grants]]
id = "gr0"
principal = "a0000000-0000-0000-0000-000000000001"
resource_type = "vessel"
actions = ["read"]
expires_at = 100

[[field_definitions]]
entity = "vessel"
field = "name"
tier = "core"
"#;

const A: Uuid = Uuid::from_u128(0x11111111_1111_1111_1111_111111111111);
const B: Uuid = Uuid::from_u128(0x22222222_2222_2222_2222_222222222222);
const UNKNOWN: Uuid = Uuid::from_u128(0x99999999_9999_9999_9999_999999999999);
const P1: Uuid = Uuid::from_u128(0xa0000000_0000_0000_0000_000000000001);

fn base() -> PolicySource {
    toml::from_str(BASE).unwrap()
}

fn errors(src: &PolicySource) -> Vec<CompileError> {
    match compile(src) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

/// Compiling `src` fails with exactly one error, at `location`, whose message
/// contains `message`.
#[track_caller]
fn assert_only_error(src: &PolicySource, location: &str, message: &str) {
    let errs = errors(src);
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errs.len(),
        1,
        "want one error at {location}, got {shown:#?}"
    );
    assert_eq!(errs[0].location.to_string(), location, "{shown:#?}");
    assert!(
        errs[0].message.contains(message),
        "want `{message}` in {shown:#?}"
    );
    assert_eq!(
        errs[0].to_string(),
        format!("{location}: {}", errs[0].message)
    );
}

/// Compiling `src` fails with (at least) an error at `location` containing `message`.
#[track_caller]
fn assert_has_error(src: &PolicySource, location: &str, message: &str) {
    let errs = errors(src);
    assert!(
        errs.iter()
            .any(|e| e.location.to_string() == location && e.message.contains(message)),
        "want `{message}` at {location}, got {:#?}",
        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

fn perm(id: &str) -> PermissionSource {
    PermissionSource {
        id: id.into(),
        effect: Effect::Allow,
        resource_type: "vessel".into(),
        resource: "*".into(),
        actions: vec!["read".into()],
        conditions: Vec::new(),
        tenant_scope: TenantScope::Own,
        fields: FieldRulesSource::default(),
        description: String::new(),
        mode: Default::default(),
    }
}

fn role(id: &str) -> RoleSource {
    RoleSource {
        id: id.into(),
        name: id.to_uppercase(),
        tenant: None,
        parent: None,
        permissions: Vec::new(),
    }
}

fn principal(n: u128, tenant: Uuid) -> PrincipalSource {
    PrincipalSource {
        id: Uuid::from_u128(0xb0000000_0000_0000_0000_000000000000 + n),
        tenant,
        name: String::new(),
        service_account: false,
        status: PrincipalStatus::Active,
        locked: false,
        locked_until: None,
        attributes: Default::default(),
        roles: Vec::new(),
        groups: Vec::new(),
        api_keys: Vec::new(),
    }
}

fn key(prefix: &str) -> ApiKeySource {
    ApiKeySource {
        prefix: prefix.into(),
        sha256: "ab".repeat(32),
        expires_at: None,
    }
}

fn with_condition(c: ConditionSource) -> PolicySource {
    let mut src = base();
    src.permissions[1].conditions.push(c);
    src
}

#[test]
fn base_policy_compiles() {
    assert!(compile(&base()).is_ok());
    assert!(compile(&PolicySource::default()).is_ok());
}

#[test]
fn tenant_errors() {
    let mut src = base();
    src.tenants[2].id = A;
    assert_only_error(&src, "tenants[2].id", "duplicate tenant id");

    let mut src = base();
    src.tenants[2].code = "  ".into();
    assert_only_error(&src, "tenants[2].code", "must not be empty");

    let mut src = base();
    src.tenants[2].code = "TEST-001".into();
    assert_only_error(&src, "tenants[2].code", "duplicate tenant code `TEST-001`");

    let mut src = base();
    src.tenants[2].parent = Some(UNKNOWN);
    assert_only_error(&src, "tenants[2].parent", "unknown parent tenant");

    let mut src = base();
    src.tenants[2].parent = Some(B);
    assert_only_error(&src, "tenants[2].parent", "cycle");

    let mut src = base();
    src.tenants[1].parent = Some(B);
    src.tenants[2].parent = Some(A);
    assert_has_error(&src, "tenants[1].parent", "cycle");
    assert_has_error(&src, "tenants[2].parent", "cycle");
}

#[test]
fn permission_errors() {
    let mut src = base();
    src.permissions[1].id = String::new();
    assert_has_error(&src, "permissions[1].id", "must not be empty");

    let mut src = base();
    src.permissions.push(perm("p1"));
    assert_only_error(&src, "permissions[2].id", "duplicate permission id `p1`");

    // A duplicate of an id whose first definition is itself invalid is still reported.
    let mut src = base();
    src.permissions[1].resource = "v*x".into();
    src.permissions.push(perm("p1"));
    assert_has_error(&src, "permissions[1].resource", "only have `*` at its end");
    assert_has_error(&src, "permissions[2].id", "duplicate permission id `p1`");

    for ty in ["", "a:b"] {
        let mut src = base();
        src.permissions[1].resource_type = ty.into();
        assert_only_error(
            &src,
            "permissions[1].resource_type",
            "invalid resource type",
        );
    }

    let mut src = base();
    src.permissions[1].resource = String::new();
    assert_only_error(&src, "permissions[1].resource", "must not be empty");

    for pattern in ["**", "a*b", "*a", "a**"] {
        let mut src = base();
        src.permissions[1].resource = pattern.into();
        assert_only_error(&src, "permissions[1].resource", "only have `*` at its end");
    }

    let mut src = base();
    src.permissions[1].actions.clear();
    assert_only_error(&src, "permissions[1].actions", "at least one action");

    for action in ["", "re ad", "read!", "lesen/ä"] {
        let mut src = base();
        src.permissions[1].actions = vec!["read".into(), action.into()];
        assert_only_error(&src, "permissions[1].actions", "invalid action");
    }

    let mut src = base();
    src.permissions[1]
        .fields
        .core
        .insert(String::new(), FieldRule::Read);
    assert_only_error(
        &src,
        "permissions[1].fields",
        "field name must not be empty",
    );

    let mut src = base();
    src.permissions[1]
        .fields
        .core
        .insert("name".into(), FieldRule::Read);
    src.permissions[1]
        .fields
        .tenant_specific
        .insert("name".into(), FieldRule::Hidden);
    assert_only_error(&src, "permissions[1].fields", "more than one tier");
}

#[test]
fn an_invalid_permission_is_not_also_reported_as_unknown() {
    let mut src = base();
    src.permissions[1].actions.clear();
    // Role r1 refers to p1: only the real problem is reported.
    assert_only_error(&src, "permissions[1].actions", "at least one action");
}

#[test]
fn condition_errors() {
    use serde_json::json;
    let at = "permissions[1].conditions";
    let attr = |name: &str, op, value| ConditionSource::Attribute {
        name: name.into(),
        op,
        value,
    };
    assert_only_error(
        &with_condition(attr("", AttributeOp::Eq, json!(1))),
        at,
        "name",
    );
    assert_only_error(
        &with_condition(attr("d", AttributeOp::In, json!("x"))),
        at,
        "`in` needs an array",
    );
    assert_only_error(
        &with_condition(attr("d", AttributeOp::NotIn, json!(1))),
        at,
        "`not_in` needs an array",
    );
    for op in [
        AttributeOp::Gt,
        AttributeOp::Gte,
        AttributeOp::Lt,
        AttributeOp::Lte,
    ] {
        assert_only_error(
            &with_condition(attr("d", op, json!("3"))),
            at,
            "needs a number",
        );
    }
    assert!(compile(&with_condition(attr(
        "d",
        AttributeOp::Contains,
        json!("x")
    )))
    .is_ok());

    assert_only_error(
        &with_condition(ConditionSource::ClientIp { cidrs: vec![] }),
        at,
        "at least one CIDR",
    );
    for bad in ["10.0.0.0/33", "10.0.0", "fe80::/129", "", "example.com"] {
        assert_only_error(
            &with_condition(ConditionSource::ClientIp {
                cidrs: vec!["10.0.0.0/8".into(), bad.into()],
            }),
            at,
            "invalid CIDR",
        );
    }
    // A bare address is a /32 (or /128).
    assert!(compile(&with_condition(ConditionSource::ClientIp {
        cidrs: vec!["10.0.0.1".into(), "::1".into()],
    }))
    .is_ok());

    for hours in [[24, 2], [9, 25], [5, 5]] {
        assert_only_error(
            &with_condition(ConditionSource::Time {
                hours_utc: Some(hours),
                weekdays: None,
            }),
            at,
            "invalid hour range",
        );
    }
    assert_only_error(
        &with_condition(ConditionSource::Time {
            hours_utc: None,
            weekdays: Some(vec![]),
        }),
        at,
        "`weekdays` must not be empty",
    );
    assert_only_error(
        &with_condition(ConditionSource::Time {
            hours_utc: None,
            weekdays: None,
        }),
        at,
        "needs `hours_utc` or `weekdays`",
    );
    for max in [f64::NAN, f64::INFINITY] {
        assert_only_error(
            &with_condition(ConditionSource::Risk {
                max,
                on_missing: Default::default(),
            }),
            at,
            "finite",
        );
    }
    assert_only_error(
        &with_condition(ConditionSource::Method { methods: vec![] }),
        at,
        "at least one method",
    );
    assert_only_error(
        &with_condition(ConditionSource::Method {
            methods: vec!["GET".into(), "get".into()],
        }),
        at,
        "invalid method `get`",
    );
}

#[test]
fn role_errors() {
    let mut src = base();
    src.roles[1].id = String::new();
    assert_has_error(&src, "roles[1].id", "must not be empty");

    let mut src = base();
    src.roles.push(role("r1"));
    assert_has_error(&src, "roles[2].id", "duplicate role id `r1`");

    let mut src = base();
    src.roles[1].name = String::new();
    assert_only_error(&src, "roles[1].name", "must not be empty");

    let mut src = base();
    src.roles[1].tenant = Some(UNKNOWN);
    assert_has_error(&src, "roles[1].tenant", "unknown tenant");

    let mut src = base();
    src.roles[1].parent = Some("nope".into());
    assert_only_error(&src, "roles[1].parent", "unknown parent role `nope`");

    // A tenant role may inherit from a platform-wide role, not from another tenant's.
    let mut src = base();
    let mut rb = role("rb");
    rb.tenant = Some(B);
    src.roles.push(rb);
    src.roles[1].parent = Some("rb".into());
    assert_only_error(&src, "roles[1].parent", "belongs to another tenant");

    let mut src = base();
    src.roles[1].permissions.push("nope".into());
    assert_only_error(&src, "roles[1].permissions", "unknown permission `nope`");

    // `any` scope only in platform (or platform-wide) roles.
    let mut src = base();
    src.permissions[1].tenant_scope = TenantScope::Any;
    assert_only_error(&src, "roles[1].permissions", "tenant scope `any`");
    let mut src = base();
    src.permissions[0].tenant_scope = TenantScope::Any;
    assert!(compile(&src).is_ok(), "platform-wide roles may hold `any`");
}

#[test]
fn role_inheritance_cycles_are_rejected() {
    // Self-loop.
    let mut src = base();
    src.roles[0].parent = Some("r0".into());
    assert_has_error(&src, "roles[0].parent", "cycle");

    // r0 -> r1 -> r0 (r1 is a tenant role, so make r0 one too).
    let mut src = base();
    src.roles[0].tenant = Some(A);
    src.roles[0].parent = Some("r1".into());
    assert_has_error(&src, "roles[0].parent", "cycle");
    assert_has_error(&src, "roles[1].parent", "cycle");

    // A longer cycle: c0 -> c1 -> c2 -> c0.
    let mut src = base();
    for i in 0..3 {
        let mut r = role(&format!("c{i}"));
        r.parent = Some(format!("c{}", (i + 1) % 3));
        src.roles.push(r);
    }
    for i in 2..5 {
        assert_has_error(&src, &format!("roles[{i}].parent"), "cycle");
    }
    assert!(errors(&src).iter().all(|e| e.message.contains("cycle")));
}

#[test]
fn group_errors() {
    let mut src = base();
    src.groups[0].tenant = UNKNOWN;
    assert_has_error(&src, "groups[0].tenant", "unknown tenant");

    let mut src = base();
    src.groups[0].tenant = B;
    src.principals.clear();
    src.grants.clear();
    assert_only_error(
        &src,
        "groups[0].roles",
        "role `r1` belongs to another tenant",
    );

    let mut src = base();
    src.groups[0].roles.push("nope".into());
    assert_only_error(&src, "groups[0].roles", "unknown role `nope`");

    let mut src = base();
    src.groups[0].id = String::new();
    src.principals[0].groups.clear();
    assert_only_error(&src, "groups[0].id", "must not be empty");

    let mut src = base();
    src.groups.push(src.groups[0].clone());
    assert_only_error(&src, "groups[1].id", "duplicate group id `g0`");
}

#[test]
fn principal_errors() {
    let mut src = base();
    src.principals.push(principal(1, UNKNOWN));
    assert_only_error(&src, "principals[1].tenant", "unknown tenant");

    let mut src = base();
    let mut p = principal(1, B);
    p.roles.push("r1".into());
    src.principals.push(p);
    assert_only_error(
        &src,
        "principals[1].roles",
        "role `r1` belongs to another tenant",
    );

    let mut src = base();
    let mut p = principal(1, B);
    p.roles.push("r0".into()); // platform-wide: fine for any tenant
    src.principals.push(p);
    assert!(compile(&src).is_ok());

    let mut src = base();
    src.principals[0].roles.push("nope".into());
    assert_only_error(&src, "principals[0].roles", "unknown role `nope`");

    let mut src = base();
    let mut p = principal(1, B);
    p.groups.push("g0".into());
    src.principals.push(p);
    assert_only_error(
        &src,
        "principals[1].groups",
        "group `g0` belongs to another tenant",
    );

    let mut src = base();
    src.principals[0].groups.push("nope".into());
    assert_only_error(&src, "principals[0].groups", "unknown group `nope`");

    let mut src = base();
    src.principals.push(principal(1, A));
    src.principals.push(principal(1, A));
    assert_only_error(&src, "principals[2].id", "duplicate principal id");
}

#[test]
fn api_key_errors() {
    // API keys on a principal that is not a service account.
    let mut src = base();
    let mut p = principal(1, A);
    p.api_keys.push(key("ABCDEFGH"));
    src.principals.push(p);
    assert_only_error(&src, "principals[1].api_keys", "only service accounts");

    let service = |keys: Vec<ApiKeySource>| {
        let mut src = base();
        let mut p = principal(1, A);
        p.service_account = true;
        p.api_keys = keys;
        src.principals.push(p);
        src
    };
    assert!(compile(&service(vec![key("ABCDEFGH"), key("abcdefg1")])).is_ok());
    for prefix in ["", "ABCDEFG", "ABCDEFGHI", "ABCD_FGH", "ABCDEFGä"] {
        assert_only_error(
            &service(vec![key(prefix)]),
            "principals[1].api_keys",
            "must be 8 ASCII",
        );
    }
    for sha in [
        "",
        "ab",
        &"ab".repeat(33),
        &"zz".repeat(32),
        &format!("{}é", "a".repeat(62)),
    ] {
        let mut k = key("ABCDEFGH");
        k.sha256 = sha.to_string();
        assert_only_error(&service(vec![k]), "principals[1].api_keys", "64 hex digits");
    }
    assert_only_error(
        &service(vec![key("ABCDEFGH"), key("ABCDEFGH")]),
        "principals[1].api_keys",
        "duplicate API key prefix `ABCDEFGH`",
    );
}

#[test]
fn grant_errors() {
    let mut src = base();
    src.grants[0].principal = UNKNOWN;
    assert_only_error(&src, "grants[0].principal", "unknown principal");

    let mut src = base();
    src.grants[0].resource = "a*b".into();
    assert_only_error(&src, "grants[0].resource", "only have `*` at its end");

    let mut src = base();
    src.grants[0].actions = vec!["bad action".into()];
    assert_only_error(&src, "grants[0].actions", "invalid action");

    let mut src = base();
    src.grants[0].actions.clear();
    assert_only_error(&src, "grants[0].actions", "at least one action");

    for nb in [100, 101] {
        let mut src = base();
        src.grants[0].not_before = Some(nb);
        assert_only_error(&src, "grants[0].expires_at", "expires before it starts");
    }
    let mut src = base();
    src.grants[0].not_before = Some(99);
    assert!(compile(&src).is_ok());
    assert!(src.grants[0].principal == P1);
}

#[test]
fn field_definition_errors() {
    let field = |tier, tenant| FieldDefinitionSource {
        entity: "vessel".into(),
        field: "custom".into(),
        tier,
        tenant,
        data_type: None,
        sensitivity: None,
        mask: MaskStyle::Full,
        mask_keep: None,
    };

    let mut src = base();
    src.field_definitions[0].field = String::new();
    assert_only_error(&src, "field_definitions[0]", "must not be empty");
    let mut src = base();
    src.field_definitions[0].entity = String::new();
    assert_only_error(&src, "field_definitions[0]", "must not be empty");

    let mut src = base();
    src.field_definitions
        .push(field(Tier::TenantSpecific, None));
    assert_only_error(&src, "field_definitions[1].tenant", "needs its tenant");

    let mut src = base();
    src.field_definitions
        .push(field(Tier::TenantSpecific, Some(UNKNOWN)));
    assert_only_error(&src, "field_definitions[1].tenant", "unknown tenant");

    for tier in [Tier::Core, Tier::PlatformDynamic] {
        let mut src = base();
        src.field_definitions.push(field(tier, Some(A)));
        assert_only_error(&src, "field_definitions[1].tenant", "only tenant_specific");
    }

    let mut src = base();
    src.field_definitions
        .push(field(Tier::PlatformDynamic, None));
    src.field_definitions.push(field(Tier::Core, None));
    assert_only_error(
        &src,
        "field_definitions[2].field",
        "duplicate field `vessel.custom`",
    );

    // The same custom field name in two tenants is fine; twice in one is not.
    let mut src = base();
    src.field_definitions
        .push(field(Tier::TenantSpecific, Some(A)));
    src.field_definitions
        .push(field(Tier::TenantSpecific, Some(B)));
    let snap = compile(&src).unwrap();
    let vessel = snap.entity("vessel").unwrap();
    assert!(vessel.lookup(&A, "custom").is_some());
    assert!(vessel.lookup(&B, "custom").is_some());
    assert!(vessel.lookup(&UNKNOWN, "custom").is_none());
    assert!(vessel.lookup(&UNKNOWN, "name").is_some());
    src.field_definitions
        .push(field(Tier::TenantSpecific, Some(A)));
    assert_only_error(
        &src,
        "field_definitions[3].field",
        "duplicate field `vessel.custom`",
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let mut src = base();
    src.tenants[2].code = String::new();
    src.permissions[0].resource = "a*b".into();
    src.permissions[1].actions = vec!["no way".into()];
    src.roles[1].parent = Some("missing".into());
    src.groups[0].roles.push("missing".into());
    src.principals[0].groups.push("missing".into());
    src.grants[0].principal = UNKNOWN;
    src.field_definitions[0].tier = Tier::TenantSpecific;
    let errs = errors(&src);
    let mut got: Vec<String> = errs.iter().map(|e| e.location.to_string()).collect();
    got.sort();
    let mut want = vec![
        "tenants[2].code",
        "permissions[0].resource",
        "permissions[1].actions",
        "roles[1].parent",
        "groups[0].roles",
        "principals[0].groups",
        "grants[0].principal",
        "field_definitions[0].tenant",
    ];
    want.sort_unstable();
    assert_eq!(got, want, "{errs:#?}");
}

#[test]
fn unknown_fields_are_rejected_by_the_source_format() {
    let bad = format!("{BASE}\n[[tenants]]\nid = \"33333333-3333-3333-3333-333333333333\"\ncode = \"X\"\ncolour = \"red\"\n");
    assert!(toml::from_str::<PolicySource>(&bad).is_err());
    let bad = "[[permissions]]\nid = \"p\"\nresource_type = \"v\"\nactions = [\"read\"]\nconditions = [{ type = \"mfa\", level = 2 }]\n";
    assert!(toml::from_str::<PolicySource>(bad).is_err());
    let bad = "[[permissions]]\nid = \"p\"\nresource_type = \"v\"\nactions = [\"read\"]\nconditions = [{ type = \"moon_phase\" }]\n";
    assert!(toml::from_str::<PolicySource>(bad).is_err());
}

#[test]
fn merge_appends_everything() {
    let mut a = base();
    a.version = 3;
    let mut b = base();
    b.version = 5;
    a.merge(b);
    assert_eq!(a.version, 5);
    assert_eq!(a.tenants.len(), 6);
    // Merging a policy with itself duplicates every id: all of them are reported.
    let errs = errors(&a);
    assert!(errs
        .iter()
        .any(|e| e.location.to_string() == "tenants[3].id"));
    assert!(errs
        .iter()
        .any(|e| e.location.to_string() == "permissions[2].id"));
    assert!(errs.iter().any(|e| e.location.to_string() == "roles[2].id"));
    assert!(errs
        .iter()
        .any(|e| e.location.to_string() == "groups[1].id"));
    assert!(errs
        .iter()
        .any(|e| e.location.to_string() == "principals[1].id"));
}

#[test]
fn deep_hierarchies_compile_in_linear_time() {
    // Walking every chain in full with a linear `contains` was cubic in the
    // depth: an 8,000-deep role chain took 14 s (release). Now it is linear.
    const ROLES: usize = 5_000;
    const TENANTS: usize = 1_000;
    let mut src = base();
    for i in 0..ROLES {
        let mut r = role(&format!("deep{i}"));
        r.parent = Some(if i == 0 {
            "r0".into()
        } else {
            format!("deep{}", i - 1)
        });
        src.roles.push(r);
    }
    let mut parent = A;
    for i in 0..TENANTS {
        let id = Uuid::from_u128(0xc0000000_0000_0000_0000_000000000000 + i as u128);
        src.tenants.push(TenantSource {
            id,
            code: format!("DEEP-{i}"),
            name: String::new(),
            parent: Some(parent),
            status: TenantStatus::Active,
            settings: Default::default(),
        });
        parent = id;
    }
    let mut p = principal(1, parent);
    p.roles.push(format!("deep{}", ROLES - 1));
    p.roles.push("deep7".into());
    src.principals.push(p);
    let snap = compile(&src).unwrap();
    let p = snap
        .principal(&Uuid::from_u128(0xb0000000_0000_0000_0000_000000000001))
        .unwrap();
    // Every role of the chain once, and the platform-wide root `r0`.
    assert_eq!(snap.role_ids(p).count(), ROLES + 1);
    assert_eq!(
        snap.role_ids(p).next(),
        Some(format!("deep{}", ROLES - 1).as_str())
    );
    assert_eq!(snap.role_ids(p).last(), Some("r0"));
    assert_eq!(snap.tenant(&parent).unwrap().ancestors.len(), TENANTS);
    assert!(snap.is_same_or_descendant(&parent, &A));

    // A cycle at the top of a deep chain is reported for every role below it.
    src.roles[0].parent = Some(format!("deep{}", ROLES - 1));
    let errs = errors(&src);
    assert_eq!(
        errs.iter().filter(|e| e.message.contains("cycle")).count(),
        ROLES + 2
    );
}
