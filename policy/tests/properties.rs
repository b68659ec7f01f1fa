//! Property tests: the evaluator against a naive reference model, and the
//! properties a reviewer relies on (deny wins, no permission no access,
//! monotonicity), over random small policies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sentinel_policy::model::ResourcePattern;
use sentinel_policy::source::*;
use sentinel_policy::{
    compile, AccessRequest, Decision, PolicySource, Reason, RequestContext, Snapshot,
};
use uuid::Uuid;

const A: Uuid = Uuid::from_u128(0x11111111_1111_1111_1111_111111111111);
/// Sub-tenant of A.
const S: Uuid = Uuid::from_u128(0x33333333_3333_3333_3333_333333333333);
const B: Uuid = Uuid::from_u128(0x22222222_2222_2222_2222_222222222222);
const UNKNOWN: Uuid = Uuid::from_u128(0x99999999_9999_9999_9999_999999999999);
const USER: Uuid = Uuid::from_u128(0xa0000000_0000_0000_0000_000000000001);
const NOW: i64 = 1_795_003_200;

const TYPES: [&str; 3] = ["t0", "t1", "*"];
const REQ_TYPES: [&str; 3] = ["t0", "t1", "t2"];
const PATTERNS: [&str; 6] = ["*", "a", "ab", "a*", "b*", "abc"];
const IDS: [Option<&str>; 6] = [
    None,
    Some("a"),
    Some("ab"),
    Some("abc"),
    Some("b"),
    Some("ba"),
];
const ACTIONS: [&str; 3] = ["read", "update", "delete"];
const TARGETS: [Uuid; 4] = [A, S, B, UNKNOWN];

#[derive(Debug, Clone)]
struct Perm {
    deny: bool,
    ty: usize,
    pattern: usize,
    /// Bit mask over ACTIONS; 0 means `*`.
    actions: u8,
    needs_mfa: bool,
    scope: TenantScope,
}

#[derive(Debug, Clone)]
struct Model {
    perms: Vec<Perm>,
    /// Per role: permission indices and an optional parent (a lower index: no cycles).
    roles: Vec<(Vec<usize>, Option<usize>)>,
    /// Roles held directly by the user.
    user_roles: Vec<usize>,
    /// Roles held through a group.
    group_roles: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Req {
    ty: usize,
    id: usize,
    action: usize,
    target: usize,
    mfa: bool,
}

fn perm_strategy() -> impl Strategy<Value = Perm> {
    (
        any::<bool>(),
        0..TYPES.len(),
        0..PATTERNS.len(),
        0u8..8,
        any::<bool>(),
        prop_oneof![Just(TenantScope::Own), Just(TenantScope::OwnAndChildren)],
    )
        .prop_map(|(deny, ty, pattern, actions, needs_mfa, scope)| Perm {
            deny,
            ty,
            pattern,
            actions,
            needs_mfa,
            scope,
        })
}

fn model_strategy(max_perms: usize) -> impl Strategy<Value = Model> {
    prop::collection::vec(perm_strategy(), 0..max_perms).prop_flat_map(|perms| {
        let n = perms.len();
        let role = (
            prop::collection::vec(0..n.max(1), 0..6),
            prop::option::of(0usize..4),
        );
        (
            Just(perms),
            prop::collection::vec(role, 4),
            prop::collection::vec(0usize..4, 0..3),
            prop::collection::vec(0usize..4, 0..2),
        )
            .prop_map(move |(perms, roles, user_roles, group_roles)| {
                let roles = roles
                    .into_iter()
                    .enumerate()
                    .map(|(i, (ps, parent))| {
                        let ps = if n == 0 { Vec::new() } else { ps };
                        // Parents only point to lower indices: no cycles.
                        (ps, parent.filter(|p| *p < i))
                    })
                    .collect();
                Model {
                    perms,
                    roles,
                    user_roles,
                    group_roles,
                }
            })
    })
}

fn req_strategy() -> impl Strategy<Value = Req> {
    (
        0..REQ_TYPES.len(),
        0..IDS.len(),
        0..ACTIONS.len(),
        0..TARGETS.len(),
        any::<bool>(),
    )
        .prop_map(|(ty, id, action, target, mfa)| Req {
            ty,
            id,
            action,
            target,
            mfa,
        })
}

fn tenant(id: Uuid, code: &str, parent: Option<Uuid>) -> TenantSource {
    TenantSource {
        id,
        code: code.into(),
        name: String::new(),
        parent,
        status: TenantStatus::Active,
        settings: Default::default(),
    }
}

fn perm_source(i: usize, p: &Perm) -> PermissionSource {
    let actions = if p.actions == 0 {
        vec!["*".to_string()]
    } else {
        ACTIONS
            .iter()
            .enumerate()
            .filter(|(k, _)| p.actions & (1 << k) != 0)
            .map(|(_, a)| a.to_string())
            .collect()
    };
    PermissionSource {
        id: format!("p{i}"),
        effect: if p.deny { Effect::Deny } else { Effect::Allow },
        resource_type: TYPES[p.ty].into(),
        resource: PATTERNS[p.pattern].into(),
        actions,
        conditions: if p.needs_mfa {
            vec![ConditionSource::Mfa {}]
        } else {
            Vec::new()
        },
        tenant_scope: p.scope,
        fields: Default::default(),
        description: String::new(),
        mode: Default::default(),
    }
}

fn source(m: &Model) -> PolicySource {
    let mut src = PolicySource::default();
    src.tenants.push(tenant(A, "A", None));
    src.tenants.push(tenant(S, "S", Some(A)));
    src.tenants.push(tenant(B, "B", None));
    src.permissions = m
        .perms
        .iter()
        .enumerate()
        .map(|(i, p)| perm_source(i, p))
        .collect();
    src.roles = m
        .roles
        .iter()
        .enumerate()
        .map(|(i, (ps, parent))| RoleSource {
            id: format!("r{i}"),
            name: format!("R{i}"),
            tenant: None,
            parent: parent.map(|p| format!("r{p}")),
            permissions: ps.iter().map(|p| format!("p{p}")).collect(),
        })
        .collect();
    src.groups.push(GroupSource {
        id: "g".into(),
        name: "G".into(),
        tenant: A,
        roles: m.group_roles.iter().map(|r| format!("r{r}")).collect(),
    });
    src.principals.push(PrincipalSource {
        id: USER,
        tenant: A,
        name: "user".into(),
        service_account: false,
        status: PrincipalStatus::Active,
        locked: false,
        locked_until: None,
        attributes: Default::default(),
        roles: m.user_roles.iter().map(|r| format!("r{r}")).collect(),
        groups: vec!["g".into()],
        api_keys: Vec::new(),
    });
    src
}

fn decide(snap: &Snapshot, r: &Req) -> Decision {
    let principal = snap.principal(&USER).unwrap();
    snap.authorize(&AccessRequest {
        principal,
        resource_type: REQ_TYPES[r.ty],
        resource_id: IDS[r.id],
        action: ACTIONS[r.action],
        target_tenant: TARGETS[r.target],
        approval_chain: None,
        context: RequestContext {
            now: NOW,
            client_ip: None,
            method: "GET",
            mfa: r.mfa,
            risk_score: None,
        },
    })
}

fn compiled(m: &Model) -> Snapshot {
    match compile(&source(m)) {
        Ok(s) => s,
        Err(e) => panic!("generated policy does not compile: {e:?}"),
    }
}

/// Naive pattern matching, written independently of `ResourcePattern`.
fn naive_matches(pattern: &str, id: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some(id) = id else { return false };
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = id.chars().collect();
    if p.last() == Some(&'*') {
        let body = &p[..p.len() - 1];
        s.len() >= body.len() && body.iter().zip(&s).all(|(a, b)| a == b)
    } else {
        p == s
    }
}

/// The effective roles of the user: direct, through the group, and every ancestor.
fn effective_roles(m: &Model) -> Vec<usize> {
    let mut out = Vec::new();
    for &r in m.user_roles.iter().chain(&m.group_roles) {
        let mut cur = Some(r);
        while let Some(c) = cur {
            if !out.contains(&c) {
                out.push(c);
            }
            cur = m.roles[c].1;
        }
    }
    out
}

/// Does permission `p` cover the request's type, resource and action?
fn covers(p: &Perm, r: &Req) -> bool {
    let ty_ok = TYPES[p.ty] == "*" || TYPES[p.ty] == REQ_TYPES[r.ty];
    let action_ok = p.actions == 0 || p.actions & (1 << r.action) != 0;
    ty_ok && action_ok && naive_matches(PATTERNS[p.pattern], IDS[r.id])
}

fn in_scope(p: &Perm, r: &Req) -> bool {
    match TARGETS[r.target] {
        t if t == A => true,
        t if t == S => p.scope == TenantScope::OwnAndChildren,
        _ => false,
    }
}

/// The reference evaluator: (allowed, reason, sorted rule ids).
fn reference(m: &Model, r: &Req) -> (bool, Reason, Vec<String>) {
    let mut perms: Vec<usize> = effective_roles(m)
        .into_iter()
        .flat_map(|role| m.roles[role].0.clone())
        .collect();
    perms.sort_unstable();
    perms.dedup();
    let applies = |i: &usize| {
        let p = &m.perms[*i];
        covers(p, r) && in_scope(p, r) && (!p.needs_mfa || r.mfa)
    };
    let ids = |v: Vec<usize>| v.into_iter().map(|i| format!("p{i}")).collect::<Vec<_>>();
    let denies: Vec<usize> = perms
        .iter()
        .copied()
        .filter(|i| m.perms[*i].deny && applies(i))
        .collect();
    if !denies.is_empty() {
        return (false, Reason::ExplicitDeny, ids(denies));
    }
    let allows: Vec<usize> = perms
        .iter()
        .copied()
        .filter(|i| !m.perms[*i].deny && applies(i))
        .collect();
    if !allows.is_empty() {
        return (true, Reason::Allowed, ids(allows));
    }
    let allow_rules = || {
        perms
            .iter()
            .map(|i| &m.perms[*i])
            .filter(|p| !p.deny && covers(p, r))
    };
    let reason = if allow_rules().any(|p| in_scope(p, r) && p.needs_mfa && !r.mfa) {
        Reason::ConditionNotMet
    } else if allow_rules().any(|p| !in_scope(p, r)) {
        Reason::TenantOutOfScope
    } else {
        Reason::NoMatchingPermission
    };
    (false, reason, Vec::new())
}

fn summary(snap: &Snapshot, d: &Decision) -> (bool, Reason, Vec<String>) {
    let mut ids: Vec<String> = d
        .rules
        .iter()
        .map(|i| snap.rule_id(i).to_string())
        .collect();
    ids.sort_unstable_by_key(|s| s[1..].parse::<usize>().unwrap_or(usize::MAX));
    (d.allowed, d.reason, ids)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The evaluator agrees with the naive reference model on every request.
    #[test]
    fn evaluator_matches_reference_model(m in model_strategy(12), reqs in prop::collection::vec(req_strategy(), 1..16)) {
        let snap = compiled(&m);
        for r in &reqs {
            let got = summary(&snap, &decide(&snap, r));
            let want = reference(&m, r);
            prop_assert_eq!(got, want, "request {:?}", r);
        }
    }

    /// The same policy split into a global part and tenant shards
    /// (`bundle::split`, `compile_global`, `compile_shard`) decides every
    /// request exactly like the policy compiled whole.
    #[test]
    fn sharded_decides_like_whole(m in model_strategy(12), reqs in prop::collection::vec(req_strategy(), 1..16)) {
        let whole = compiled(&m);
        let (global, shards) = sentinel_policy::bundle::split(&source(&m)).unwrap();
        let global = sentinel_policy::compile_global(&global).unwrap();
        let shard = sentinel_policy::compile_shard(&global, A, 1, &shards[&A]).unwrap();
        for r in &reqs {
            prop_assert_eq!(
                summary(&shard, &decide(&shard, r)),
                summary(&whole, &decide(&whole, r)),
                "request {:?}", r
            );
        }
    }

    /// If any deny rule applies, the request is never allowed, whatever allows exist.
    #[test]
    fn deny_always_wins(m in model_strategy(12), r in req_strategy()) {
        let snap = compiled(&m);
        let d = decide(&snap, &r);
        let deny_applies = effective_roles(&m).iter().flat_map(|role| &m.roles[*role].0).any(|i| {
            let p = &m.perms[*i];
            p.deny && covers(p, &r) && in_scope(p, &r) && (!p.needs_mfa || r.mfa)
        });
        if deny_applies {
            prop_assert!(!d.allowed);
            prop_assert_eq!(d.reason, Reason::ExplicitDeny);
            prop_assert!(!d.rules.is_empty());
            for i in d.rules.iter() {
                prop_assert_eq!(snap.permission(i).unwrap().effect, Effect::Deny);
            }
        }
        if d.allowed {
            for i in d.rules.iter() {
                prop_assert_eq!(snap.permission(i).unwrap().effect, Effect::Allow);
            }
        }
    }

    /// A principal without roles, or whose roles hold nothing for the
    /// requested type, is never allowed, for any request.
    #[test]
    fn no_permission_no_access(mut m in model_strategy(12), r in req_strategy(), strip in any::<bool>()) {
        if strip {
            m.user_roles.clear();
            m.group_roles.clear();
        }
        let snap = compiled(&m);
        if strip {
            let d = decide(&snap, &r);
            prop_assert!(!d.allowed);
            prop_assert_eq!(d.reason, Reason::NoMatchingPermission);
            prop_assert!(d.rules.is_empty());
        }
        // Type `t2` is only covered by `*`-type permissions.
        let wildcard_types = effective_roles(&m).iter().flat_map(|role| &m.roles[*role].0).any(|i| TYPES[m.perms[*i].ty] == "*");
        if !wildcard_types {
            let r = Req { ty: 2, ..r };
            let d = decide(&snap, &r);
            prop_assert!(!d.allowed);
            prop_assert_eq!(d.reason, Reason::NoMatchingPermission);
        }
    }

    /// Adding an allow permission to one of the user's roles never turns an
    /// allow into a deny, never changes an explicit deny, and only ever adds
    /// deciding rules.
    #[test]
    fn adding_an_allow_is_monotonic(m in model_strategy(10), extra in perm_strategy(), role in 0usize..4, r in req_strategy()) {
        let before_snap = compiled(&m);
        let before = decide(&before_snap, &r);
        let mut m2 = m.clone();
        let extra = Perm { deny: false, ..extra };
        m2.perms.push(extra);
        let idx = m2.perms.len() - 1;
        m2.roles[role].0.push(idx);
        let after_snap = compiled(&m2);
        let after = decide(&after_snap, &r);
        if before.allowed {
            prop_assert!(after.allowed);
            let b: Vec<u32> = before.rules.iter().collect();
            let a: Vec<u32> = after.rules.iter().collect();
            prop_assert!(b.iter().all(|i| a.contains(i)));
        }
        if before.reason == Reason::ExplicitDeny {
            prop_assert_eq!(summary(&before_snap, &before), summary(&after_snap, &after));
        }
        // Conversely, a deny stays a deny unless the new rule itself decides.
        if !before.allowed && after.allowed {
            let new_rule = u32::try_from(idx).unwrap();
            prop_assert_eq!(after.rules.iter().collect::<Vec<_>>(), vec![new_rule]);
        }
    }

    /// Adding a deny permission never turns a deny into an allow, and a deny
    /// rule that cannot apply to the request changes nothing at all.
    #[test]
    fn adding_a_deny_is_anti_monotonic(m in model_strategy(10), extra in perm_strategy(), role in 0usize..4, r in req_strategy()) {
        let before_snap = compiled(&m);
        let before = decide(&before_snap, &r);
        let mut m2 = m.clone();
        let extra = Perm { deny: true, ..extra };
        // The new rule cannot apply: it does not cover the request, its tenant
        // scope misses the target, or its condition fails.
        let unrelated = !(covers(&extra, &r) && in_scope(&extra, &r) && (!extra.needs_mfa || r.mfa));
        m2.perms.push(extra);
        let idx = m2.perms.len() - 1;
        m2.roles[role].0.push(idx);
        let after_snap = compiled(&m2);
        let after = decide(&after_snap, &r);
        if !before.allowed {
            prop_assert!(!after.allowed);
        }
        if unrelated {
            prop_assert_eq!(summary(&before_snap, &before), summary(&after_snap, &after));
        }
    }

    /// `ResourcePattern::matches` agrees with a naive reference.
    #[test]
    fn resource_pattern_matches_reference(pattern in "[ab]{0,4}\\*?", id in prop::option::of("[ab*]{0,5}")) {
        let pattern = if pattern.is_empty() { "*".to_string() } else { pattern };
        let p = ResourcePattern::parse(&pattern);
        prop_assert_eq!(p.matches(id.as_deref()), naive_matches(&pattern, id.as_deref()));
        // A pattern always covers an id equal to its own text (without the `*`).
        prop_assert!(p.matches(Some(pattern.trim_end_matches('*'))));
        // Only `*` covers the collection.
        prop_assert_eq!(p.matches(None), pattern == "*");
    }

    /// Arbitrary Unicode ids and patterns: prefix matching is by whole characters.
    #[test]
    fn resource_pattern_matches_reference_unicode(body in "\\PC{0,6}", star in any::<bool>(), id in "\\PC{0,8}") {
        let pattern = if star { format!("{body}*") } else { body.clone() };
        prop_assume!(!pattern.is_empty() && !body.contains('*'));
        let p = ResourcePattern::parse(&pattern);
        prop_assert_eq!(p.matches(Some(&id)), naive_matches(&pattern, Some(&id)));
        let extended = format!("{body}{id}");
        prop_assert_eq!(p.matches(Some(&extended)), star || id.is_empty());
    }
}

#[test]
fn reference_model_smoke() {
    // One fixed case, so a broken generator cannot make the properties vacuous.
    let m = Model {
        perms: vec![
            Perm {
                deny: false,
                ty: 0,
                pattern: 0,
                actions: 1,
                needs_mfa: false,
                scope: TenantScope::Own,
            },
            Perm {
                deny: true,
                ty: 2,
                pattern: 1,
                actions: 0,
                needs_mfa: false,
                scope: TenantScope::Own,
            },
        ],
        roles: vec![
            (vec![0], None),
            (vec![1], Some(0)),
            (vec![], None),
            (vec![], None),
        ],
        user_roles: vec![1],
        group_roles: vec![],
    };
    let snap = compiled(&m);
    let read_b = Req {
        ty: 0,
        id: 4,
        action: 0,
        target: 0,
        mfa: false,
    };
    assert_eq!(
        summary(&snap, &decide(&snap, &read_b)),
        (true, Reason::Allowed, vec!["p0".into()])
    );
    let read_a = Req {
        id: 1,
        ..read_b.clone()
    };
    assert_eq!(
        reference(&m, &read_a),
        (false, Reason::ExplicitDeny, vec!["p1".into()])
    );
    assert_eq!(
        summary(&snap, &decide(&snap, &read_a)),
        reference(&m, &read_a)
    );
    let on_b = Req {
        target: 2,
        ..read_b
    };
    assert_eq!(
        summary(&snap, &decide(&snap, &on_b)),
        (false, Reason::TenantOutOfScope, vec![])
    );
}
