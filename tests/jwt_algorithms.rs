#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]
//! The algorithms identity providers issue beyond the first four (RS384,
//! RS512, PS256, PS384, PS512, ES384), their algorithm-confusion
//! negatives, and issuers configured from an OpenID Connect discovery
//! document served by a local server. In-process, like `jwt_hostile.rs`
//! (whose table still covers the first four).
//!
//! Run: `cargo test --test jwt_algorithms`

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::now;
use jsonwebtoken::{Algorithm, EncodingKey};
use sentinel::auth::ecdsa::{canonical_es256, canonical_es384};
use sentinel::auth::jwks::{parse_jwks, Origin};
use sentinel::auth::jwt::{IssuerSpec, KeySource, TokenError, Verifier, VerifierSettings};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://idp.test";

fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name),
    )
    .unwrap()
}

fn algs_jwks() -> String {
    String::from_utf8(read_key("algs.jwks.json")).unwrap()
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
fn ec384_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&read_key("ec384_private.pem")).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(iss: &str) -> Value {
    json!({
        "iss": iss,
        "sub": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "aud": "sentinel",
        "exp": now() + 600,
        "iat": now(),
    })
}

/// Signs with `alg` under a header that says `header_alg` (they differ in
/// the confusion tests); ECDSA signatures are written low-s.
fn forge(header_alg: &str, kid: &str, alg: Algorithm, key: &EncodingKey, c: &Value) -> String {
    let header = json!({"alg": header_alg, "typ": "JWT", "kid": kid});
    let msg = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(c).unwrap())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    let token = format!("{msg}.{sig}");
    match alg {
        Algorithm::ES256 => canonical_es256(token),
        Algorithm::ES384 => canonical_es384(token),
        _ => token,
    }
}

fn token(alg: Algorithm, kid: &str) -> String {
    let name = sentinel::auth::jwks::alg_name(alg);
    let key = match alg {
        Algorithm::ES256 => ec_key(),
        Algorithm::ES384 => ec384_key(),
        _ => rsa_key(),
    };
    forge(name, kid, alg, &key, &claims(ISS))
}

const NEW: [(Algorithm, &str); 6] = [
    (Algorithm::RS384, "rsa-rs384"),
    (Algorithm::RS512, "rsa-rs512"),
    (Algorithm::PS256, "rsa-ps256"),
    (Algorithm::PS384, "rsa-ps384"),
    (Algorithm::PS512, "rsa-ps512"),
    (Algorithm::ES384, "ec384-1"),
];

fn spec(issuer: &str, algorithms: Vec<Algorithm>, keys: KeySource) -> IssuerSpec {
    IssuerSpec {
        issuer: issuer.into(),
        audiences: vec!["sentinel".into()],
        algorithms,
        keys,
        leeway: Duration::from_secs(30),
        require_low_s: true,
    }
}

async fn verifier(algorithms: Vec<Algorithm>) -> Verifier {
    Verifier::new(
        vec![spec(ISS, algorithms, KeySource::Jwks(algs_jwks()))],
        VerifierSettings::default(),
    )
    .await
    .unwrap()
}

async fn every_algorithm() -> Verifier {
    verifier(sentinel::auth::jwt::SUPPORTED.to_vec()).await
}

async fn refused(v: &Verifier, token: &str) -> TokenError {
    match v.verify(token).await {
        Ok(t) => panic!("token accepted: {t:?}"),
        Err(e) => {
            assert_eq!(e.code(), "AUTH_INVALID", "{e:?}");
            e
        }
    }
}

#[tokio::test]
async fn each_new_algorithm_verifies_with_its_own_key() {
    let v = every_algorithm().await;
    for (alg, kid) in NEW {
        let t = v.verify(&token(alg, kid)).await;
        assert!(t.is_ok(), "{alg:?}: {t:?}");
    }
    // The first four still do.
    assert!(v
        .verify(&token(Algorithm::RS256, "rsa-rs256"))
        .await
        .is_ok());
    assert!(v.verify(&token(Algorithm::ES256, "ec-1")).await.is_ok());
    // An EC key without `alg` is bound by its curve: P-384 → ES384.
    assert!(v
        .verify(&token(Algorithm::ES384, "ec384-noalg"))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_new_algorithm_is_refused_unless_the_issuer_allows_it() {
    let v = verifier(vec![Algorithm::RS256, Algorithm::ES256]).await;
    for (alg, kid) in NEW {
        assert_eq!(
            refused(&v, &token(alg, kid)).await,
            TokenError::AlgorithmNotAllowed,
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn a_key_is_only_ever_used_with_its_own_algorithm() {
    let v = every_algorithm().await;
    let c = claims(ISS);
    // The same RSA material is published under six kids, each bound to one
    // algorithm: a token naming another algorithm than its kid's is refused
    // before any signature check, whatever it was signed with.
    for (header_alg, alg, kid) in [
        ("PS256", Algorithm::PS256, "rsa-rs256"),
        ("RS256", Algorithm::RS256, "rsa-ps256"),
        ("RS384", Algorithm::RS384, "rsa-ps384"),
        ("PS512", Algorithm::PS512, "rsa-rs512"),
        ("RS512", Algorithm::RS512, "rsa-rs384"),
    ] {
        let t = forge(header_alg, kid, alg, &rsa_key(), &c);
        assert_eq!(
            refused(&v, &t).await,
            TokenError::KeyAlgorithmMismatch,
            "{header_alg} with {kid}"
        );
    }
    // Curves: ES384 against the P-256 key and ES256 against the P-384 key.
    let t = forge("ES384", "ec-1", Algorithm::ES384, &ec384_key(), &c);
    assert_eq!(refused(&v, &t).await, TokenError::KeyAlgorithmMismatch);
    let t = forge("ES256", "ec384-1", Algorithm::ES256, &ec_key(), &c);
    assert_eq!(refused(&v, &t).await, TokenError::KeyAlgorithmMismatch);
    // An RSA key without `alg` verifies RS256 only, never PS* or RS384.
    for (name, alg) in [("PS256", Algorithm::PS256), ("RS384", Algorithm::RS384)] {
        let t = forge(name, "rsa-noalg", alg, &rsa2_key(), &c);
        assert_eq!(
            refused(&v, &t).await,
            TokenError::KeyAlgorithmMismatch,
            "{name}"
        );
    }
    assert!(v
        .verify(&forge(
            "RS256",
            "rsa-noalg",
            Algorithm::RS256,
            &rsa2_key(),
            &c
        ))
        .await
        .is_ok());
    // An RS256 signature relabelled PS256 under the PS256 kid: the header
    // is believed for the key choice only, and the signature then fails.
    let rs = forge("PS256", "rsa-ps256", Algorithm::RS256, &rsa_key(), &c);
    assert_eq!(refused(&v, &rs).await, TokenError::BadSignature);
    // PKCS#1 v1.5 with another hash: RS512 signature under the RS384 kid.
    let t = forge("RS384", "rsa-rs384", Algorithm::RS512, &rsa_key(), &c);
    assert_eq!(refused(&v, &t).await, TokenError::BadSignature);
    // HMAC with the RSA public key as secret (the classic confusion), in
    // the HMAC variants that are never supported.
    let public = EncodingKey::from_secret(&read_key("rsa_public.pem"));
    for (name, alg) in [("HS384", Algorithm::HS384), ("HS512", Algorithm::HS512)] {
        let t = forge(name, "rsa-rs384", alg, &public, &c);
        assert_eq!(
            refused(&v, &t).await,
            TokenError::AlgorithmNotAllowed,
            "{name}"
        );
    }
}

#[tokio::test]
async fn es384_high_s_only_where_the_issuer_allows_it() {
    let v = every_algorithm().await;
    let low = token(Algorithm::ES384, "ec384-1");
    assert!(v.verify(&low).await.is_ok());
    let high = high_s_384(&low);
    assert_eq!(refused(&v, &high).await, TokenError::BadSignature);
    let mut lenient = spec(ISS, vec![Algorithm::ES384], KeySource::Jwks(algs_jwks()));
    lenient.require_low_s = false;
    let v = Verifier::new(vec![lenient], VerifierSettings::default())
        .await
        .unwrap();
    assert!(v.verify(&high).await.is_ok());
}

/// The same ES384 signature as `(r, n − s)`.
fn high_s_384(token: &str) -> String {
    let n = hex(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    );
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let s = &mut sig[48..];
    let mut borrow = 0i16;
    for (out, n) in s.iter_mut().zip(n.iter()).rev() {
        let mut d = i16::from(*n) - i16::from(*out) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        *out = d as u8;
    }
    format!("{input}.{}", b64(&sig))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn jwks_keys_are_bound_to_one_algorithm_each() {
    let set = parse_jwks(algs_jwks().as_bytes(), Origin::Remote).unwrap();
    let bound: Vec<(String, &str)> = set
        .keys
        .iter()
        .map(|k| {
            (
                k.kid.clone().unwrap_or_default(),
                sentinel::auth::jwks::alg_name(k.alg),
            )
        })
        .collect();
    let want = [
        ("rsa-rs256", "RS256"),
        ("rsa-rs384", "RS384"),
        ("rsa-rs512", "RS512"),
        ("rsa-ps256", "PS256"),
        ("rsa-ps384", "PS384"),
        ("rsa-ps512", "PS512"),
        ("rsa-noalg", "RS256"),
        ("ec-1", "ES256"),
        ("ec384-1", "ES384"),
        ("ec384-noalg", "ES384"),
        // `ec384-as-es256` (a P-384 key claiming ES256) is skipped.
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(k, a)| (k.to_string(), *a)).collect();
    assert_eq!(bound, want);
    // A P-384 key with P-256-sized coordinates is broken, not skipped.
    let short =
        json!({"keys": [{"kty": "EC", "crv": "P-384", "x": b64(&[1; 32]), "y": b64(&[1; 32])}]});
    assert!(parse_jwks(short.to_string().as_bytes(), Origin::Local).is_err());
}

// ------------------------------------------------------------ discovery

/// A local OpenID provider: `/.well-known/openid-configuration` answers
/// `document` (with `{base}` replaced by the server's URL), `/keys` the
/// JWKS; every request path is recorded.
struct Provider {
    base: String,
    document: Arc<Mutex<String>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Provider {
    async fn start(document: &str) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document.replace("{base}", &base)));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (doc, seen) = (document.clone(), paths.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (doc, seen) = (doc.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(path.clone());
                    let (status, body) = match path.as_str() {
                        "/.well-known/openid-configuration" => (200, doc.lock().unwrap().clone()),
                        "/keys" => (200, algs_jwks()),
                        _ => (404, "{}".to_owned()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Provider {
            base,
            document,
            paths,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

fn discovery_spec(issuer: &str) -> IssuerSpec {
    spec(
        issuer,
        vec![Algorithm::PS256, Algorithm::ES384],
        KeySource::Discovery {
            refresh_every: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(1),
        },
    )
}

fn signed_by(issuer: &str) -> String {
    forge(
        "PS256",
        "rsa-ps256",
        Algorithm::PS256,
        &rsa_key(),
        &claims(issuer),
    )
}

#[tokio::test]
async fn an_issuer_from_its_discovery_document() {
    let idp = Provider::start(r#"{"issuer": "{base}", "jwks_uri": "{base}/keys"}"#).await;
    let v = Verifier::new(vec![discovery_spec(&idp.base)], VerifierSettings::default())
        .await
        .unwrap();
    assert!(v.has_keys());
    let t = v.verify(&signed_by(&idp.base)).await.unwrap();
    assert_eq!(t.issuer, idp.base);
    assert_eq!(
        idp.paths(),
        vec!["/.well-known/openid-configuration", "/keys"]
    );
    // The issuer's own allow-list still rules: RS256 keys are there, not allowed.
    let rs = forge(
        "RS256",
        "rsa-rs256",
        Algorithm::RS256,
        &rsa_key(),
        &claims(&idp.base),
    );
    assert_eq!(refused(&v, &rs).await, TokenError::AlgorithmNotAllowed);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    // The document names another issuer (a provider serving someone else's
    // configuration): nothing from it is used, not even its jwks_uri.
    let idp =
        Provider::start(r#"{"issuer": "https://evil.test", "jwks_uri": "{base}/keys"}"#).await;
    let v = Verifier::new(vec![discovery_spec(&idp.base)], VerifierSettings::default())
        .await
        .unwrap();
    assert!(!v.has_keys());
    assert_eq!(
        refused(&v, &signed_by(&idp.base)).await,
        TokenError::UnknownKey
    );
    assert!(
        !idp.paths().iter().any(|p| p == "/keys"),
        "{:?}",
        idp.paths()
    );

    // Nor a trailing-slash variant, a missing issuer, or no jwks_uri.
    for doc in [
        r#"{"issuer": "{base}/", "jwks_uri": "{base}/keys"}"#,
        r#"{"jwks_uri": "{base}/keys"}"#,
        r#"{"issuer": "{base}"}"#,
        r#"{"issuer": "{base}", "jwks_uri": "file:///etc/passwd"}"#,
        r#"not json"#,
    ] {
        let idp = Provider::start(doc).await;
        let v = Verifier::new(vec![discovery_spec(&idp.base)], VerifierSettings::default())
            .await
            .unwrap();
        assert!(!v.has_keys(), "{doc}");
        assert!(!idp.paths().iter().any(|p| p == "/keys"), "{doc}");
    }
}

#[tokio::test]
async fn a_fixed_discovery_document_is_picked_up_on_an_unknown_kid() {
    let idp =
        Provider::start(r#"{"issuer": "https://evil.test", "jwks_uri": "{base}/keys"}"#).await;
    let v = Verifier::new(vec![discovery_spec(&idp.base)], VerifierSettings::default())
        .await
        .unwrap();
    assert!(!v.has_keys());
    let fixed = format!(r#"{{"issuer": "{0}", "jwks_uri": "{0}/keys"}}"#, idp.base);
    *idp.document.lock().unwrap() = fixed;
    // The next refetch (at most once per min_refetch_interval) follows it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.verify(&signed_by(&idp.base)).await.is_ok());
}
