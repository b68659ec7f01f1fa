//! JWT verification cost per algorithm, uncached (cache disabled) and cached.
//!
//! Run: `cargo bench --bench jwt -- --warm-up-time 1 --measurement-time 3`

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey};
use sentinel::auth::jwt::{IssuerSpec, KeySource, Verifier, VerifierSettings};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISS: &str = "https://idp.bench";
const ISS_HS: &str = "https://hs.bench";
const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret";

fn key_file(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", path.display());
        std::process::exit(1)
    })
}

fn specs() -> Vec<IssuerSpec> {
    let all = String::from_utf8(key_file("all.jwks.json")).unwrap_or_default();
    vec![
        IssuerSpec {
            issuer: ISS.into(),
            audiences: vec!["sentinel".into()],
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            keys: KeySource::Jwks(all),
            leeway: Duration::from_secs(30),
            require_low_s: true,
        },
        IssuerSpec {
            issuer: ISS_HS.into(),
            audiences: vec!["sentinel".into()],
            algorithms: vec![Algorithm::HS256],
            keys: KeySource::HmacSecret {
                kid: Some("hs-1".into()),
                secret: SECRET.to_vec(),
            },
            leeway: Duration::from_secs(30),
            require_low_s: true,
        },
    ]
}

/// A realistic access token: identity, tenant, amr and scopes.
fn token(alg: Algorithm, name: &str, kid: &str, iss: &str, key: &EncodingKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = serde_json::json!({"alg": name, "typ": "JWT", "kid": kid});
    let claims = serde_json::json!({
        "iss": iss, "sub": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "aud": "sentinel",
        "exp": now + 3600, "iat": now, "jti": "0b6f1f6e-5a43-4f1e-9d1b-2a7d8c6f4e21",
        "tid": "11111111-1111-1111-1111-111111111111", "amr": ["pwd", "otp"],
        "scope": "fleet:read fleet:write msw:read",
    });
    let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let msg = format!("{}.{}", enc(&header), enc(&claims));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap_or_default();
    // The gateway refuses high-s ES256 signatures (src/auth/ecdsa.rs).
    sentinel::auth::ecdsa::canonical_es256(format!("{msg}.{sig}"))
}

fn bench(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return;
        }
    };
    let build = |capacity: u64| {
        rt.block_on(Verifier::new(
            specs(),
            VerifierSettings {
                cache_capacity: capacity,
                ..VerifierSettings::default()
            },
        ))
    };
    let (Ok(uncached), Ok(cached)) = (build(0), build(100_000)) else {
        eprintln!("cannot build the verifiers");
        return;
    };
    let keys = [
        (
            "HS256",
            Algorithm::HS256,
            "hs-1",
            ISS_HS,
            Ok(EncodingKey::from_secret(SECRET)),
        ),
        (
            "RS256",
            Algorithm::RS256,
            "rsa-1",
            ISS,
            EncodingKey::from_rsa_pem(&key_file("rsa_private.pem")),
        ),
        (
            "ES256",
            Algorithm::ES256,
            "ec-1",
            ISS,
            EncodingKey::from_ec_pem(&key_file("ec_private.pem")),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            "ed-1",
            ISS,
            EncodingKey::from_ed_pem(&key_file("ed25519_private.pem")),
        ),
    ]
    .map(|(name, alg, kid, iss, key)| match key {
        Ok(key) => (name, alg, kid, iss, key),
        Err(e) => {
            eprintln!("bad {name} key: {e}");
            std::process::exit(1)
        }
    });

    let mut group = c.benchmark_group("jwt_verify");
    for (name, alg, kid, iss, key) in &keys {
        let t = token(*alg, name, kid, iss, key);
        if rt.block_on(uncached.verify(&t)).is_err() || rt.block_on(cached.verify(&t)).is_err() {
            eprintln!("{name} bench token does not verify");
            return;
        }
        group.bench_with_input(BenchmarkId::new("uncached", name), &t, |b, t| {
            b.iter(|| rt.block_on(uncached.verify(t)))
        });
        group.bench_with_input(BenchmarkId::new("cached", name), &t, |b, t| {
            b.iter(|| rt.block_on(cached.verify(t)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
