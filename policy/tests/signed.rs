//! Signed snapshots: what the admin API signs verifies, and every tampering
//! (payload, signature, key, algorithm, type) is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jsonwebtoken::Algorithm;
use sentinel_policy::signed::{SnapshotSigner, SnapshotVerifier, VerifyError, SNAPSHOT_TYP};

const ED: &[u8] = include_bytes!("keys/snap-ed.pem");
const ED_PUB: &[u8] = include_bytes!("keys/snap-ed.pub.pem");
const ES: &[u8] = include_bytes!("keys/snap-es.pem");
const ES_PUB: &[u8] = include_bytes!("keys/snap-es.pub.pem");
const OTHER: &[u8] = include_bytes!("keys/other-ed.pem");

const PAYLOAD: &[u8] = br#"{"tenants":[],"principals":[]}"#;

fn verifier() -> SnapshotVerifier {
    let mut v = SnapshotVerifier::new();
    v.add_pem("ed-1", Algorithm::EdDSA, ED_PUB).expect("ed key");
    v.add_pem("es-1", Algorithm::ES256, ES_PUB).expect("es key");
    v
}

#[test]
fn eddsa_and_es256_signatures_verify() {
    for (kid, alg, pem) in [
        ("ed-1", Algorithm::EdDSA, ED),
        ("es-1", Algorithm::ES256, ES),
    ] {
        let signer = SnapshotSigner::from_pem(kid, alg, pem).expect("signer");
        let sig = signer.sign(PAYLOAD, 42, 1_700_000_000).expect("sign");
        let claims = verifier().verify(PAYLOAD, &sig).expect("verifies");
        assert_eq!(claims.ver, 42);
        assert_eq!(claims.iat, 1_700_000_000);
    }
}

#[test]
fn tampered_or_truncated_payload_is_refused() {
    let signer = SnapshotSigner::from_pem("ed-1", Algorithm::EdDSA, ED).expect("signer");
    let sig = signer.sign(PAYLOAD, 1, 0).expect("sign");
    let tampered = br#"{"tenants":[],"principals":[1]}"#;
    assert_eq!(
        verifier().verify(tampered, &sig),
        Err(VerifyError::PayloadMismatch)
    );
    assert_eq!(
        verifier().verify(&PAYLOAD[..PAYLOAD.len() - 1], &sig),
        Err(VerifyError::PayloadMismatch)
    );
    assert_eq!(
        verifier().verify(b"", &sig),
        Err(VerifyError::PayloadMismatch)
    );
}

#[test]
fn tampered_signature_is_refused() {
    let signer = SnapshotSigner::from_pem("ed-1", Algorithm::EdDSA, ED).expect("signer");
    let sig = signer.sign(PAYLOAD, 1, 0).expect("sign");
    // Flip a character of the claims part: the signature no longer covers it.
    let mut parts: Vec<String> = sig.split('.').map(str::to_owned).collect();
    let mut claims = parts[1].clone().into_bytes();
    claims[5] = if claims[5] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(claims).expect("ascii");
    let forged = parts.join(".");
    assert!(verifier().verify(PAYLOAD, &forged).is_err());
    // Truncated signature.
    assert!(verifier().verify(PAYLOAD, &sig[..sig.len() - 3]).is_err());
    assert_eq!(
        verifier().verify(PAYLOAD, "not a jws"),
        Err(VerifyError::Malformed)
    );
    assert_eq!(verifier().verify(PAYLOAD, ""), Err(VerifyError::Malformed));
}

#[test]
fn unknown_key_and_key_confusion_are_refused() {
    // A key the gateway does not trust, under a kid it does not know.
    let stranger = SnapshotSigner::from_pem("ed-9", Algorithm::EdDSA, OTHER).expect("signer");
    let sig = stranger.sign(PAYLOAD, 1, 0).expect("sign");
    assert_eq!(
        verifier().verify(PAYLOAD, &sig),
        Err(VerifyError::UnknownKey("ed-9".into()))
    );
    // A stranger's key claiming a trusted kid: the signature does not verify.
    let impostor = SnapshotSigner::from_pem("ed-1", Algorithm::EdDSA, OTHER).expect("signer");
    let sig = impostor.sign(PAYLOAD, 1, 0).expect("sign");
    assert_eq!(
        verifier().verify(PAYLOAD, &sig),
        Err(VerifyError::BadSignature)
    );
    // The ES256 key signing under the Ed25519 key's kid: wrong algorithm.
    let confused = SnapshotSigner::from_pem("ed-1", Algorithm::ES256, ES).expect("signer");
    let sig = confused.sign(PAYLOAD, 1, 0).expect("sign");
    assert_eq!(
        verifier().verify(PAYLOAD, &sig),
        Err(VerifyError::WrongAlgorithm("ed-1".into()))
    );
    // No keys at all: nothing verifies.
    let signer = SnapshotSigner::from_pem("ed-1", Algorithm::EdDSA, ED).expect("signer");
    let sig = signer.sign(PAYLOAD, 1, 0).expect("sign");
    assert!(SnapshotVerifier::new().verify(PAYLOAD, &sig).is_err());
}

#[test]
fn an_access_token_is_not_a_snapshot_signature() {
    // Same key, same claims shape, but the `typ` of an ordinary JWT.
    let key = jsonwebtoken::EncodingKey::from_ed_pem(ED).expect("key");
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-1".into());
    let claims = serde_json::json!({
        "ver": 1, "iat": 0, "sha256": sentinel_policy::signed::payload_sha256(PAYLOAD)
    });
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("encode");
    assert_eq!(
        verifier().verify(PAYLOAD, &token),
        Err(VerifyError::WrongType)
    );
    // And `alg: none` never passes.
    let none = format!(
        "{}.{}.",
        base64_url(&format!(
            r#"{{"alg":"none","typ":"{SNAPSHOT_TYP}","kid":"ed-1"}}"#
        )),
        base64_url(&claims.to_string())
    );
    assert!(verifier().verify(PAYLOAD, &none).is_err());
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
