//! Lowering of route files (`[[routes]]`) into [`Route`]s, every problem
//! placed in its file.

use super::file::{self, AuthFile, RoutesFile};
use super::lowering::parse_duration;
use super::problems::{route_line, Problem, SourceText};
use crate::routes::{self, AuthRequirement, Cors, FieldBinding, ResourceTemplate, RiskSlot, Route};
use sentinel_risk::anomaly::Sensitivity;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lowers a route's `fields = { entity, at, on_write_denied, unknown_fields,
/// max_response_bytes, stream }`, reporting every problem at its span.
fn lower_fields(
    f: &toml::Spanned<file::FieldsFile>,
    err: &mut dyn FnMut(std::ops::Range<usize>, String),
) -> Option<FieldBinding> {
    use crate::fields::{Binding, UnknownFields, WriteDenied};
    let fs = f.get_ref();
    let mut ok = true;
    if fs.entity.is_empty() {
        err(f.span(), "`fields.entity` must not be empty".into());
        ok = false;
    }
    let (at, binding) = match &fs.at {
        None => ("$", Binding::root()),
        Some(at) => match Binding::parse(at.get_ref()) {
            Ok(b) => (at.get_ref().as_str(), b),
            Err(e) => {
                // `+ 1`: the span starts at the opening quote.
                let col = at.span().start + e.column;
                err(
                    col..col,
                    format!("invalid `fields.at` `{}`: {e}", at.get_ref()),
                );
                ok = false;
                ("$", Binding::root())
            }
        },
    };
    let on_write_denied = match fs.on_write_denied.as_ref() {
        None => WriteDenied::Reject,
        Some(v) => match v.get_ref().as_str() {
            "reject" => WriteDenied::Reject,
            "drop" => WriteDenied::Drop,
            other => {
                err(
                    v.span(),
                    format!("`fields.on_write_denied` is `reject` or `drop`, not `{other}`"),
                );
                ok = false;
                WriteDenied::Reject
            }
        },
    };
    let unknown_fields = match fs.unknown_fields.as_ref() {
        None => UnknownFields::Remove,
        Some(v) => match v.get_ref().as_str() {
            "remove" => UnknownFields::Remove,
            "keep" => UnknownFields::Keep,
            other => {
                err(
                    v.span(),
                    format!("`fields.unknown_fields` is `remove` or `keep`, not `{other}`"),
                );
                ok = false;
                UnknownFields::Remove
            }
        },
    };
    let max_response_bytes = match &fs.max_response_bytes {
        Some(m) if *m.get_ref() == 0 => {
            err(
                m.span(),
                "`fields.max_response_bytes` must be greater than 0".into(),
            );
            ok = false;
            None
        }
        Some(m) => Some(*m.get_ref()),
        None => None,
    };
    ok.then(|| FieldBinding {
        entity: fs.entity.as_str().into(),
        at: at.into(),
        binding,
        on_write_denied,
        unknown_fields,
        max_response_bytes,
        stream: fs.stream.unwrap_or(false),
    })
}

pub(super) fn load_route_file(
    path: &Path,
    upstreams: &HashMap<&str, usize>,
    classes: &HashSet<String>,
    out: &mut Vec<(Route, PathBuf, usize)>,
    ids: &mut HashMap<String, (PathBuf, usize)>,
    problems: &mut Vec<Problem>,
) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read file: {e}"),
            });
            return;
        }
    };
    let src = SourceText { path, text: &text };
    let file: RoutesFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            problems.push(src.toml_error(&e));
            return;
        }
    };
    for r in &file.routes {
        let start = r.span().start;
        let r = r.get_ref();
        let mut errs: Vec<Problem> = Vec::new();
        let mut err =
            |span: std::ops::Range<usize>, m: String| errs.push(src.problem(span.start, m));
        let id = r.id.get_ref().clone();
        if id.is_empty() {
            err(r.id.span(), "route id must not be empty".into());
        } else if let Some((f, o)) = ids.get(&id) {
            err(
                r.id.span(),
                format!(
                    "duplicate route id `{id}` (first at {}:{})",
                    f.display(),
                    route_line(f, *o)
                ),
            );
        } else {
            ids.insert(id.clone(), (path.to_path_buf(), start));
        }
        let (segments, names) = match routes::parse_template(r.path.get_ref()) {
            Ok(x) => x,
            Err(e) => {
                err(
                    r.path.span(),
                    format!("invalid path `{}`: {e}", r.path.get_ref()),
                );
                (Vec::new(), Vec::new())
            }
        };
        let methods = r.methods.as_ref().map(|m| {
            let mut list: Vec<Box<str>> = Vec::new();
            for method in m.get_ref() {
                let up = method.to_ascii_uppercase();
                if http::Method::from_bytes(up.as_bytes()).is_err() || up.is_empty() {
                    err(m.span(), format!("invalid method `{method}`"));
                } else if !list.iter().any(|x| **x == *up) {
                    list.push(up.into());
                }
            }
            if list.is_empty() {
                err(
                    m.span(),
                    "`methods` must not be empty (omit it for every method)".into(),
                );
            }
            list.into_boxed_slice()
        });
        let upstream = match upstreams.get(r.upstream.get_ref().as_str()) {
            Some(u) => *u,
            None => {
                err(
                    r.upstream.span(),
                    format!("unknown upstream `{}`", r.upstream.get_ref()),
                );
                0
            }
        };
        let auth = match r.auth {
            AuthFile::Public => AuthRequirement::Public,
            AuthFile::Any => AuthRequirement::Any,
            AuthFile::Users => AuthRequirement::Users,
            AuthFile::ServiceAccounts => AuthRequirement::ServiceAccounts,
        };
        let resource = match &r.resource {
            Some(res) => match ResourceTemplate::parse(res.get_ref(), &names) {
                Ok(t) => Some(t),
                Err(e) => {
                    err(res.span(), e);
                    None
                }
            },
            None if auth != AuthRequirement::Public => {
                err(
                    r.path.span(),
                    "a route that is not public needs a `resource` (e.g. `vessel:{id}`)".into(),
                );
                None
            }
            None => None,
        };
        if let Some(a) = &r.action {
            let s = a.get_ref();
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
            {
                err(a.span(), format!("invalid action `{s}`"));
            }
        }
        let tenant_param = r.tenant_param.as_ref().and_then(|t| {
            let idx = names.iter().position(|n| **n == **t.get_ref());
            if idx.is_none() {
                err(
                    t.span(),
                    format!(
                        "`tenant_param` `{}` is not a parameter of the path",
                        t.get_ref()
                    ),
                );
            }
            idx.map(|i| i as u8)
        });
        if auth == AuthRequirement::Public && (r.approval.is_some() || r.tenant_param.is_some()) {
            err(
                r.path.span(),
                "a public route cannot require approval or a tenant".into(),
            );
        }
        let forward = r.forward_credentials.as_ref().filter(|f| *f.get_ref());
        if let (Some(f), AuthRequirement::Public) = (forward, auth) {
            let why = "the gateway reads no credential there and forwards every header";
            err(
                f.span(),
                format!("`forward_credentials` has no effect on a public route ({why})"),
            );
        }
        let fields = r
            .fields
            .as_ref()
            .and_then(|f| lower_fields(f, &mut |span, msg| err(span, msg)));
        if let Some(class) = &r.rate_limit {
            if !classes.contains(class) {
                err(
                    r.id.span(),
                    format!("`rate_limit` names `{class}`, which `[rate_limits.classes]` does not define"),
                );
            }
        }
        let risk = r.risk.as_ref().map(|risk| {
            let rf = risk.get_ref();
            for v in [rf.step_up_above, rf.block_above].into_iter().flatten() {
                if !(0.0..=1.0).contains(&v) {
                    err(risk.span(), "risk thresholds are between 0 and 1".into());
                }
            }
            if let (Some(s), Some(b)) = (rf.step_up_above, rf.block_above) {
                if s > b {
                    err(
                        risk.span(),
                        "`step_up_above` must not exceed `block_above`".into(),
                    );
                }
            }
            if auth == AuthRequirement::Public {
                err(
                    risk.span(),
                    "a public route has no risk score to act on".into(),
                );
            }
            RiskSlot {
                step_up_above: rf.step_up_above.map(|v| v as f32),
                block_above: rf.block_above.map(|v| v as f32),
            }
        });
        let sensitivity = match r.sensitivity.as_ref() {
            None => Sensitivity::Normal,
            Some(s) => match s.get_ref().as_str() {
                "low" => Sensitivity::Low,
                "normal" => Sensitivity::Normal,
                "high" => Sensitivity::High,
                "critical" => Sensitivity::Critical,
                other => {
                    err(
                        s.span(),
                        format!("unknown sensitivity `{other}` (low, normal, high, critical)"),
                    );
                    Sensitivity::Normal
                }
            },
        };
        let audit_sample = r.audit_sample_allowed_reads.as_ref().and_then(|f| {
            let v = *f.get_ref();
            if !(v > 0.0 && v <= 1.0) {
                err(
                    f.span(),
                    "`audit_sample_allowed_reads` is a fraction greater than 0 and at most 1"
                        .into(),
                );
            }
            (v < 1.0).then_some(v)
        });
        let cors = r.cors.as_ref().map(|c| {
            let span = c.span();
            let c = c.get_ref();
            if c.origins.is_empty() {
                err(span.clone(), "`cors.origins` must not be empty".into());
            }
            let any_origin = c.origins.iter().any(|o| o == "*");
            if any_origin && c.credentials {
                err(
                    span.clone(),
                    "`cors.credentials` cannot be combined with origin `*`".into(),
                );
            }
            let max_age = match &c.max_age {
                Some(m) => parse_duration(m.get_ref()).unwrap_or_else(|e| {
                    err(m.span(), e);
                    Duration::ZERO
                }),
                None => Duration::from_secs(600),
            };
            let methods = if c.methods.is_empty() {
                r.methods.as_ref().map_or_else(
                    || "GET, HEAD, POST, PUT, PATCH, DELETE".to_owned(),
                    |m| m.get_ref().join(", "),
                )
            } else {
                c.methods.join(", ")
            };
            let headers = if c.headers.is_empty() {
                "authorization, content-type, x-api-key".to_owned()
            } else {
                c.headers.join(", ")
            };
            Cors {
                origins: c.origins.iter().map(|o| o.as_str().into()).collect(),
                any_origin,
                methods: methods.into(),
                headers: headers.into(),
                expose_headers: c.expose_headers.join(", ").into(),
                credentials: c.credentials,
                max_age_secs: max_age.as_secs(),
            }
        });
        if errs.is_empty() {
            out.push((
                Route {
                    id: id.into(),
                    host: r
                        .host
                        .as_ref()
                        .map(|h| h.get_ref().to_ascii_lowercase().into()),
                    segments: segments.into(),
                    param_names: names.into(),
                    methods,
                    upstream,
                    auth,
                    resource,
                    action: r.action.as_ref().map(|a| a.get_ref().as_str().into()),
                    tenant_param,
                    approval: r.approval.as_deref().map(Into::into),
                    rate_limit: r.rate_limit.as_deref().map(Into::into),
                    fields,
                    cors,
                    forward_credentials: forward.is_some(),
                    audit_sample_allowed_reads: audit_sample,
                    risk,
                    sensitivity,
                    template: r.path.get_ref().as_str().into(),
                    series: Default::default(),
                },
                path.to_path_buf(),
                start,
            ));
        }
        problems.extend(errs);
    }
}
