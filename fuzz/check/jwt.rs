// The fuzz property check of JWT verification (`sentinel::auth::jwt`),
// shared by the cargo-fuzz target (fuzz/fuzz_targets/jwt.rs) and the corpus
// replay in `cargo test` (tests/fuzz_corpus.rs), through `include!`.
//
// Input layout: byte 0, bit 0 clear: the rest is the token (lossy UTF-8).
// Bit 0 set: the rest is `header JSON`, a newline, `claims JSON`; the check
// encodes both and signs them with the HS256 issuer's secret, so the fuzzer
// reaches the header and claims parsers behind a valid signature.
//
// Checks: no panic; a refusal carries a SPEC code; an accepted token passes
// an independent reading of its header and claims with serde_json (alg
// HS256 or ES256 with its own issuer, no key-bearing or `crit`/`zip` header,
// `kid` of a configured key, known `iss`, `sentinel` in `aud`, integer `exp`
// not past, `nbf` not ahead, non-empty `sub`), and verifying it again (a
// cache hit) gives the same token.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use sentinel::auth::jwt::{IssuerSpec, KeySource, Verifier, VerifierSettings};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// The HS256 issuer the check signs for.
pub const ISS_HS: &str = "https://hs.fuzz";
/// An ES256 issuer with the demo issuer's JWKS (kid `demo-issuer-1`).
pub const ISS_EC: &str = "https://ec.fuzz";
pub const HS_SECRET: &[u8] = b"fuzz-secret-0123456789abcdef-0123456789";
pub const HS_KID: &str = "hs-1";
const LEEWAY: i64 = 30;
const FORBIDDEN: [&str; 6] = ["jwk", "jku", "x5u", "x5c", "crit", "zip"];

fn repo_file(rel: &str) -> String {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The fuzz crate lives in `fuzz/`; the gateway crate at the repository root.
    let root = if manifest.join("fuzz/check").is_dir() {
        manifest
    } else {
        manifest.parent().unwrap()
    };
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let specs = vec![
            IssuerSpec {
                issuer: ISS_HS.into(),
                audiences: vec!["sentinel".into()],
                algorithms: vec![Algorithm::HS256],
                keys: KeySource::HmacSecret {
                    kid: Some(HS_KID.into()),
                    secret: HS_SECRET.to_vec(),
                },
                leeway: Duration::from_secs(LEEWAY as u64),
                require_low_s: true,
            },
            IssuerSpec {
                issuer: ISS_EC.into(),
                audiences: vec!["sentinel".into()],
                algorithms: vec![Algorithm::ES256],
                keys: KeySource::Jwks(repo_file("config/keys/demo-issuer.jwks.json")),
                leeway: Duration::from_secs(LEEWAY as u64),
                require_low_s: true,
            },
        ];
        runtime()
            .block_on(Verifier::new(specs, VerifierSettings::default()))
            .unwrap()
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `header.claims.signature` with both JSON texts taken as given.
pub fn sign_hs256(header: &[u8], claims: &[u8]) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(HS_SECRET);
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{msg}.{sig}")
}

/// `text` with every lone surrogate escape (`\ud800` without its pair)
/// written as `\ufffd`: JSON's grammar allows them, serde_json does not.
fn without_lone_surrogates(text: &str) -> String {
    let surrogate = |s: &str, lo: u16, hi: u16| {
        s.strip_prefix("\\u")
            .and_then(|h| h.get(..4))
            .and_then(|h| u16::from_str_radix(h, 16).ok())
            .is_some_and(|v| (lo..=hi).contains(&v))
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let high = surrogate(rest, 0xD800, 0xDBFF);
        if high && surrogate(&rest[6..], 0xDC00, 0xDFFF) {
            out.push_str(&rest[..12]);
            rest = &rest[12..];
        } else if high || surrogate(rest, 0xDC00, 0xDFFF) {
            out.push_str("\\ufffd");
            rest = &rest[6..];
        } else {
            // Any other escape is two characters (`\u` is followed by its
            // hex digits, copied as plain text next).
            let n = rest[1..].chars().next().map_or(1, |c| 1 + c.len_utf8());
            out.push_str(&rest[..n]);
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

fn segment(token: &str, i: usize) -> serde_json::Map<String, Value> {
    let seg = token.split('.').nth(i).unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(seg).expect("accepted segment is base64url");
    let text = std::str::from_utf8(&bytes).expect("accepted a segment that is not UTF-8");
    match serde_json::from_str(&without_lone_surrogates(text)) {
        Ok(Value::Object(m)) => m,
        other => panic!("accepted token segment {i} is not a JSON object: {other:?}"),
    }
}

/// Runs one fuzz input (see the layout above); panics on a violated
/// property. Returns whether the token was accepted.
pub fn check(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let (header, claims) = rest.split_at(split);
        sign_hs256(header, claims.get(1..).unwrap_or_default())
    };
    let v = verifier();
    let verified = match runtime().block_on(v.verify(&token)) {
        Ok(t) => t,
        Err(e) => {
            assert!(
                ["AUTH_INVALID", "TOKEN_EXPIRED"].contains(&e.code()),
                "{e:?} has code {}",
                e.code()
            );
            return false;
        }
    };
    assert_eq!(token.split('.').count(), 3, "accepted `{token}`");
    let header = segment(&token, 0);
    let claims = segment(&token, 1);
    let iss = claims.get("iss").and_then(Value::as_str);
    let (alg, kid) = match iss {
        Some(ISS_HS) => ("HS256", HS_KID),
        Some(ISS_EC) => ("ES256", "demo-issuer-1"),
        other => panic!("accepted a token of issuer {other:?}"),
    };
    assert_eq!(header.get("alg").and_then(Value::as_str), Some(alg));
    for name in FORBIDDEN {
        assert!(!header.contains_key(name), "accepted a `{name}` header");
    }
    if let Some(k) = header.get("kid") {
        assert_eq!(k.as_str(), Some(kid), "accepted an unknown kid");
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == "sentinel",
        Some(Value::Array(a)) => a.iter().any(|x| x == "sentinel"),
        _ => false,
    };
    assert!(aud_ok, "accepted aud {:?}", claims.get("aud"));
    let now = unix_now();
    let exp = claims.get("exp").and_then(Value::as_i64);
    assert!(
        exp.is_some_and(|e| e + LEEWAY >= now - 1),
        "accepted exp {:?}",
        claims.get("exp")
    );
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().expect("accepted a non-integer nbf");
        assert!(nbf - LEEWAY <= now + 1, "accepted nbf {nbf}");
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    assert!(!sub.is_empty(), "accepted a token without a subject");
    assert_eq!(verified.subject, sub);
    assert_eq!(Some(verified.issuer.as_str()), iss);
    assert_eq!(Some(verified.expires_at), exp);
    match runtime().block_on(v.verify(&token)) {
        Ok(again) => assert_eq!(*again, *verified, "a second verification differs"),
        // Only a token that expired in between may be refused the second time.
        Err(e) => assert!(
            e.code() == "TOKEN_EXPIRED" && verified.expires_at + LEEWAY <= unix_now() + 1,
            "refused the second time: {e:?}"
        ),
    }
    true
}
