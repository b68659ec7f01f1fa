//! Routes: compiled path templates and the table that finds the most specific
//! route for a request. Built once per config load; matching allocates nothing.
//!
//! Specificity, highest first: a route with a host beats one without; then,
//! segment by segment, a literal beats a `{param}`, which beats the end of the
//! path, which beats a trailing `*`; then a route that names its methods beats
//! one that does not. Two routes of the same shape whose hosts and methods
//! overlap are a configuration error.

use std::cmp::Ordering;
use std::sync::Arc;

/// Most `{param}`s one route may capture.
pub const MAX_PARAMS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(Box<str>),
    /// Index into [`Route::param_names`].
    Param(u8),
    /// Trailing `*`: zero or more segments.
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequirement {
    Public,
    Any,
    Users,
    ServiceAccounts,
}

/// One part of a resource id template (`v-{id}` is `Literal("v-")`, `Param(0)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdPart {
    Literal(Box<str>),
    Param(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTemplate {
    pub resource_type: Box<str>,
    /// `None`: the collection.
    pub id: Option<Box<[IdPart]>>,
}

/// A route's field-security binding: which entity type its bodies carry and
/// where (see `docs/field-security.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldBinding {
    pub entity: Box<str>,
    /// The path as written, for messages.
    pub at: Box<str>,
    pub binding: crate::fields::Binding,
    pub on_write_denied: crate::fields::WriteDenied,
    pub unknown_fields: crate::fields::UnknownFields,
    /// Largest (decoded) upstream response body that is buffered and
    /// filtered (`None`: `limits.max_body_bytes`); larger answers fail closed
    /// with 502.
    pub max_response_bytes: Option<usize>,
    /// Filter the answer as it streams (`fields.stream`): bounded memory, no
    /// size limit; a body that turns out unfilterable after the status was
    /// sent aborts the connection (docs/field-security.md).
    pub stream: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    pub origins: Box<[Box<str>]>,
    pub any_origin: bool,
    pub methods: Box<str>,
    pub headers: Box<str>,
    pub expose_headers: Box<str>,
    pub credentials: bool,
    pub max_age_secs: u64,
}

impl Cors {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub id: Box<str>,
    pub host: Option<Box<str>>,
    pub segments: Box<[Segment]>,
    pub param_names: Box<[Box<str>]>,
    /// Upper-case methods; `None` for every method.
    pub methods: Option<Box<[Box<str>]>>,
    /// Index into the config's upstream list.
    pub upstream: usize,
    pub auth: AuthRequirement,
    pub resource: Option<ResourceTemplate>,
    pub action: Option<Box<str>>,
    pub tenant_param: Option<u8>,
    pub approval: Option<Box<str>>,
    pub rate_limit: Option<Box<str>>,
    pub fields: Option<FieldBinding>,
    pub cors: Option<Cors>,
    /// Keep the caller's `Authorization` / `X-API-Key` on the way upstream
    /// (default false: removed once the gateway has authenticated them).
    pub forward_credentials: bool,
    /// Keep this fraction (0 < f < 1) of the audit events of allowed reads;
    /// `None`: every one. Denials are never sampled.
    pub audit_sample_allowed_reads: Option<f64>,
    /// `risk = { step_up_above, block_above }`: where a request's risk score
    /// is answered with a step-up or a block. `None`: never blocked by a score.
    pub risk: Option<RiskSlot>,
    /// How much the route matters to anomaly scoring (`sensitivity`).
    pub sensitivity: sentinel_risk::anomaly::Sensitivity,
    /// The template as written, for metrics labels and messages.
    pub template: Box<str>,
    /// This route's metric handles, resolved on first use.
    pub series: crate::metrics::RouteSeries,
}

/// A route's risk thresholds (SPEC "Request risk"): a score *above*
/// `step_up_above` answers `401 STEP_UP_REQUIRED`, above `block_above` a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskSlot {
    pub step_up_above: Option<f32>,
    pub block_above: Option<f32>,
}

/// Why a path template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("path must start with `/`")]
    NoLeadingSlash,
    #[error("`*` is only allowed as the whole last segment")]
    MisplacedWildcard,
    #[error("invalid parameter segment `{0}` (use `{{name}}` as a whole segment)")]
    BadParam(String),
    #[error("parameter `{0}` appears twice")]
    DuplicateParam(String),
    #[error("a route may capture at most {MAX_PARAMS} parameters")]
    TooManyParams,
    #[error("empty segment (`//`) or dot segment in path")]
    BadSegment,
}

/// Parses `/msw/vessels/{id}` or `/static/*`.
pub fn parse_template(path: &str) -> Result<(Vec<Segment>, Vec<Box<str>>), TemplateError> {
    let rest = path
        .strip_prefix('/')
        .ok_or(TemplateError::NoLeadingSlash)?;
    let mut segments = Vec::new();
    let mut names: Vec<Box<str>> = Vec::new();
    if rest.is_empty() {
        return Ok((segments, names));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == "*" {
            if i + 1 != parts.len() {
                return Err(TemplateError::MisplacedWildcard);
            }
            segments.push(Segment::Rest);
        } else if part.contains('*') {
            return Err(TemplateError::MisplacedWildcard);
        } else if part.starts_with('{')
            || part.ends_with('}')
            || part.contains('{')
            || part.contains('}')
        {
            let name = part
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .filter(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .ok_or_else(|| TemplateError::BadParam((*part).to_owned()))?;
            if names.iter().any(|n| &**n == name) {
                return Err(TemplateError::DuplicateParam(name.to_owned()));
            }
            if names.len() == MAX_PARAMS {
                return Err(TemplateError::TooManyParams);
            }
            segments.push(Segment::Param(names.len() as u8));
            names.push(name.into());
        } else if part.is_empty() || *part == "." || *part == ".." {
            if part.is_empty() && i + 1 == parts.len() {
                // A trailing slash: `/a/` is the same shape as `/a`.
                continue;
            }
            return Err(TemplateError::BadSegment);
        } else {
            segments.push(Segment::Literal((*part).into()));
        }
    }
    Ok((segments, names))
}

fn rank(seg: Option<&Segment>) -> u8 {
    match seg {
        Some(Segment::Literal(_)) => 3,
        Some(Segment::Param(_)) => 2,
        None => 1,
        Some(Segment::Rest) => 0,
    }
}

/// Orders routes most specific first.
fn specificity(a: &Route, b: &Route) -> Ordering {
    b.host
        .is_some()
        .cmp(&a.host.is_some())
        .then_with(|| {
            let n = a.segments.len().max(b.segments.len());
            for i in 0..=n {
                let ord = rank(b.segments.get(i)).cmp(&rank(a.segments.get(i)));
                if ord != Ordering::Equal {
                    return ord;
                }
                if a.segments.get(i).is_none() && b.segments.get(i).is_none() {
                    break;
                }
            }
            Ordering::Equal
        })
        .then_with(|| b.methods.is_some().cmp(&a.methods.is_some()))
}

fn same_shape(a: &Route, b: &Route) -> bool {
    a.segments.len() == b.segments.len()
        && a.segments
            .iter()
            .zip(b.segments.iter())
            .all(|(x, y)| match (x, y) {
                (Segment::Literal(l), Segment::Literal(r)) => l == r,
                (Segment::Param(_), Segment::Param(_)) | (Segment::Rest, Segment::Rest) => true,
                _ => false,
            })
}

/// Do `a` and `b` match some request equally well?
pub fn ties(a: &Route, b: &Route) -> bool {
    let hosts = match (&a.host, &b.host) {
        (None, None) => true,
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => false,
    };
    let methods = match (&a.methods, &b.methods) {
        (None, None) => true,
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        _ => false,
    };
    hosts && methods && same_shape(a, b)
}

/// Captured parameter values, borrowed from the request path.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    values: [&'a str; MAX_PARAMS],
    len: u8,
}

impl<'a> Params<'a> {
    pub fn get(&self, idx: u8) -> Option<&'a str> {
        (idx < self.len).then(|| self.values[idx as usize])
    }
}

pub struct RouteMatch<'t, 'p> {
    pub route: &'t Arc<Route>,
    pub params: Params<'p>,
}

/// All routes, most specific first.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds a table; returns the pairs of indices (into `routes`) that tie.
    pub fn new(routes: Vec<Route>) -> Result<RouteTable, Vec<(usize, usize)>> {
        let mut ties_found = Vec::new();
        for i in 0..routes.len() {
            for j in (i + 1)..routes.len() {
                if ties(&routes[i], &routes[j]) {
                    ties_found.push((i, j));
                }
            }
        }
        if !ties_found.is_empty() {
            return Err(ties_found);
        }
        let mut routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by(|a, b| specificity(a, b));
        Ok(RouteTable { routes })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The most specific route for a request. `path` must already be decoded
    /// and checked by [`crate::request::normalize_path`]; `host` is lower-case
    /// without a port.
    pub fn find<'t, 'p>(
        &'t self,
        host: Option<&str>,
        method: &str,
        path: &'p str,
    ) -> Option<RouteMatch<'t, 'p>> {
        self.routes.iter().find_map(|route| {
            if let Some(h) = &route.host {
                if !host.is_some_and(|host| h.eq_ignore_ascii_case(host)) {
                    return None;
                }
            }
            if let Some(methods) = &route.methods {
                if !methods.iter().any(|m| &**m == method) {
                    return None;
                }
            }
            match_path(route, path).map(|params| RouteMatch { route, params })
        })
    }

    /// Like [`RouteTable::find`] but ignoring the method (CORS preflights).
    pub fn find_any_method<'t, 'p>(
        &'t self,
        host: Option<&str>,
        path: &'p str,
    ) -> Option<RouteMatch<'t, 'p>> {
        self.routes.iter().find_map(|route| {
            if let Some(h) = &route.host {
                if !host.is_some_and(|host| h.eq_ignore_ascii_case(host)) {
                    return None;
                }
            }
            match_path(route, path).map(|params| RouteMatch { route, params })
        })
    }
}

fn match_path<'p>(route: &Route, path: &'p str) -> Option<Params<'p>> {
    let mut params = Params {
        values: [""; MAX_PARAMS],
        len: 0,
    };
    let trimmed = path.strip_prefix('/')?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut parts = trimmed.split('/').filter(|_| !trimmed.is_empty());
    for seg in route.segments.iter() {
        match seg {
            Segment::Rest => return Some(params),
            Segment::Literal(l) => {
                if parts.next()? != &**l {
                    return None;
                }
            }
            Segment::Param(i) => {
                let v = parts.next()?;
                if v.is_empty() {
                    return None;
                }
                params.values[*i as usize] = v;
                params.len = params.len.max(*i + 1);
            }
        }
    }
    parts.next().is_none().then_some(params)
}

impl ResourceTemplate {
    /// Parses `vessel:{id}`, `vessel:fixed`, `vessel` against a route's parameter names.
    pub fn parse(s: &str, names: &[Box<str>]) -> Result<ResourceTemplate, String> {
        let (ty, id) = match s.split_once(':') {
            Some((t, i)) => (t, Some(i)),
            None => (s, None),
        };
        if ty.is_empty()
            || !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("invalid resource type `{ty}`"));
        }
        let id = match id {
            None => None,
            Some("") => return Err("empty resource id template".into()),
            Some(id) => {
                let mut parts = Vec::new();
                let mut rest = id;
                while !rest.is_empty() {
                    if let Some(start) = rest.find('{') {
                        if start > 0 {
                            parts.push(IdPart::Literal(rest[..start].into()));
                        }
                        let end = rest[start..]
                            .find('}')
                            .ok_or_else(|| format!("unclosed `{{` in `{s}`"))?;
                        let name = &rest[start + 1..start + end];
                        let idx = names.iter().position(|n| &**n == name).ok_or_else(|| {
                            format!("resource names `{{{name}}}`, which the path does not capture")
                        })?;
                        parts.push(IdPart::Param(idx as u8));
                        rest = &rest[start + end + 1..];
                    } else {
                        parts.push(IdPart::Literal(rest.into()));
                        rest = "";
                    }
                }
                Some(parts.into_boxed_slice())
            }
        };
        Ok(ResourceTemplate {
            resource_type: ty.into(),
            id,
        })
    }

    /// The resource id for a request; borrows when the template is one parameter.
    pub fn render<'p>(&self, params: &Params<'p>) -> Option<std::borrow::Cow<'p, str>> {
        let parts = self.id.as_ref()?;
        match &parts[..] {
            [IdPart::Param(i)] => params.get(*i).map(std::borrow::Cow::Borrowed),
            parts => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        IdPart::Literal(l) => s.push_str(l),
                        IdPart::Param(i) => s.push_str(params.get(*i).unwrap_or("")),
                    }
                }
                Some(std::borrow::Cow::Owned(s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn route(
        id: &str,
        host: Option<&str>,
        path: &str,
        methods: Option<&[&str]>,
    ) -> Route {
        let (segments, param_names) = parse_template(path).unwrap();
        Route {
            id: id.into(),
            host: host.map(Into::into),
            segments: segments.into(),
            param_names: param_names.into(),
            methods: methods.map(|m| m.iter().map(|s| (*s).into()).collect()),
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

    fn find(table: &RouteTable, host: Option<&str>, method: &str, path: &str) -> Option<String> {
        table
            .find(host, method, path)
            .map(|m| m.route.id.to_string())
    }

    #[test]
    fn most_specific_wins() {
        let table = RouteTable::new(vec![
            route("rest", None, "/msw/*", None),
            route("param", None, "/msw/vessels/{id}", None),
            route("literal", None, "/msw/vessels/special", None),
            route("list", None, "/msw/vessels", None),
            route("get-only", None, "/msw/vessels/{id}", Some(&["GET"])),
            route("hosted", Some("msw.example.com"), "/msw/*", None),
        ])
        .unwrap();
        assert_eq!(
            find(&table, None, "GET", "/msw/vessels/special").as_deref(),
            Some("literal")
        );
        assert_eq!(
            find(&table, None, "GET", "/msw/vessels/v1").as_deref(),
            Some("get-only")
        );
        assert_eq!(
            find(&table, None, "PUT", "/msw/vessels/v1").as_deref(),
            Some("param")
        );
        assert_eq!(
            find(&table, None, "GET", "/msw/vessels").as_deref(),
            Some("list")
        );
        assert_eq!(
            find(&table, None, "GET", "/msw/vessels/").as_deref(),
            Some("list")
        );
        assert_eq!(
            find(&table, None, "GET", "/msw/other/deep/x").as_deref(),
            Some("rest")
        );
        assert_eq!(find(&table, None, "GET", "/msw").as_deref(), Some("rest"));
        assert_eq!(
            find(&table, Some("msw.example.com"), "GET", "/msw/vessels/v1").as_deref(),
            Some("hosted")
        );
        assert_eq!(find(&table, None, "GET", "/fleet"), None);
        assert_eq!(
            find(&table, None, "GET", "/msw/vessels/v1/extra"),
            Some("rest".into())
        );
    }

    #[test]
    fn ties_are_rejected() {
        let err = RouteTable::new(vec![
            route("a", None, "/v/{id}", None),
            route("b", None, "/v/{name}", None),
            route("c", None, "/v/{id}", Some(&["GET"])),
            route("d", None, "/v/{id}", Some(&["POST", "GET"])),
            route("e", None, "/v/{id}", Some(&["DELETE"])),
        ])
        .unwrap_err();
        assert_eq!(err, vec![(0, 1), (2, 3)]);
    }

    #[test]
    fn params_are_captured() {
        let table = RouteTable::new(vec![route("t", None, "/t/{tenant}/v/{id}", None)]).unwrap();
        let m = table.find(None, "GET", "/t/abc/v/v-1").unwrap();
        assert_eq!(m.params.get(0), Some("abc"));
        assert_eq!(m.params.get(1), Some("v-1"));
        assert_eq!(m.params.get(2), None);
        assert!(table.find(None, "GET", "/t//v/x").is_none());
    }

    #[test]
    fn bad_templates() {
        assert_eq!(parse_template("x"), Err(TemplateError::NoLeadingSlash));
        assert_eq!(
            parse_template("/a/*/b"),
            Err(TemplateError::MisplacedWildcard)
        );
        assert_eq!(
            parse_template("/a/b*"),
            Err(TemplateError::MisplacedWildcard)
        );
        assert_eq!(
            parse_template("/a/{x"),
            Err(TemplateError::BadParam("{x".into()))
        );
        assert_eq!(
            parse_template("/a/{x}/{x}"),
            Err(TemplateError::DuplicateParam("x".into()))
        );
        assert_eq!(parse_template("/a//b"), Err(TemplateError::BadSegment));
        assert_eq!(parse_template("/a/../b"), Err(TemplateError::BadSegment));
    }

    #[test]
    fn resource_templates() {
        let names: Vec<Box<str>> = vec!["id".into(), "t".into()];
        let t = ResourceTemplate::parse("vessel:{id}", &names).unwrap();
        let table = RouteTable::new(vec![route("r", None, "/x/{id}/{t}", None)]).unwrap();
        let m = table.find(None, "GET", "/x/v1/T").unwrap();
        assert_eq!(t.render(&m.params).as_deref(), Some("v1"));
        let t = ResourceTemplate::parse("vessel:{t}-{id}", &names).unwrap();
        assert_eq!(t.render(&m.params).as_deref(), Some("T-v1"));
        let t = ResourceTemplate::parse("vessel", &names).unwrap();
        assert_eq!(t.render(&m.params), None);
        assert!(ResourceTemplate::parse("vessel:{nope}", &names).is_err());
        assert!(ResourceTemplate::parse(":x", &names).is_err());
    }
}
