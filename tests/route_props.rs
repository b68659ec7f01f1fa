//! Property tests for route matching: the table picks a route that matches,
//! no matching route is more specific (checked against a naive reference),
//! and routes that tie are rejected.
#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly, in their helpers too"
)]

use proptest::prelude::*;
use sentinel::routes::{parse_template, ties, AuthRequirement, Route, RouteTable};

fn route(id: usize, path: &str, methods: Option<Vec<&str>>) -> Route {
    let (segments, param_names) = parse_template(path).unwrap();
    Route {
        id: id.to_string().into(),
        host: None,
        segments: segments.into(),
        param_names: param_names.into(),
        methods: methods.map(|m| m.into_iter().map(Into::into).collect()),
        upstream: 0,
        auth: AuthRequirement::Any,
        resource: None,
        action: None,
        tenant_param: None,
        approval: None,
        rate_limit: None,
        fields: None,
        cors: None,
        forward_credentials: false,
        audit_sample_allowed_reads: None,
        risk: None,
        sensitivity: Default::default(),
        template: path.into(),
        series: Default::default(),
    }
}

/// A template from a tiny alphabet so that collisions and overlaps are common.
fn template() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("{p}")], 0..4),
        any::<bool>(),
    )
        .prop_map(|(segs, rest)| {
            let mut names = 0;
            let mut out = String::new();
            for s in segs {
                out.push('/');
                if s == "{p}" {
                    out.push_str(&format!("{{p{names}}}"));
                    names += 1;
                } else {
                    out.push_str(s);
                }
            }
            if rest {
                out.push_str("/*");
            }
            if out.is_empty() {
                out.push('/');
            }
            out
        })
}

fn methods() -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop_oneof![
        Just(None),
        Just(Some(vec!["GET"])),
        Just(Some(vec!["POST"])),
        Just(Some(vec!["GET", "POST"])),
    ]
}

fn request_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 0..5).prop_map(|segs| {
        if segs.is_empty() {
            "/".to_owned()
        } else {
            segs.iter().map(|s| format!("/{s}")).collect()
        }
    })
}

/// Naive reference: the rank sequence of `template` against `path`, or None if it does not match.
fn naive(
    template: &str,
    methods: &Option<Vec<&str>>,
    method: &str,
    path: &str,
) -> Option<(Vec<u8>, bool)> {
    if let Some(m) = methods {
        if !m.contains(&method) {
            return None;
        }
    }
    let t: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut ranks = Vec::new();
    for (i, seg) in t.iter().enumerate() {
        if *seg == "*" {
            ranks.push(0);
            return Some((ranks, methods.is_some()));
        }
        let part = p.get(i)?;
        if seg.starts_with('{') {
            ranks.push(2);
        } else if seg == part {
            ranks.push(3);
        } else {
            return None;
        }
    }
    if p.len() != t.len() {
        return None;
    }
    ranks.push(1);
    Some((ranks, methods.is_some()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn most_specific_matching_route_wins(
        specs in prop::collection::vec((template(), methods()), 1..8),
        path in request_path(),
        method in prop_oneof![Just("GET"), Just("POST")],
    ) {
        let routes: Vec<Route> = specs.iter().enumerate().map(|(i, (t, m))| route(i, t, m.clone())).collect();
        let table = match RouteTable::new(routes.clone()) {
            Ok(t) => t,
            Err(pairs) => {
                // Every reported pair really ties, and ties are only ever reported as errors.
                for (a, b) in pairs {
                    prop_assert!(ties(&routes[a], &routes[b]));
                }
                return Ok(());
            }
        };
        let found = table.find(None, method, &path).map(|m| m.route.id.parse::<usize>().unwrap());
        let candidates: Vec<(usize, (Vec<u8>, bool))> = specs
            .iter()
            .enumerate()
            .filter_map(|(i, (t, m))| naive(t, m, method, &path).map(|r| (i, r)))
            .collect();
        match found {
            None => prop_assert!(candidates.is_empty(), "no route found but {candidates:?} match {path}"),
            Some(i) => {
                let mine = candidates.iter().find(|(c, _)| *c == i);
                prop_assert!(mine.is_some(), "route {} ({}) does not match {}", i, specs[i].0, path);
                let mine = &mine.unwrap().1;
                for (c, r) in &candidates {
                    prop_assert!(r <= mine, "route {} ({}) is more specific than {} ({}) for {}", c, specs[*c].0, i, specs[i].0, path);
                }
            }
        }
    }

    #[test]
    fn same_shape_overlapping_methods_is_an_error(t in template(), m in methods()) {
        let renamed = t.replace("{p", "{q");
        let routes = vec![route(0, &t, m.clone()), route(1, &renamed, m)];
        prop_assert!(RouteTable::new(routes).is_err());
    }
}
