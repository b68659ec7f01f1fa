#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]
//! Hostile and well-formed tokens against `sentinel::auth::jwt::Verifier`,
//! in-process. Every rejection asserts the exact `TokenError` and its code.
//! The tokens that need nothing but an answer are rows of one table
//! ([`rows`], run by `hostile_token_table`), each named after the test it
//! was; what needs more (claims read out, the cache, key files and URLs,
//! settings) has its own test.
//!
//! Run: `cargo test --test jwt_hostile`

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::now;
use jsonwebtoken::{Algorithm, EncodingKey};
use sentinel::auth::ecdsa::{canonical_es256, other_spelling};
use sentinel::auth::jwt::{
    IssuerSpec, KeySource, TokenError, VerifiedToken, Verifier, VerifierSettings,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://idp.test";
const ISS_HS: &str = "https://hs.test";
const ISS_MIXED: &str = "https://mixed.test";
const ISS_ROT: &str = "https://rotated.test";
const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs";
const AUTH_INVALID: &str = "AUTH_INVALID";
const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";

// ---------------------------------------------------------------- helpers

fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

fn jwks(name: &str) -> String {
    String::from_utf8(read_key(name)).unwrap()
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read_key("rsa_private.pem")).unwrap()
}
fn rsa2_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read_key("rsa2_private.pem")).unwrap()
}
fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&read_key("ec_private.pem")).unwrap()
}
fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(&read_key("ed25519_private.pem")).unwrap()
}
fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(HS_SECRET)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.payload` exactly as given (no normalisation), so any header
/// can be forged.
fn forge(header: &Value, claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    let msg = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    let token = format!("{msg}.{sig}");
    // ES256 tokens are written in canonical (low-s) form, as the gateway's
    // own signers write them; `es256_high_s_is_refused` spells one the other way.
    if alg == Algorithm::ES256 {
        return canonical_es256(token);
    }
    token
}

/// Raw header and payload bytes, signed with HS256 (for malformed JSON).
fn forge_raw(header: impl AsRef<[u8]>, payload: impl AsRef<[u8]>, key: &EncodingKey) -> String {
    let msg = format!("{}.{}", b64(header.as_ref()), b64(payload.as_ref()));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, Algorithm::HS256).unwrap();
    format!("{msg}.{sig}")
}

fn claims(iss: &str) -> Value {
    json!({
        "iss": iss,
        "sub": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "aud": "sentinel",
        "exp": now() + 600,
        "iat": now(),
        "jti": "jti-1",
    })
}

fn header(alg: &str, kid: Option<&str>) -> Value {
    let mut h = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        h["kid"] = json!(kid);
    }
    h
}

fn rs256(c: &Value) -> String {
    forge(
        &header("RS256", Some("rsa-1")),
        c,
        Algorithm::RS256,
        &rsa_key(),
    )
}
fn es256(c: &Value) -> String {
    forge(
        &header("ES256", Some("ec-1")),
        c,
        Algorithm::ES256,
        &ec_key(),
    )
}
fn eddsa(c: &Value) -> String {
    forge(
        &header("EdDSA", Some("ed-1")),
        c,
        Algorithm::EdDSA,
        &ed_key(),
    )
}
fn hs256(c: &Value) -> String {
    forge(
        &header("HS256", Some("hs-1")),
        c,
        Algorithm::HS256,
        &hs_key(),
    )
}

fn without(mut c: Value, claim: &str) -> Value {
    c.as_object_mut().unwrap().remove(claim);
    c
}

fn with(mut c: Value, claim: &str, v: Value) -> Value {
    c[claim] = v;
    c
}

fn spec(issuer: &str, algorithms: Vec<Algorithm>, keys: KeySource) -> IssuerSpec {
    IssuerSpec {
        issuer: issuer.into(),
        audiences: vec!["sentinel".into(), "api".into()],
        algorithms,
        keys,
        leeway: Duration::from_secs(30),
        require_low_s: true,
    }
}

fn standard_specs() -> Vec<IssuerSpec> {
    vec![
        spec(
            ISS,
            vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            KeySource::Jwks(jwks("all.jwks.json")),
        ),
        spec(
            ISS_HS,
            vec![Algorithm::HS256],
            KeySource::HmacSecret {
                kid: Some("hs-1".into()),
                secret: HS_SECRET.to_vec(),
            },
        ),
        spec(
            ISS_MIXED,
            vec![Algorithm::HS256, Algorithm::RS256],
            KeySource::Jwks(jwks("rsa.jwks.json")),
        ),
        spec(
            ISS_ROT,
            vec![Algorithm::RS256],
            KeySource::JwksFile(key_path("rotated.jwks.json")),
        ),
    ]
}

async fn verifier() -> Verifier {
    Verifier::new(standard_specs(), VerifierSettings::default())
        .await
        .unwrap()
}

async fn rejects(v: &Verifier, token: &str, want: TokenError, code: &str) {
    match v.verify(token).await {
        Ok(t) => panic!("token accepted, expected {want:?}: {t:?}"),
        Err(e) => {
            assert_eq!(e, want, "wrong reason");
            assert_eq!(e.code(), code, "wrong code for {e:?}");
        }
    }
}

async fn accepts(v: &Verifier, token: &str) -> Arc<VerifiedToken> {
    match v.verify(token).await {
        Ok(t) => t,
        Err(e) => panic!("token refused: {e:?}"),
    }
}

/// A JWKS server on 127.0.0.1:0 that counts requests and serves whatever
/// body (and status) the test sets.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    body: Arc<Mutex<(u16, String)>>,
}

impl JwksServer {
    async fn start(body: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(Mutex::new((200u16, body)));
        let (h, b) = (hits.clone(), body.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (h, b) = (h.clone(), b.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    // Let concurrent requests pile up behind this fetch.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let (status, text) = b.lock().unwrap().clone();
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        JwksServer { url, hits, body }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn serve(&self, status: u16, body: String) {
        *self.body.lock().unwrap() = (status, body);
    }
}

fn url_spec(url: &str, refresh_every: Duration, min_refetch: Duration) -> IssuerSpec {
    spec(
        ISS,
        vec![Algorithm::RS256],
        KeySource::JwksUrl {
            url: url.into(),
            refresh_every,
            min_refetch_interval: min_refetch,
        },
    )
}

// ------------------------------------------------------- the table

/// What the verifier must answer to a row's token.
#[derive(Debug)]
enum Want {
    /// Accepted, as a token of the issuer its `iss` names.
    Accept,
    /// Refused with this reason and this SPEC code.
    Refuse(TokenError, &'static str),
}

use Want::{Accept, Refuse};

/// One token and its expected answer, named after the test it was (rows of
/// one test that checked several tokens carry a `[variant]`).
struct Row {
    name: String,
    token: String,
    want: Want,
}

fn invalid(e: TokenError) -> Want {
    Refuse(e, AUTH_INVALID)
}

/// Every hostile (and well-formed) token against the standard issuers.
fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |name: &str, token: String, want: Want| {
        rows.push(Row {
            name: name.to_owned(),
            token,
            want,
        })
    };

    // Happy paths.
    row("es256_happy_path", es256(&claims(ISS)), Accept);
    // The same signature as (r, n − s): valid ECDSA, but a second spelling
    // of the token (issue 17, item 5). Only the low-s form is accepted.
    row(
        "es256_high_s_is_refused",
        other_spelling(&es256(&claims(ISS))).unwrap(),
        invalid(TokenError::BadSignature),
    );
    row("eddsa_happy_path", eddsa(&claims(ISS)), Accept);
    row("hs256_happy_path", hs256(&claims(ISS_HS)), Accept);
    row(
        "no_kid_with_a_single_key_for_the_algorithm_is_accepted",
        forge(
            &header("ES256", None),
            &claims(ISS),
            Algorithm::ES256,
            &ec_key(),
        ),
        Accept,
    );
    row(
        "audience_as_array_with_one_match_is_accepted",
        rs256(&with(claims(ISS), "aud", json!(["other", "api"]))),
        Accept,
    );
    row(
        "expired_within_leeway_is_accepted",
        rs256(&with(claims(ISS), "exp", json!(now() - 10))),
        Accept,
    );
    row(
        "nbf_within_leeway_and_in_the_past_are_accepted [ahead]",
        rs256(&with(claims(ISS), "nbf", json!(now() + 10))),
        Accept,
    );
    row(
        "nbf_within_leeway_and_in_the_past_are_accepted [past]",
        rs256(&with(claims(ISS), "nbf", json!(now() - 100))),
        Accept,
    );

    // Algorithm attacks.
    let p = b64(&serde_json::to_vec(&claims(ISS)).unwrap());
    row(
        "alg_none_lowercase_is_refused",
        format!("{}.{p}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
        invalid(TokenError::AlgorithmNotAllowed),
    );
    for alg in ["None", "NONE", "nOnE", "none "] {
        let h = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        let name = format!("alg_none_in_other_casings_is_refused [{alg}]");
        row(
            &name,
            format!("{h}.{p}."),
            invalid(TokenError::AlgorithmNotAllowed),
        );
        // With a (meaningless) signature too.
        let name = format!("alg_none_in_other_casings_is_refused [{alg}, signed]");
        row(
            &name,
            format!("{h}.{p}.AAAA"),
            invalid(TokenError::AlgorithmNotAllowed),
        );
    }
    row(
        "missing_alg_is_refused",
        forge_raw(r#"{"typ":"JWT"}"#, claims(ISS_HS).to_string(), &hs_key()),
        invalid(TokenError::AlgorithmNotAllowed),
    );
    for (name, alg) in [
        ("HS512", Algorithm::HS512),
        ("HS384", Algorithm::HS384),
        ("PS256", Algorithm::PS256),
        ("RS512", Algorithm::RS512),
    ] {
        let key = if name.starts_with('H') {
            hs_key()
        } else {
            rsa_key()
        };
        row(
            &format!("unsupported_algorithms_are_refused [{name}]"),
            forge(&header(name, Some("rsa-1")), &claims(ISS), alg, &key),
            invalid(TokenError::AlgorithmNotAllowed),
        );
    }
    row(
        "algorithm_names_are_case_sensitive",
        forge(
            &header("rs256", Some("rsa-1")),
            &claims(ISS),
            Algorithm::RS256,
            &rsa_key(),
        ),
        invalid(TokenError::AlgorithmNotAllowed),
    );
    // ES256 is supported, but ISS_HS only allows HS256.
    row(
        "algorithm_not_in_the_issuers_allow_list_is_refused [ES256 for an HS256 issuer]",
        forge(
            &header("ES256", Some("ec-1")),
            &claims(ISS_HS),
            Algorithm::ES256,
            &ec_key(),
        ),
        invalid(TokenError::AlgorithmNotAllowed),
    );
    // HS256 is supported, but ISS only allows asymmetric algorithms.
    row(
        "algorithm_not_in_the_issuers_allow_list_is_refused [HS256 for an asymmetric issuer]",
        forge(
            &header("HS256", Some("hs-1")),
            &claims(ISS),
            Algorithm::HS256,
            &hs_key(),
        ),
        invalid(TokenError::AlgorithmNotAllowed),
    );
    let pem = EncodingKey::from_secret(&read_key("rsa_public.pem"));
    // Issuer allowing both HS256 and RS256: the kid names an RSA key.
    row(
        "hs256_signed_with_the_rsa_public_key_pem_is_refused [rsa kid]",
        forge(
            &header("HS256", Some("rsa-1")),
            &claims(ISS_MIXED),
            Algorithm::HS256,
            &pem,
        ),
        invalid(TokenError::KeyAlgorithmMismatch),
    );
    // Without a kid: there is no HS256 key at all.
    row(
        "hs256_signed_with_the_rsa_public_key_pem_is_refused [no kid]",
        forge(
            &header("HS256", None),
            &claims(ISS_MIXED),
            Algorithm::HS256,
            &pem,
        ),
        invalid(TokenError::KeyAlgorithmMismatch),
    );
    // Issuer not allowing HS256.
    row(
        "hs256_signed_with_the_rsa_public_key_pem_is_refused [issuer without HS256]",
        forge(
            &header("HS256", Some("rsa-1")),
            &claims(ISS),
            Algorithm::HS256,
            &pem,
        ),
        invalid(TokenError::AlgorithmNotAllowed),
    );
    // The JWK-derived DER and the raw modulus fail the same way.
    row(
        "hs256_signed_with_the_rsa_public_key_pem_is_refused [other secret]",
        forge(
            &header("HS256", Some("rsa-1")),
            &claims(ISS_MIXED),
            Algorithm::HS256,
            &hs_key(),
        ),
        invalid(TokenError::KeyAlgorithmMismatch),
    );
    row(
        "es256_token_naming_an_rsa_kid_is_refused",
        forge(
            &header("ES256", Some("rsa-1")),
            &claims(ISS),
            Algorithm::ES256,
            &ec_key(),
        ),
        invalid(TokenError::KeyAlgorithmMismatch),
    );
    for kid in ["ec-1", "ed-1"] {
        row(
            &format!("rs256_token_naming_an_ec_or_ed_kid_is_refused [{kid}]"),
            forge(
                &header("RS256", Some(kid)),
                &claims(ISS),
                Algorithm::RS256,
                &rsa_key(),
            ),
            invalid(TokenError::KeyAlgorithmMismatch),
        );
    }
    row(
        "eddsa_token_naming_an_ec_kid_is_refused",
        forge(
            &header("EdDSA", Some("ec-1")),
            &claims(ISS),
            Algorithm::EdDSA,
            &ed_key(),
        ),
        invalid(TokenError::KeyAlgorithmMismatch),
    );

    // Forbidden headers.
    let jwk: Value =
        serde_json::from_str::<Value>(&jwks("rsa.jwks.json")).unwrap()["keys"][0].clone();
    for (test, name, value) in [
        ("embedded_jwk_header_is_refused", "jwk", jwk),
        (
            "jku_header_is_refused",
            "jku",
            json!("https://attacker.example/jwks.json"),
        ),
        ("jku_header_is_refused_even_when_null", "jku", Value::Null),
        (
            "x5u_header_is_refused",
            "x5u",
            json!("https://attacker.example/cert.pem"),
        ),
        ("x5c_header_is_refused", "x5c", json!(["MIIBIjANBgkq"])),
        ("crit_header_is_refused", "crit", json!(["exp"])),
        ("zip_header_is_refused", "zip", json!("DEF")),
    ] {
        let mut h = header("RS256", Some("rsa-1"));
        h[name] = value;
        row(
            test,
            forge(&h, &claims(ISS), Algorithm::RS256, &rsa_key()),
            invalid(TokenError::ForbiddenHeader(name)),
        );
    }

    // Signatures and shape.
    for (alg, t) in [
        ("RS256", rs256(&claims(ISS))),
        ("ES256", es256(&claims(ISS))),
        ("EdDSA", eddsa(&claims(ISS))),
        ("HS256", hs256(&claims(ISS_HS))),
    ] {
        row(
            &format!("flipped_signature_byte_is_refused_for_every_algorithm [{alg}]"),
            flip_signature_byte(&t),
            invalid(TokenError::BadSignature),
        );
    }
    row(
        "signature_by_another_key_is_refused",
        forge(
            &header("RS256", Some("rsa-1")),
            &claims(ISS),
            Algorithm::RS256,
            &rsa2_key(),
        ),
        invalid(TokenError::BadSignature),
    );
    let t = rs256(&claims(ISS));
    let parts: Vec<&str> = t.split('.').collect();
    let evil = with(
        claims(ISS),
        "sub",
        json!("00000000-0000-0000-0000-000000000000"),
    );
    row(
        "tampered_header_is_refused",
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}"#),
            parts[1],
            parts[2]
        ),
        invalid(TokenError::BadSignature),
    );
    row(
        "tampered_payload_is_refused",
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_vec(&evil).unwrap()),
            parts[2]
        ),
        invalid(TokenError::BadSignature),
    );
    row(
        "truncated_to_two_segments_is_malformed",
        format!("{}.{}", parts[0], parts[1]),
        invalid(TokenError::Malformed),
    );
    for (variant, extra) in [
        ("one more", ".AAAA"),
        ("two more", ".AAAA.AAAA"),
        ("empty", "."),
    ] {
        row(
            &format!("extra_segments_are_malformed [{variant}]"),
            format!("{t}{extra}"),
            invalid(TokenError::Malformed),
        );
    }
    row(
        "padded_base64_is_malformed",
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
        invalid(TokenError::Malformed),
    );
    let t = es256(&claims(ISS));
    row(
        "truncated_signature_is_refused [4 characters short]",
        t[..t.len() - 4].to_owned(),
        invalid(TokenError::BadSignature),
    );
    let (msg, _) = t.rsplit_once('.').unwrap();
    row(
        "truncated_signature_is_refused [empty]",
        format!("{msg}."),
        invalid(TokenError::BadSignature),
    );
    for t in ["", ".", "..", "...", " "] {
        row(
            &format!("empty_and_dot_only_tokens_are_malformed [{t:?}]"),
            t.to_owned(),
            invalid(TokenError::Malformed),
        );
    }
    for t in [
        "!!!.@@@.###",
        "a b.c d.e f",
        "eyJ+.eyJ/.abc",
        "ünïcödé.x.y",
        "a\0b.c.d",
    ] {
        row(
            &format!("non_base64_garbage_is_malformed [{t:?}]"),
            t.to_owned(),
            invalid(TokenError::Malformed),
        );
    }
    let p = claims(ISS_HS).to_string();
    for h in [
        "not json",
        "",
        "[\"alg\",\"HS256\"]",
        "\"HS256\"",
        "{\"alg\":\"HS256\"",
    ] {
        row(
            &format!("non_json_header_is_malformed [{h:?}]"),
            forge_raw(h, &p, &hs_key()),
            invalid(TokenError::Malformed),
        );
    }
    for h in [
        r#"{"alg":256}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":"HS256","kid":1}"#,
    ] {
        row(
            &format!("non_string_alg_or_kid_is_malformed [{h}]"),
            forge_raw(h, &p, &hs_key()),
            invalid(TokenError::Malformed),
        );
    }
    row(
        "duplicate_alg_member_is_malformed",
        forge_raw(
            r#"{"alg":"none","alg":"HS256","kid":"hs-1"}"#,
            &p,
            &hs_key(),
        ),
        invalid(TokenError::Malformed),
    );
    let h = r#"{"alg":"HS256","kid":"hs-1"}"#;
    // JSON text is UTF-8: invalid bytes are refused in members the
    // verifier does not read too (found by fuzz/fuzz_targets/jwt.rs).
    let exp = now() + 600;
    let valid = format!(r#"{{"iss":"{ISS_HS}","sub":"a","aud":"sentinel","exp":{exp}"#);
    row(
        "non_utf8_json_is_malformed [claims]",
        forge_raw(
            h,
            [valid.as_bytes(), &b",\"x\":\"\xff\xfe\"}"[..]].concat(),
            &hs_key(),
        ),
        invalid(TokenError::Malformed),
    );
    row(
        "non_utf8_json_is_malformed [header]",
        forge_raw(
            &b"{\"alg\":\"HS256\",\"kid\":\"hs-1\",\"x\":\"\xff\"}"[..],
            format!("{valid}}}"),
            &hs_key(),
        ),
        invalid(TokenError::Malformed),
    );
    row(
        "non_utf8_json_is_malformed [control: the same claims in UTF-8]",
        forge_raw(h, format!("{valid},\"x\":\"é\"}}"), &hs_key()),
        Accept,
    );
    for p in ["garbage", "[1,2,3]", "null", "\"iss\"", "{\"iss\":"] {
        row(
            &format!("non_json_or_non_object_payload_is_malformed [{p}]"),
            forge_raw(h, p, &hs_key()),
            invalid(TokenError::Malformed),
        );
    }
    row(
        "duplicate_claim_is_malformed",
        forge_raw(
            h,
            format!(r#"{{"iss":"{ISS_HS}","sub":"a","sub":"b","aud":"sentinel","exp":{exp}}}"#),
            &hs_key(),
        ),
        invalid(TokenError::Malformed),
    );
    row(
        "huge_token_is_refused_before_decoding [8193 characters]",
        "A".repeat(8193),
        invalid(TokenError::TooLarge),
    );
    // Even garbage bytes that would otherwise be malformed.
    row(
        "huge_token_is_refused_before_decoding [garbage]",
        "!".repeat(100_000),
        invalid(TokenError::TooLarge),
    );
    // A validly signed but oversized token.
    row(
        "huge_token_is_refused_before_decoding [signed]",
        rs256(&with(claims(ISS), "pad", json!("x".repeat(9000)))),
        invalid(TokenError::TooLarge),
    );

    // Issuer and audience.
    for iss in [
        "https://evil.test",
        "https://idp.test/",
        "HTTPS://IDP.TEST",
        "",
    ] {
        row(
            &format!("wrong_issuer_is_refused [{iss:?}]"),
            rs256(&claims(iss)),
            invalid(TokenError::UnknownIssuer),
        );
    }
    row(
        "missing_issuer_is_refused",
        rs256(&without(claims(ISS), "iss")),
        invalid(TokenError::UnknownIssuer),
    );
    row(
        "non_string_issuer_is_refused",
        rs256(&with(claims(ISS), "iss", json!([ISS]))),
        invalid(TokenError::InvalidClaim("iss")),
    );
    // Signed with the HS issuer's secret but claiming ISS_MIXED (which has no HS key).
    row(
        "token_of_one_issuer_signed_by_another_issuers_key_is_refused",
        hs256(&claims(ISS_MIXED)),
        invalid(TokenError::UnknownKey),
    );
    for aud in [
        json!("other-app"),
        json!(["other-app", "SENTINEL"]),
        json!([]),
    ] {
        row(
            &format!("wrong_audience_is_refused [{aud}]"),
            rs256(&with(claims(ISS), "aud", aud)),
            invalid(TokenError::WrongAudience),
        );
    }
    row(
        "missing_audience_is_refused",
        rs256(&without(claims(ISS), "aud")),
        invalid(TokenError::WrongAudience),
    );
    for aud in [json!(1), json!({"aud": "sentinel"}), json!(["sentinel", 1])] {
        row(
            &format!("non_string_audience_is_refused [{aud}]"),
            rs256(&with(claims(ISS), "aud", aud)),
            invalid(TokenError::InvalidClaim("aud")),
        );
    }

    // Time claims.
    for exp in [now() - 31, -1] {
        row(
            &format!("expired_token_is_refused_with_token_expired [exp {exp}]"),
            rs256(&with(claims(ISS), "exp", json!(exp))),
            Refuse(TokenError::Expired, TOKEN_EXPIRED),
        );
    }
    row(
        "nbf_in_the_future_is_refused",
        rs256(&with(claims(ISS), "nbf", json!(now() + 120))),
        invalid(TokenError::NotYetValid),
    );
    row(
        "iat_in_the_future_is_refused",
        rs256(&with(claims(ISS), "iat", json!(now() + 120))),
        invalid(TokenError::InvalidClaim("iat")),
    );
    row(
        "missing_exp_is_refused [absent]",
        rs256(&without(claims(ISS), "exp")),
        invalid(TokenError::InvalidClaim("exp")),
    );
    row(
        "missing_exp_is_refused [null]",
        rs256(&with(claims(ISS), "exp", Value::Null)),
        invalid(TokenError::InvalidClaim("exp")),
    );
    for (test, claim, value) in [
        ("string_exp_is_refused", "exp", json!("9999999999")),
        ("string_nbf_is_refused", "nbf", json!("0")),
        ("string_iat_is_refused", "iat", json!("0")),
    ] {
        row(
            test,
            rs256(&with(claims(ISS), claim, value)),
            invalid(TokenError::InvalidClaim(claim)),
        );
    }
    // Decision: NumericDate must be a JSON integer. RFC 7519 allows fractions,
    // but no issuer we trust emits them and a strict type closes parser
    // differentials (`1e10`, `9999999999.9`).
    for exp in [json!((now() + 600) as f64 + 0.5), json!(1e10), json!(true)] {
        row(
            &format!("float_exp_is_refused [{exp}]"),
            rs256(&with(claims(ISS), "exp", exp)),
            invalid(TokenError::InvalidClaim("exp")),
        );
    }
    row(
        "exp_beyond_i64_is_refused",
        forge_raw(
            h,
            format!(
                r#"{{"iss":"{ISS_HS}","sub":"a","aud":"sentinel","exp":18446744073709551615}}"#
            ),
            &hs_key(),
        ),
        invalid(TokenError::InvalidClaim("exp")),
    );

    // Other claims.
    row(
        "missing_sub_is_refused",
        rs256(&without(claims(ISS), "sub")),
        invalid(TokenError::InvalidClaim("sub")),
    );
    for sub in [json!(""), json!(42), json!(null), json!(["a"])] {
        row(
            &format!("empty_or_non_string_sub_is_refused [{sub}]"),
            rs256(&with(claims(ISS), "sub", sub)),
            invalid(TokenError::InvalidClaim("sub")),
        );
    }
    for (claim, value, reason) in [
        ("jti", json!(7), "jti"),
        ("tid", json!(1), "tid"),
        ("tenant_id", json!(["a"]), "tenant_id"),
        ("mfa", json!("true"), "mfa"),
        ("amr", json!("mfa"), "amr"),
        ("amr", json!(["mfa", 1]), "amr"),
        ("scope", json!(["read"]), "scope"),
        ("scp", json!(7), "scp"),
    ] {
        row(
            &format!("badly_typed_identity_claims_are_refused [{claim}: {value}]"),
            rs256(&with(claims(ISS), claim, value)),
            invalid(TokenError::InvalidClaim(reason)),
        );
    }

    // Key selection.
    row(
        "missing_kid_with_several_keys_is_refused",
        forge(
            &header("RS256", None),
            &claims(ISS_ROT),
            Algorithm::RS256,
            &rsa_key(),
        ),
        invalid(TokenError::MissingKid),
    );
    // With the kid, the same key verifies.
    row(
        "missing_kid_with_several_keys_is_refused [control: kid rsa-1]",
        forge(
            &header("RS256", Some("rsa-1")),
            &claims(ISS_ROT),
            Algorithm::RS256,
            &rsa_key(),
        ),
        Accept,
    );
    row(
        "missing_kid_with_several_keys_is_refused [control: kid rsa-2]",
        forge(
            &header("RS256", Some("rsa-2")),
            &claims(ISS_ROT),
            Algorithm::RS256,
            &rsa2_key(),
        ),
        Accept,
    );
    for kid in ["rsa-9", "", "RSA-1", "rsa-1\u{0}"] {
        row(
            &format!("unknown_kid_is_refused [{kid:?}]"),
            forge(
                &header("RS256", Some(kid)),
                &claims(ISS),
                Algorithm::RS256,
                &rsa_key(),
            ),
            invalid(TokenError::UnknownKey),
        );
    }
    row(
        "unknown_kid_is_refused [hs-2]",
        forge(
            &header("HS256", Some("hs-2")),
            &claims(ISS_HS),
            Algorithm::HS256,
            &hs_key(),
        ),
        invalid(TokenError::UnknownKey),
    );
    for (alg, t) in [
        ("ES256", es256(&claims(ISS))),
        ("EdDSA", eddsa(&claims(ISS))),
        ("RS256", rs256(&claims(ISS))),
    ] {
        let (msg, sig) = t.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw.push(0);
        row(
            &format!("wrong_size_signatures_are_refused [{alg}, one byte more]"),
            format!("{msg}.{}", b64(&raw)),
            invalid(TokenError::BadSignature),
        );
        row(
            &format!("wrong_size_signatures_are_refused [{alg}, 10 bytes]"),
            format!("{msg}.{}", b64(&raw[..10])),
            invalid(TokenError::BadSignature),
        );
    }
    rows
}

/// Every row against a fresh verifier of the standard issuers (as each was
/// its own test). A refusal must carry the exact `TokenError` and its code;
/// an accepted token must be of the issuer its `iss` names.
#[tokio::test]
async fn hostile_token_table() {
    let mut failures = Vec::new();
    let rows = rows();
    for Row { name, token, want } in &rows {
        let v = verifier().await;
        let got = v.verify(token).await;
        let ok = match (want, &got) {
            (Accept, Ok(t)) => {
                let (_, payload) = token.split_once('.').unwrap();
                let payload = payload.split('.').next().unwrap();
                let c: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
                c["iss"] == t.issuer.as_str()
            }
            (Refuse(reason, code), Err(e)) => e == reason && e.code() == *code,
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    // One row per token the tests before the table checked (136), none
    // lost, and the rows added since (the last: high-s ES256, issue 17).
    assert_eq!(rows.len(), 140, "rows in the table");
    assert!(
        failures.is_empty(),
        "hostile token table failures:\n{}",
        failures.join("\n")
    );
}

// ------------------------------------------------------- what an accepted token says

#[tokio::test]
async fn rs256_happy_path() {
    let v = verifier().await;
    let t = accepts(&v, &rs256(&claims(ISS))).await;
    assert_eq!(t.issuer, ISS);
    assert_eq!(t.subject, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert_eq!(t.jti.as_deref(), Some("jti-1"));
    assert!(!t.mfa);
    assert!(t.tenant_id.is_none());
    assert!(t.issued_at.is_some());
}

#[tokio::test]
async fn hmac_secret_without_kid_accepts_tokens_with_or_without_kid() {
    let specs = vec![spec(
        ISS_HS,
        vec![Algorithm::HS256],
        KeySource::HmacSecret {
            kid: None,
            secret: HS_SECRET.to_vec(),
        },
    )];
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    accepts(&v, &hs256(&claims(ISS_HS))).await;
    let t = forge(
        &header("HS256", None),
        &claims(ISS_HS),
        Algorithm::HS256,
        &hs_key(),
    );
    accepts(&v, &t).await;
}

#[tokio::test]
async fn mfa_from_amr_and_from_mfa_claim() {
    let v = verifier().await;
    for amr in ["mfa", "otp", "hwk"] {
        let c = with(claims(ISS), "amr", json!(["pwd", amr]));
        assert!(accepts(&v, &rs256(&c)).await.mfa, "amr {amr}");
    }
    let c = with(claims(ISS), "amr", json!(["pwd"]));
    assert!(!accepts(&v, &rs256(&c)).await.mfa);
    let c = with(claims(ISS), "mfa", json!(true));
    assert!(accepts(&v, &rs256(&c)).await.mfa);
    let c = with(claims(ISS), "mfa", json!(false));
    assert!(!accepts(&v, &rs256(&c)).await.mfa);
}

#[tokio::test]
async fn tenant_and_scopes_are_extracted() {
    let v = verifier().await;
    let c = with(
        claims(ISS),
        "tid",
        json!("11111111-1111-1111-1111-111111111111"),
    );
    let c = with(c, "scope", json!("read  write"));
    let c = with(c, "scp", json!(["admin"]));
    let t = accepts(&v, &rs256(&c)).await;
    assert_eq!(
        t.tenant_id.as_deref(),
        Some("11111111-1111-1111-1111-111111111111")
    );
    assert_eq!(t.scopes, vec!["read", "write", "admin"]);
    let c = with(claims(ISS), "tenant_id", json!("t-2"));
    assert_eq!(
        accepts(&v, &rs256(&c)).await.tenant_id.as_deref(),
        Some("t-2")
    );
}

#[tokio::test]
async fn cache_hit_returns_the_same_verified_token() {
    let v = verifier().await;
    let t = rs256(&claims(ISS));
    let a = accepts(&v, &t).await;
    let b = accepts(&v, &t).await;
    assert!(Arc::ptr_eq(&a, &b), "second verify should be a cache hit");
    assert_eq!(v.cache_len(), 1);
}

/// The cache matches a token byte for byte: variants of a cached token that
/// keep its signature are verified afresh, and refused.
#[tokio::test]
async fn a_cached_token_does_not_vouch_for_its_variants() {
    let v = verifier().await;
    let t = rs256(&claims(ISS));
    accepts(&v, &t).await;
    assert_eq!(v.cache_len(), 1);
    let parts: Vec<&str> = t.split('.').collect();
    let evil = with(
        claims(ISS),
        "sub",
        json!("00000000-0000-0000-0000-000000000000"),
    );
    let evil_payload = b64(&serde_json::to_vec(&evil).unwrap());
    let evil_header = b64(br#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}"#);
    for variant in [
        format!("{}.{evil_payload}.{}", parts[0], parts[2]),
        format!("{evil_header}.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}A", parts[0], parts[1], parts[2]),
    ] {
        let err = v
            .verify(&variant)
            .await
            .expect_err("a variant was accepted");
        assert!(
            matches!(err, TokenError::BadSignature | TokenError::Malformed),
            "{variant}: {err:?}"
        );
    }
    // The original is still the cached one.
    let again = accepts(&v, &t).await;
    assert_eq!(again.subject, claims(ISS)["sub"].as_str().unwrap());
    assert_eq!(v.cache_len(), 1);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let v = verifier().await;
    let c = with(claims(ISS), "exp", json!(now() - 100));
    let t = rs256(&c);
    rejects(&v, &t, TokenError::Expired, TOKEN_EXPIRED).await;
    rejects(&v, &t, TokenError::Expired, TOKEN_EXPIRED).await;
    assert_eq!(v.cache_len(), 0);
}

#[tokio::test]
async fn token_exactly_at_the_size_limit_is_accepted() {
    let t = rs256(&claims(ISS));
    let settings = VerifierSettings {
        max_token_bytes: t.len(),
        ..VerifierSettings::default()
    };
    let v = Verifier::new(standard_specs(), settings).await.unwrap();
    accepts(&v, &t).await;
    rejects(&v, &format!("{t}A"), TokenError::TooLarge, AUTH_INVALID).await;
}

// ------------------------------------------------------- signatures and shape

fn flip_signature_byte(token: &str) -> String {
    let (msg, sig) = token.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[5] ^= 0x01;
    format!("{msg}.{}", b64(&raw))
}

/// Every one-character change anywhere in a valid token (including the
/// trailing bits of a base64 segment) is refused, and nothing panics.
#[tokio::test]
async fn every_single_character_mutation_is_refused() {
    let v = verifier().await;
    for t in [hs256(&claims(ISS_HS)), eddsa(&claims(ISS))] {
        accepts(&v, &t).await;
        let bytes = t.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'A', b'B', b'-', b'.', b'='] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut m = bytes.to_vec();
                m[i] = replacement;
                let m = String::from_utf8(m).unwrap();
                assert!(v.verify(&m).await.is_err(), "mutation at {i} accepted: {m}");
            }
        }
    }
}

// ------------------------------------------------------- time claims

#[tokio::test]
async fn expiry_is_exact_without_leeway() {
    let mut specs = standard_specs();
    specs[0].leeway = Duration::ZERO;
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    let c = with(claims(ISS), "exp", json!(now() - 1));
    rejects(&v, &rs256(&c), TokenError::Expired, TOKEN_EXPIRED).await;
    let c = with(claims(ISS), "exp", json!(now() + 5));
    accepts(&v, &rs256(&c)).await;
}

/// An issuer whose signer does not normalise `s` (Go, Java, OpenSSL) can be
/// configured to accept both spellings; the default refuses the high one.
#[tokio::test]
async fn high_s_es256_only_where_the_issuer_allows_it() {
    let high = other_spelling(&es256(&claims(ISS))).unwrap();
    rejects(
        &verifier().await,
        &high,
        TokenError::BadSignature,
        AUTH_INVALID,
    )
    .await;
    let mut specs = standard_specs();
    specs[0].require_low_s = false;
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    accepts(&v, &high).await;
    accepts(&v, &es256(&claims(ISS))).await;
}

// ------------------------------------------------------- other claims

#[tokio::test]
async fn conflicting_tenant_claims_are_refused() {
    let v = verifier().await;
    let c = with(claims(ISS), "tid", json!("a"));
    let c = with(c, "tenant_id", json!("b"));
    rejects(
        &v,
        &rs256(&c),
        TokenError::InvalidClaim("tid"),
        AUTH_INVALID,
    )
    .await;
    let c = with(claims(ISS), "tid", json!("a"));
    let c = with(c, "tenant_id", json!("a"));
    assert_eq!(
        accepts(&v, &rs256(&c)).await.tenant_id.as_deref(),
        Some("a")
    );
}

// ------------------------------------------------------- cache

#[tokio::test]
async fn cache_does_not_outlive_exp() {
    let mut specs = standard_specs();
    specs[0].leeway = Duration::ZERO;
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    let c = with(claims(ISS), "exp", json!(now() + 2));
    let t = rs256(&c);
    accepts(&v, &t).await;
    accepts(&v, &t).await; // cached
    tokio::time::sleep(Duration::from_millis(3100)).await;
    rejects(&v, &t, TokenError::Expired, TOKEN_EXPIRED).await;
}

#[tokio::test]
async fn cache_disabled_still_verifies() {
    let settings = VerifierSettings {
        cache_capacity: 0,
        ..VerifierSettings::default()
    };
    let v = Verifier::new(standard_specs(), settings).await.unwrap();
    let t = rs256(&claims(ISS));
    let a = accepts(&v, &t).await;
    let b = accepts(&v, &t).await;
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(v.cache_len(), 0);
    rejects(
        &v,
        &flip_signature_byte(&t),
        TokenError::BadSignature,
        AUTH_INVALID,
    )
    .await;
}

// ------------------------------------------------------- JWKS files

#[tokio::test]
async fn jwks_file_rotation_is_picked_up_and_removed_keys_drop_cached_tokens() {
    let dir = std::env::temp_dir().join(format!("sentinel-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    std::fs::write(&path, jwks("rsa.jwks.json")).unwrap();
    let specs = vec![spec(
        ISS,
        vec![Algorithm::RS256],
        KeySource::JwksFile(path.clone()),
    )];
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();

    let old = rs256(&claims(ISS));
    accepts(&v, &old).await; // now cached
    let new = forge(
        &header("RS256", Some("rsa-2")),
        &claims(ISS),
        Algorithm::RS256,
        &rsa2_key(),
    );
    rejects(&v, &new, TokenError::UnknownKey, AUTH_INVALID).await;

    std::fs::write(&path, jwks("rsa2.jwks.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accepts(&v, &new).await;
    // rsa-1 is gone: its cached token must not survive.
    rejects(&v, &old, TokenError::UnknownKey, AUTH_INVALID).await;

    // A broken rewrite keeps the last good keys. The file is looked at (at
    // most once a second) when a token is verified afresh, never on a cache
    // hit: wait out that second, then verify a token the cache has not seen.
    std::fs::write(&path, "{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = forge(
        &header("RS256", Some("rsa-2")),
        &with(claims(ISS), "jti", json!("jti-fresh")),
        Algorithm::RS256,
        &rsa2_key(),
    );
    assert_ne!(fresh, new, "the same token would be a cache hit");
    accepts(&v, &fresh).await;
    // Control: the file is still watched after the broken rewrite: rsa-1
    // comes back, rsa-2 is gone.
    std::fs::write(&path, jwks("rsa.jwks.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let gone = forge(
        &header("RS256", Some("rsa-2")),
        &with(claims(ISS), "jti", json!("jti-gone")),
        Algorithm::RS256,
        &rsa2_key(),
    );
    rejects(&v, &gone, TokenError::UnknownKey, AUTH_INVALID).await;
    accepts(&v, &rs256(&with(claims(ISS), "jti", json!("jti-back")))).await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------- JWKS URLs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_unknown_kids_causes_at_most_one_refetch() {
    let server = JwksServer::start(jwks("rsa.jwks.json")).await;
    let specs = vec![url_spec(
        &server.url,
        Duration::from_secs(300),
        Duration::from_secs(1),
    )];
    let v = Arc::new(
        Verifier::new(specs, VerifierSettings::default())
            .await
            .unwrap(),
    );
    assert_eq!(server.hits(), 1, "initial fetch");
    accepts(&v, &rs256(&claims(ISS))).await;

    // The initial fetch counts against min_refetch_interval.
    let t = forge(
        &header("RS256", Some("nope")),
        &claims(ISS),
        Algorithm::RS256,
        &rsa_key(),
    );
    rejects(&v, &t, TokenError::UnknownKey, AUTH_INVALID).await;
    assert_eq!(server.hits(), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Tokens first (RSA signing is slow in debug builds), then all at once.
    let tokens: Vec<String> = (0..64)
        .map(|i| {
            let kid = format!("unknown-{i}");
            forge(
                &header("RS256", Some(&kid)),
                &claims(ISS),
                Algorithm::RS256,
                &rsa_key(),
            )
        })
        .collect();
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let v = v.clone();
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.map(|_| ()), Err(TokenError::UnknownKey));
    }
    assert_eq!(server.hits(), 2, "one refetch for the whole flood");
    rejects(&v, &t, TokenError::UnknownKey, AUTH_INVALID).await;
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn key_rotation_is_picked_up_after_refetch() {
    let server = JwksServer::start(jwks("rsa.jwks.json")).await;
    let specs = vec![url_spec(
        &server.url,
        Duration::from_secs(300),
        Duration::from_secs(1),
    )];
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    let new = forge(
        &header("RS256", Some("rsa-2")),
        &claims(ISS),
        Algorithm::RS256,
        &rsa2_key(),
    );
    rejects(&v, &new, TokenError::UnknownKey, AUTH_INVALID).await;

    server.serve(200, jwks("rotated.jwks.json"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accepts(&v, &new).await;
    assert_eq!(server.hits(), 2);
    accepts(&v, &rs256(&claims(ISS))).await;
}

#[tokio::test]
async fn refresh_task_picks_up_rotation_and_keeps_last_good_keys_on_failure() {
    let server = JwksServer::start(jwks("rsa.jwks.json")).await;
    // min_refetch_interval is long: only the refresh task can fetch.
    let specs = vec![url_spec(
        &server.url,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    )];
    let v = Arc::new(
        Verifier::new(specs, VerifierSettings::default())
            .await
            .unwrap(),
    );
    let refresh = v.spawn_refresh();

    server.serve(200, jwks("rotated.jwks.json"));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let new = forge(
        &header("RS256", Some("rsa-2")),
        &claims(ISS),
        Algorithm::RS256,
        &rsa2_key(),
    );
    accepts(&v, &new).await;

    server.serve(500, "oops".into());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let again = forge(
        &header("RS256", Some("rsa-2")),
        &claims(ISS),
        Algorithm::RS256,
        &rsa2_key(),
    );
    accepts(&v, &again).await;
    assert!(server.hits() >= 3);
    refresh.abort();
}

#[tokio::test]
async fn unreachable_jwks_url_at_start_is_not_fatal() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let specs = vec![url_spec(
        &url,
        Duration::from_secs(300),
        Duration::from_secs(1),
    )];
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    assert!(!v.has_keys());
    rejects(
        &v,
        &rs256(&claims(ISS)),
        TokenError::UnknownKey,
        AUTH_INVALID,
    )
    .await;
}

#[tokio::test]
async fn oversized_jwks_response_is_refused() {
    let huge = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let server = JwksServer::start(huge).await;
    let specs = vec![url_spec(
        &server.url,
        Duration::from_secs(300),
        Duration::from_secs(1),
    )];
    let v = Verifier::new(specs, VerifierSettings::default())
        .await
        .unwrap();
    assert!(!v.has_keys());
}

// ------------------------------------------------------- setup errors

#[tokio::test]
async fn bad_specs_are_setup_errors() {
    let hs = |secret: &[u8], algs: Vec<Algorithm>| {
        spec(
            ISS_HS,
            algs,
            KeySource::HmacSecret {
                kid: None,
                secret: secret.to_vec(),
            },
        )
    };
    let cases: Vec<(Vec<IssuerSpec>, &str)> = vec![
        (
            vec![hs(b"short", vec![Algorithm::HS256])],
            "at least 32 bytes",
        ),
        (
            vec![hs(HS_SECRET, vec![Algorithm::RS256])],
            "can only verify HS256",
        ),
        (vec![hs(HS_SECRET, vec![Algorithm::HS512])], "not supported"),
        (vec![hs(HS_SECRET, vec![])], "at least one algorithm"),
        (
            vec![spec(
                ISS,
                vec![Algorithm::RS256],
                KeySource::Jwks("{}".into()),
            )],
            "invalid keys",
        ),
        (
            vec![spec(
                ISS,
                vec![Algorithm::ES256],
                KeySource::Jwks(jwks("rsa.jwks.json")),
            )],
            "no key can verify",
        ),
        (
            vec![spec(
                ISS,
                vec![Algorithm::RS256],
                KeySource::JwksFile(key_path("missing.json")),
            )],
            "cannot read",
        ),
        (
            vec![spec(
                ISS,
                vec![Algorithm::RS256],
                KeySource::JwksUrl {
                    url: "ftp://x".into(),
                    refresh_every: Duration::from_secs(60),
                    min_refetch_interval: Duration::from_secs(10),
                },
            )],
            "not an http(s) URL",
        ),
        (
            vec![
                hs(HS_SECRET, vec![Algorithm::HS256]),
                hs(HS_SECRET, vec![Algorithm::HS256]),
            ],
            "configured twice",
        ),
    ];
    for (specs, want) in cases {
        match Verifier::new(specs, VerifierSettings::default()).await {
            Ok(_) => panic!("accepted a bad spec, expected `{want}`"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "`{msg}` should mention `{want}`");
                assert!(!msg.ends_with('.'));
            }
        }
    }
}
