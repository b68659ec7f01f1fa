//! The grammar of questions: a small set of sentence templates written as
//! `nom` parsers over the question's words (lower case, single spaces, no
//! trailing punctuation). A question either matches one template whole and
//! becomes a [`TypedQuery`], or it matches none and gets the nearest
//! templates as suggestions: the parser never guesses.
//!
//! Pure: no I/O, no clock. Names (principals, tenants, roles, groups) stay
//! as written; the executor resolves them.

pub use super::suggest::{suggest, TEMPLATES};
use super::typed::{TypedQuery, Window};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::combinator::{eof, opt, value};
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};

type R<'a, T> = IResult<&'a str, T>;

/// Longest question accepted, characters.
pub const MAX_QUESTION: usize = 500;

/// The question's words: lower case, `?!,;"` dropped, a final `.` dropped,
/// single spaces, leading "please" dropped.
pub fn normalize(question: &str) -> String {
    let lower: String = question
        .chars()
        .filter(|c| !matches!(c, '?' | '!' | ',' | ';' | '"'))
        .flat_map(char::to_lowercase)
        .collect();
    let mut words: Vec<&str> = lower.split_whitespace().collect();
    if let Some(last) = words.last_mut() {
        *last = last.trim_end_matches('.');
        if last.is_empty() {
            words.pop();
        }
    }
    if words.first() == Some(&"please") {
        words.remove(0);
    }
    if words.last() == Some(&"please") {
        words.pop();
    }
    words.join(" ")
}

/// The end of a word: one space, or the end of the question.
fn sep(i: &str) -> R<'_, ()> {
    alt((value((), tag(" ")), value((), eof))).parse(i)
}

/// A keyword (one or more words), as whole words.
fn kw<'a>(
    k: &'static str,
) -> impl Parser<&'a str, Output = (), Error = nom::error::Error<&'a str>> {
    value((), terminated(tag(k), sep))
}

/// Any one word.
fn word(i: &str) -> R<'_, &str> {
    terminated(take_while1(|c: char| c != ' '), sep).parse(i)
}

/// One or more words up to (not including) a word of `stops`, or the end.
fn phrase<'a>(stops: &'static [&'static str]) -> impl FnMut(&'a str) -> R<'a, Vec<&'a str>> {
    move |mut i: &'a str| {
        let mut out = Vec::new();
        loop {
            if i.is_empty() {
                break;
            }
            let (rest, w) = word(i)?;
            if stops.contains(&w) {
                break;
            }
            out.push(w);
            i = rest;
        }
        if out.is_empty() {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Many1,
            )));
        }
        Ok((i, out))
    }
}

/// Words that end a resource phrase.
const RESOURCE_STOPS: &[&str] = &["in", "at", "for", "of"];

/// A principal as the question names it: one word (first name, email,
/// service-account name).
fn name(i: &str) -> R<'_, String> {
    let (rest, w) = word(i)?;
    let w = w.trim_end_matches("'s");
    if w.is_empty() {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((rest, w.to_owned()))
}

/// An action, with the usual synonyms mapped to the evaluator's verbs.
fn action(i: &str) -> R<'_, String> {
    let (rest, w) = word(i)?;
    let a = match w {
        "read" | "view" | "see" | "list" | "get" => "read",
        "create" | "add" | "make" => "create",
        "update" | "edit" | "change" | "modify" | "write" => "update",
        "delete" | "remove" | "destroy" => "delete",
        w if w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => w,
        _ => {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Verify,
            )))
        }
    };
    Ok((rest, a.to_owned()))
}

/// `port calls` → `port_call`: words joined with `_`, the last made singular.
pub fn resource_type(words: &[&str]) -> String {
    let mut ws: Vec<String> = words
        .iter()
        .filter(|w| !matches!(**w, "the" | "a" | "an" | "any" | "all"))
        .map(|w| (*w).to_owned())
        .collect();
    if let Some(last) = ws.last_mut() {
        if let Some(one) = last.strip_suffix("ies") {
            *last = format!("{one}y");
        } else if last.ends_with('s') && !last.ends_with("ss") {
            last.pop();
        }
    }
    ws.join("_")
}

/// A resource id (`v-a1`, `voy-a2`): has a digit, and a `-` or `_`.
fn looks_like_id(w: &str) -> bool {
    w.bytes().any(|b| b.is_ascii_digit()) && w.bytes().any(|b| b == b'-' || b == b'_')
}

/// A resource phrase: type words, optionally ending with an id.
fn resource(i: &str) -> R<'_, (String, Option<String>)> {
    let (rest, mut ws) = phrase(RESOURCE_STOPS)(i)?;
    let id = match ws.last() {
        Some(w) if ws.len() > 1 && looks_like_id(w) => ws.pop().map(str::to_owned),
        _ => None,
    };
    let t = resource_type(&ws);
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
    {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((rest, (t, id)))
}

/// The rest of the question as one name (a tenant, role or group).
fn rest_name(i: &str) -> R<'_, String> {
    let (rest, ws) = phrase(&[])(i)?;
    Ok((rest, ws.join(" ")))
}

fn number(i: &str) -> R<'_, u32> {
    let (rest, w) = word(i)?;
    match w.parse::<u32>() {
        Ok(n) if n > 0 && n <= 36_500 => Ok((rest, n)),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Digit,
        ))),
    }
}

/// `14:02` (or `9:05`), normalized to `HH:MM`.
fn clock(i: &str) -> R<'_, String> {
    let (rest, w) = word(i)?;
    let ok = w.split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (h < 24 && m < 60 && w.len() <= 5).then(|| format!("{h:02}:{m:02}"))
    });
    match ok {
        Some(t) => Ok((rest, t)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

fn date(i: &str) -> R<'_, String> {
    let (rest, w) = word(i)?;
    match chrono::NaiveDate::parse_from_str(w, "%Y-%m-%d") {
        Ok(d) => Ok((rest, d.format("%Y-%m-%d").to_string())),
        Err(_) => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

fn at(i: &str) -> R<'_, Option<String>> {
    opt(preceded(kw("at"), clock)).parse(i)
}

fn unit_days(i: &str) -> R<'_, u32> {
    alt((
        value(1, alt((kw("days"), kw("day")))),
        value(7, alt((kw("weeks"), kw("week")))),
    ))
    .parse(i)
}

fn last_n(i: &str) -> R<'_, Window> {
    let (i, n) = number(i)?;
    if let Ok((i, per)) = unit_days(i) {
        return Ok((
            i,
            Window::LastDays {
                days: n.saturating_mul(per),
            },
        ));
    }
    let (i, _) = alt((kw("hours"), kw("hour"))).parse(i)?;
    Ok((i, Window::LastHours { hours: n }))
}

fn day_window(i: &str) -> R<'_, Window> {
    if let Ok((i, _)) = kw("today").parse(i) {
        let (i, at) = at(i)?;
        return Ok((i, Window::Today { at }));
    }
    if let Ok((i, _)) = kw("yesterday").parse(i) {
        let (i, at) = at(i)?;
        return Ok((i, Window::Yesterday { at }));
    }
    let (i, _) = kw("on").parse(i)?;
    let (i, date) = date(i)?;
    let (i, at) = at(i)?;
    Ok((i, Window::Date { date, at }))
}

fn window(i: &str) -> R<'_, Window> {
    alt((
        day_window,
        value(
            Window::LastDays { days: 7 },
            alt((kw("last week"), kw("this week"), kw("in the last week"))),
        ),
        value(
            Window::LastDays { days: 30 },
            alt((kw("last month"), kw("in the last month"))),
        ),
        value(Window::LastHours { hours: 1 }, kw("in the last hour")),
        preceded(
            alt((kw("in the last"), kw("in the past"), kw("last"), kw("past"))),
            last_n,
        ),
    ))
    .parse(i)
}

/// The window a question names, or the default one (the last 7 days).
fn window_or_week(i: &str) -> R<'_, Window> {
    let (i, w) = opt(window).parse(i)?;
    Ok((i, w.unwrap_or(Window::LastDays { days: 7 })))
}

fn who_can(i: &str) -> R<'_, TypedQuery> {
    let (i, _) = alt((
        kw("who can"),
        kw("who may"),
        kw("who is allowed to"),
        kw("who is able to"),
        kw("which users can"),
        kw("which principals can"),
    ))
    .parse(i)?;
    let (i, action) = action(i)?;
    let (i, (resource_type, resource_id)) = resource(i)?;
    let (i, tenant) = opt(preceded(
        alt((kw("in"), kw("at"), kw("for"), kw("of"))),
        rest_name,
    ))
    .parse(i)?;
    let (i, _) = eof(i)?;
    Ok((
        i,
        TypedQuery::WhoCan {
            action,
            resource_type,
            resource_id,
            tenant,
        },
    ))
}

fn resource_only(i: &str) -> R<'_, String> {
    let (i, ws) = phrase(&[])(i)?;
    let t = resource_type(&ws);
    if t.is_empty() {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((i, t))
}

fn what_can(i: &str) -> R<'_, TypedQuery> {
    let (i, principal) = alt((
        |i| {
            let (i, _) = alt((kw("what can"), kw("what may"))).parse(i)?;
            terminated(name, kw("do")).parse(i)
        },
        |i| {
            let (i, _) = kw("what is").parse(i)?;
            terminated(name, alt((kw("allowed to do"), kw("able to do")))).parse(i)
        },
        preceded(
            alt((kw("what are the permissions of"), kw("list permissions of"))),
            name,
        ),
    ))
    .parse(i)?;
    let (i, resource_type) = opt(preceded(
        alt((kw("on"), kw("with"), kw("to"), kw("for"))),
        resource_only,
    ))
    .parse(i)?;
    let (i, _) = eof(i)?;
    Ok((
        i,
        TypedQuery::WhatCan {
            principal,
            resource_type,
        },
    ))
}

fn can(i: &str) -> R<'_, TypedQuery> {
    let (i, principal) = alt((preceded(alt((kw("can"), kw("may"))), name), |i| {
        let (i, _) = kw("is").parse(i)?;
        terminated(name, alt((kw("allowed to"), kw("able to")))).parse(i)
    }))
    .parse(i)?;
    let (i, action) = action(i)?;
    let (i, (resource_type, resource_id)) = resource(i)?;
    let (i, _) = eof(i)?;
    Ok((
        i,
        TypedQuery::Can {
            principal,
            action,
            resource_type,
            resource_id,
        },
    ))
}

fn denied_word(i: &str) -> R<'_, ()> {
    alt((kw("denied"), kw("refused"), kw("blocked"), kw("rejected"))).parse(i)
}

fn why_denied(i: &str) -> R<'_, TypedQuery> {
    let (i, principal) = alt((
        terminated(preceded(kw("why was"), name), denied_word),
        terminated(preceded(kw("why did"), name), (kw("get"), denied_word)),
    ))
    .parse(i)?;
    let (i, window) = window_or_week(i)?;
    let (i, _) = eof(i)?;
    Ok((i, TypedQuery::WhyDenied { principal, window }))
}

fn denials(i: &str) -> R<'_, TypedQuery> {
    let (i, principal) = alt((
        |i| {
            let (i, _) = alt((
                kw("which requests were denied"),
                kw("what requests were denied"),
                kw("what was denied"),
                kw("show denied requests"),
                kw("list denied requests"),
                kw("show denials"),
                kw("list denials"),
            ))
            .parse(i)?;
            opt(preceded(alt((kw("of"), kw("for"), kw("by"))), name)).parse(i)
        },
        |i| {
            let (i, _) = alt((kw("which requests of"), kw("what requests of"))).parse(i)?;
            let (i, n) = terminated(name, (kw("were"), denied_word)).parse(i)?;
            Ok((i, Some(n)))
        },
    ))
    .parse(i)?;
    let (i, window) = window_or_week(i)?;
    let (i, _) = eof(i)?;
    Ok((i, TypedQuery::Denials { principal, window }))
}

fn count_requests(i: &str) -> R<'_, TypedQuery> {
    let (i, (principal, outcome)) = alt((
        |i| {
            let (i, _) = kw("how many requests did").parse(i)?;
            let (i, n) = terminated(name, alt((kw("make"), kw("send")))).parse(i)?;
            Ok((i, (n, None)))
        },
        |i| {
            let (i, _) = kw("how many requests has").parse(i)?;
            let (i, n) = terminated(name, alt((kw("made"), kw("sent")))).parse(i)?;
            Ok((i, (n, None)))
        },
        |i| {
            let (i, _) = kw("how many times was").parse(i)?;
            let (i, n) = terminated(name, denied_word).parse(i)?;
            Ok((i, (n, Some("denied".to_owned()))))
        },
        |i| {
            let (i, _) = kw("how many denials did").parse(i)?;
            let (i, n) = terminated(name, alt((kw("get"), kw("have")))).parse(i)?;
            Ok((i, (n, Some("denied".to_owned()))))
        },
    ))
    .parse(i)?;
    let (i, window) = window_or_week(i)?;
    let (i, _) = eof(i)?;
    Ok((
        i,
        TypedQuery::CountRequests {
            principal,
            window,
            outcome,
        },
    ))
}

fn stale_keys(i: &str) -> R<'_, TypedQuery> {
    let (i, _) = (
        alt((kw("which"), kw("what"), kw("list"), kw("show"))),
        kw("service accounts"),
        alt((kw("have"), kw("with"), kw("whose"))),
        opt(kw("api")),
        alt((kw("keys"), kw("key"))),
        opt(alt((kw("are"), kw("is")))),
        alt((kw("older than"), kw("over"))),
    )
        .parse(i)?;
    let (i, n) = number(i)?;
    let (i, per) = unit_days(i)?;
    let (i, _) = (opt(kw("old")), eof).parse(i)?;
    Ok((
        i,
        TypedQuery::StaleKeys {
            older_than_days: n.saturating_mul(per),
        },
    ))
}

fn roles_of(i: &str) -> R<'_, TypedQuery> {
    let (i, principal) = alt((
        terminated(
            preceded(alt((kw("which roles does"), kw("what roles does"))), name),
            kw("have"),
        ),
        preceded(
            alt((
                kw("which roles has"),
                kw("what roles has"),
                kw("what are the roles of"),
                kw("list roles of"),
                kw("show roles of"),
                kw("roles of"),
            )),
            name,
        ),
    ))
    .parse(i)?;
    let (i, _) = eof(i)?;
    Ok((i, TypedQuery::RolesOf { principal }))
}

fn role_members(i: &str) -> R<'_, TypedQuery> {
    let (i, role) = alt((
        preceded(
            (
                alt((kw("who has"), kw("which users have"), kw("who holds"))),
                opt(kw("the")),
                kw("role"),
            ),
            rest_name,
        ),
        |i| {
            let (i, _) = alt((kw("who has the"), kw("which users have the"))).parse(i)?;
            let (i, ws) = phrase(&["role"])(i)?;
            let (i, _) = kw("role").parse(i)?;
            Ok((i, ws.join(" ")))
        },
        preceded((kw("who is"), alt((kw("an"), kw("a")))), rest_name),
    ))
    .parse(i)?;
    let (i, _) = eof(i)?;
    Ok((i, TypedQuery::RoleMembers { role }))
}

fn group_members(i: &str) -> R<'_, TypedQuery> {
    let (i, _) = alt((
        kw("who is in"),
        kw("who are the members of"),
        kw("who belongs to"),
        kw("which users are in"),
        kw("list members of"),
        kw("members of"),
    ))
    .parse(i)?;
    let (i, _) = (opt(kw("the")), opt(kw("group"))).parse(i)?;
    let (i, group) = rest_name(i)?;
    let (i, _) = eof(i)?;
    let group = group
        .strip_suffix(" group")
        .map(str::to_owned)
        .unwrap_or(group);
    Ok((i, TypedQuery::GroupMembers { group }))
}

fn locked(i: &str) -> R<'_, TypedQuery> {
    let (i, _) = alt((
        kw("which users are locked"),
        kw("which accounts are locked"),
        kw("what accounts are locked"),
        kw("who is locked"),
        kw("list locked accounts"),
        kw("show locked accounts"),
        kw("list locked users"),
    ))
    .parse(i)?;
    let (i, _) = (opt(kw("out")), eof).parse(i)?;
    Ok((i, TypedQuery::LockedAccounts))
}

fn service_accounts(i: &str) -> R<'_, TypedQuery> {
    let (i, _) = alt((
        kw("which service accounts are there"),
        kw("which service accounts exist"),
        kw("what service accounts are there"),
        kw("what service accounts exist"),
        kw("list service accounts"),
        kw("show service accounts"),
        kw("list the service accounts"),
    ))
    .parse(i)?;
    let (i, _) = eof(i)?;
    Ok((i, TypedQuery::ServiceAccounts))
}

/// Maps a question to its typed query, or answers the nearest templates.
pub fn parse(question: &str) -> Result<TypedQuery, Vec<&'static str>> {
    let q = normalize(question);
    let r = alt((
        who_can,
        what_can,
        can,
        why_denied,
        denials,
        count_requests,
        stale_keys,
        roles_of,
        role_members,
        group_members,
        locked,
        service_accounts,
    ))
    .parse(q.as_str());
    match r {
        Ok((_, query)) => Ok(query),
        Err(_) => Err(suggest(&q)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_suggested_template_is_understood() {
        for t in TEMPLATES {
            assert!(parse(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn questions_are_normalized_before_parsing() {
        assert_eq!(
            normalize("  Please, WHO can  delete Vessels?  "),
            "who can delete vessels"
        );
        assert_eq!(
            normalize("roles of alice@nordic.example."),
            "roles of alice@nordic.example"
        );
        assert_eq!(normalize("?!"), "");
        assert_eq!(
            normalize("who can\n\tread vessels\r\n"),
            "who can read vessels"
        );
    }

    #[test]
    fn resource_words_become_a_type() {
        assert_eq!(resource_type(&["port", "calls"]), "port_call");
        assert_eq!(resource_type(&["the", "vessels"]), "vessel");
        assert_eq!(resource_type(&["policies"]), "policy");
        assert_eq!(resource_type(&["access"]), "access");
    }

    #[test]
    fn near_misses_are_not_guessed() {
        for q in [
            "",
            "who can",
            "who can delete",
            "can victor",
            "why was bob denied at 14:02 yesterday",
            "how many requests did alice make last fortnight",
            "which service accounts have keys older than 0 days",
            "who can delete vessels in",
        ] {
            let s = parse(q).unwrap_err();
            assert_eq!(s.len(), 3, "{q}");
        }
        assert_eq!(
            parse("why was bob refused on 2026-03-01 at 9:05").unwrap(),
            TypedQuery::WhyDenied {
                principal: "bob".into(),
                window: Window::Date {
                    date: "2026-03-01".into(),
                    at: Some("09:05".into())
                }
            }
        );
    }

    proptest::proptest! {
        /// Any text: an answer or suggestions, never a panic.
        #[test]
        fn parse_is_total(q in "\\PC{0,80}") {
            match parse(&q) {
                Ok(_) => {}
                Err(s) => proptest::prop_assert_eq!(s.len(), 3),
            }
        }

        /// Template-shaped text with random words never panics either.
        #[test]
        fn template_shapes_are_total(a in "[a-z]{1,8}", b in "[a-z ]{1,20}", n in 0u32..100_000) {
            for q in [
                format!("who can {a} {b} in {b}"),
                format!("what can {a} do on {b}"),
                format!("why was {a} denied last {n} days"),
                format!("which service accounts have keys older than {n} days"),
            ] {
                let _ = parse(&q);
            }
        }
    }
}
