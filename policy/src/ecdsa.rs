//! ECDSA signature malleability. For every valid P-256 signature `(r, s)`
//! the pair `(r, n − s)` is valid too, so one token could be spelled two
//! ways. The verifier accepts only the canonical ("low-s") form,
//! `s ≤ n / 2` (the rule Bitcoin adopted in BIP 62), and every ES256 signer
//! Sentinel owns (the admin API's access tokens, the gateway's assertion,
//! demo tokens, test helpers) writes that
//! form with [`canonical_es256`]. Signers that do not normalise (the `p256`
//! crate, Go, Java, OpenSSL) write a high `s` about half of the time; their
//! tokens are refused that often (docs/security.md, "Limits").
//!
//! The JWS form of an ES256 signature is `r ‖ s`, 32 bytes each, big-endian
//! (RFC 7518 §3.4); ES384 (P-384) is the same with 48 bytes each and is
//! held to the same rule when an outside issuer uses it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The order `n` of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `⌊n / 2⌋` for P-256, big-endian: the largest canonical `s`.
const P256_HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// The order `n` of the P-384 group, big-endian.
const P384_N: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// `⌊n / 2⌋` for P-384, big-endian.
const P384_HALF_N: [u8; 48] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe3, 0xb1, 0xa6, 0xc0, 0xfa, 0x1b, 0x96, 0xef,
    0xac, 0x0d, 0x06, 0xd9, 0x24, 0x58, 0x53, 0xbd, 0x76, 0x76, 0x0c, 0xb5, 0x66, 0x62, 0x94, 0xb9,
];

/// Whether the base64url ES384 signature segment of a JWS (`r ‖ s`, 48
/// bytes each) is in canonical low-s form, as [`es256_is_canonical`].
pub fn es384_is_canonical(signature_b64: &str) -> bool {
    let mut sig = [0u8; 96];
    match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut sig) {
        Ok(96) => sig[48..] <= P384_HALF_N[..],
        _ => false,
    }
}

/// `token` (a compact ES384 JWS) with its signature in canonical form
/// (`s ← n − s` when high); anything else comes back unchanged. For
/// signers that do not normalise, e.g. test helpers.
pub fn canonical_es384(token: String) -> String {
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return token;
    };
    let mut sig = [0u8; 96];
    if !matches!(URL_SAFE_NO_PAD.decode_slice(signature, &mut sig), Ok(96))
        || sig[48..] <= P384_HALF_N[..]
    {
        return token;
    }
    negate_mod(&mut sig[48..], &P384_N);
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Whether the base64url ES256 signature segment of a JWS is in canonical
/// form: 64 bytes and `s ≤ n / 2`. Anything else (wrong length, bad
/// base64) is not canonical; the signature check refuses it anyway.
pub fn es256_is_canonical(signature_b64: &str) -> bool {
    let mut sig = [0u8; 64];
    match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut sig) {
        Ok(64) => sig[32..] <= P256_HALF_N[..],
        _ => false,
    }
}

/// `token` (a compact JWS) with an ES256 signature in canonical form: a
/// high `s` is replaced by `n − s`, which verifies the same. Tokens of other
/// algorithms, and anything not a well-formed ES256 JWS, come back unchanged.
pub fn canonical_es256(token: String) -> String {
    let Some((header, sig)) = token
        .split_once('.')
        .map(|(h, _)| h)
        .zip(token.rsplit_once('.').map(|(_, s)| s))
    else {
        return token;
    };
    let is_es256 = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h["alg"] == "ES256");
    if is_es256 && !es256_is_canonical(sig) {
        return other_spelling(&token).unwrap_or(token);
    }
    token
}

/// The same ES256 signature spelled the other way, `(r, n − s)`: a token
/// that verifies exactly when `token` does (for tests and probes). `None`
/// when `token` has no 64-byte signature.
pub fn other_spelling(token: &str) -> Option<String> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let mut sig = [0u8; 64];
    if !matches!(URL_SAFE_NO_PAD.decode_slice(signature, &mut sig), Ok(64)) {
        return None;
    }
    negate_mod_n(&mut sig[32..]);
    Some(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// `s ← n − s` (for `0 < s < n`) with the P-256 order.
fn negate_mod_n(s: &mut [u8]) {
    negate_mod(s, &P256_N)
}

/// `s ← n − s` (for `0 < s < n`), big-endian, with a borrow.
fn negate_mod(s: &mut [u8], order: &[u8]) {
    let mut borrow = 0i16;
    for (out, n) in s.iter_mut().zip(order.iter()).rev() {
        let mut d = i16::from(*n) - i16::from(*out) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        *out = d as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negation_is_n_minus_s_and_an_involution() {
        let mut s = [0u8; 32];
        s[31] = 1;
        negate_mod_n(&mut s);
        let mut n_minus_1 = P256_N;
        n_minus_1[31] -= 1;
        assert_eq!(s, n_minus_1);
        negate_mod_n(&mut s);
        assert_eq!(s[31], 1);
        assert!(s[..31].iter().all(|b| *b == 0));
        // n/2 is canonical, n/2 + 1 is not, and they are each other's negation.
        let mut high = P256_HALF_N;
        high[31] += 1;
        negate_mod_n(&mut high);
        assert_eq!(high, P256_HALF_N);
    }

    #[test]
    fn p384_half_order_is_the_canonical_bound() {
        // n/2 is canonical, n/2 + 1 is not, and they are each other's negation.
        let mut high = P384_HALF_N;
        high[47] += 1;
        let mut sig = [0u8; 96];
        sig[48..].copy_from_slice(&high);
        let high_b64 = URL_SAFE_NO_PAD.encode(sig);
        assert!(!es384_is_canonical(&high_b64));
        let fixed = canonical_es384(format!("a.b.{high_b64}"));
        let fixed_sig = fixed.rsplit_once('.').unwrap().1;
        assert!(es384_is_canonical(fixed_sig));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(fixed_sig).unwrap()[48..],
            P384_HALF_N
        );
        assert!(!es384_is_canonical(&URL_SAFE_NO_PAD.encode([0u8; 64])));
    }

    #[test]
    fn canonical_form_is_recognised() {
        let mut sig = [0u8; 64];
        sig[32..].copy_from_slice(&P256_HALF_N);
        assert!(es256_is_canonical(&URL_SAFE_NO_PAD.encode(sig)));
        sig[63] += 1;
        assert!(!es256_is_canonical(&URL_SAFE_NO_PAD.encode(sig)));
        assert!(!es256_is_canonical(&URL_SAFE_NO_PAD.encode([0u8; 63])));
        assert!(!es256_is_canonical("not base64!"));
        let es256 = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let fixed = canonical_es256(format!("{es256}.b.{}", URL_SAFE_NO_PAD.encode(sig)));
        assert!(es256_is_canonical(fixed.rsplit_once('.').unwrap().1));
        // Other algorithms (EdDSA signatures are 64 bytes too) are left alone.
        let eddsa = format!(
            "{}.b.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA"}"#),
            URL_SAFE_NO_PAD.encode(sig)
        );
        assert_eq!(canonical_es256(eddsa.clone()), eddsa);
        assert_eq!(canonical_es256("x".to_owned()), "x");
    }
}
