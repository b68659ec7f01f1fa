//! Service-account API keys: lookup by prefix, constant-time hash check, expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sentinel_policy::apikey::{hash_api_key, key_prefix, ApiKeyError, MAX_KEY_LEN};
use sentinel_policy::source::{ApiKeySource, PrincipalSource, TenantSource};
use sentinel_policy::{compile, PolicySource, Snapshot};
use uuid::Uuid;

const A: Uuid = Uuid::from_u128(0x11111111_1111_1111_1111_111111111111);
const SVC: Uuid = Uuid::from_u128(0xa0000000_0000_0000_0000_000000000001);
const NOW: i64 = 1_795_003_200;

const KEY: &str = "sk_Abcd1234_0123456789abcdefghijklmnopqrstuvWXYZ";
const EXPIRING: &str = "sk_Expiring_9876543210abcdefghijklmnopqrstuvWXYZ";

fn snapshot() -> Snapshot {
    let src: PolicySource = toml::from_str(&format!(
        r#"
[[tenants]]
id = "{A}"
code = "TEST-001"

[[principals]]
id = "{SVC}"
tenant = "{A}"
name = "svc"
service_account = true
api_keys = [
  {{ prefix = "Abcd1234", sha256 = "{}" }},
  {{ prefix = "Expiring", sha256 = "{}", expires_at = {NOW} }},
]
"#,
        hash_api_key(KEY),
        hash_api_key(EXPIRING),
    ))
    .unwrap();
    compile(&src).unwrap()
}

fn auth(snap: &Snapshot, key: &str, now: i64) -> Result<Uuid, ApiKeyError> {
    snap.authenticate_api_key(key, now).map(|p| p.id)
}

#[test]
fn hash_is_lowercase_hex_sha256() {
    // SHA-256("abc")
    assert_eq!(
        hash_api_key("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn valid_key_authenticates_its_service_account() {
    let snap = snapshot();
    let p = snap.authenticate_api_key(KEY, NOW).unwrap();
    assert_eq!(p.id, SVC);
    assert!(p.service_account);
    // A key with an expiry works until then.
    assert_eq!(auth(&snap, EXPIRING, NOW - 1), Ok(SVC));
}

#[test]
fn wrong_secret_or_prefix_is_invalid() {
    let snap = snapshot();
    // Same prefix, other secret.
    let wrong = KEY.replace("WXYZ", "WXYy");
    assert_eq!(auth(&snap, &wrong, NOW), Err(ApiKeyError::Invalid));
    // Well-formed, unknown prefix.
    let unknown = KEY.replace("Abcd1234", "Abcd1235");
    assert_eq!(auth(&snap, &unknown, NOW), Err(ApiKeyError::Invalid));
    // Prefix of another key with this key's secret.
    let swapped = KEY.replace("Abcd1234", "Expiring");
    assert_eq!(auth(&snap, &swapped, NOW - 1), Err(ApiKeyError::Invalid));
    // An empty snapshot knows no key.
    assert_eq!(
        auth(&Snapshot::empty(), KEY, NOW),
        Err(ApiKeyError::Invalid)
    );
}

#[test]
fn malformed_keys() {
    let snap = snapshot();
    let secret = "0123456789abcdefghijklmnopqrstuv"; // 32 characters, the minimum
    assert_eq!(key_prefix(&format!("sk_Abcd1234_{secret}")), Ok("Abcd1234"));
    for bad in [
        String::new(),
        "sk_".into(),
        "Abcd1234_0123456789abcdefghijklmnopqrstuv".into(),
        format!("pk_Abcd1234_{secret}"),
        format!("SK_Abcd1234_{secret}"),
        format!("sk_Abcd123_{secret}"),
        format!("sk_Abcd12345_{secret}"),
        format!("sk_Abcd-234_{secret}"),
        format!("sk_Abcd1234{secret}"),
        format!("sk_Abcd1234_{}", &secret[1..]),
        format!("sk_Abcd1234_{secret}_x"),
        format!("sk_Abcd1234_{secret} "),
        format!("sk_Abcd1234_{secret}é"),
        format!(" sk_Abcd1234_{secret}"),
    ] {
        assert_eq!(key_prefix(&bad), Err(ApiKeyError::Malformed), "{bad:?}");
        assert_eq!(
            auth(&snap, &bad, NOW),
            Err(ApiKeyError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn oversized_keys_are_rejected_before_hashing() {
    let snap = snapshot();
    let longest = format!("sk_Abcd1234_{}", "a".repeat(MAX_KEY_LEN - 12));
    assert_eq!(longest.len(), MAX_KEY_LEN);
    assert_eq!(key_prefix(&longest), Ok("Abcd1234"));
    assert_eq!(auth(&snap, &longest, NOW), Err(ApiKeyError::Invalid));
    let oversized = format!("{longest}a");
    assert_eq!(key_prefix(&oversized), Err(ApiKeyError::Malformed));
    assert_eq!(auth(&snap, &oversized, NOW), Err(ApiKeyError::Malformed));
    let huge = format!("sk_Abcd1234_{}", "a".repeat(1 << 20));
    assert_eq!(auth(&snap, &huge, NOW), Err(ApiKeyError::Malformed));
}

#[test]
fn expired_key() {
    let snap = snapshot();
    assert_eq!(auth(&snap, EXPIRING, NOW), Err(ApiKeyError::Expired));
    assert_eq!(auth(&snap, EXPIRING, NOW + 1), Err(ApiKeyError::Expired));
    // Expiry is only revealed to the holder of the right secret.
    let wrong = EXPIRING.replace("WXYZ", "WXYy");
    assert_eq!(auth(&snap, &wrong, NOW + 1), Err(ApiKeyError::Invalid));
}

#[test]
fn keys_only_for_service_accounts() {
    let mut src = PolicySource::default();
    src.tenants.push(TenantSource {
        id: A,
        code: "T".into(),
        name: String::new(),
        parent: None,
        status: Default::default(),
        settings: Default::default(),
    });
    src.principals.push(PrincipalSource {
        id: SVC,
        tenant: A,
        name: "human".into(),
        service_account: false,
        status: Default::default(),
        locked: false,
        locked_until: None,
        attributes: Default::default(),
        roles: vec![],
        groups: vec![],
        api_keys: vec![ApiKeySource {
            prefix: "Abcd1234".into(),
            sha256: hash_api_key(KEY),
            expires_at: None,
        }],
    });
    let errs = compile(&src).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].location.to_string(), "principals[0].api_keys");
}
