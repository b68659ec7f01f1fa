//! Private keys at rest: sealed with a key-encryption key (KEK) that never
//! reaches the database.
//!
//! The token and snapshot signing keys are stored as
//! `sealed:v1:<kek id>:<base64url(nonce ‖ ciphertext ‖ tag)>`: AES-256-GCM
//! (`ring`, already in the tree through rustls) with a random 96-bit nonce,
//! and the row's table and `kid` as associated data, so that a sealed value
//! copied into another row does not open. The KEK id is the first 8 bytes of
//! the KEK's SHA-256, in hex: a value sealed under another KEK names it in
//! the error instead of failing as "corrupt".
//!
//! The KEK comes from `SENTINEL_KEK` (32 bytes, base64) or the file named by
//! `SENTINEL_KEK_FILE` (the same text, or 32 raw bytes); while one is being
//! replaced, `SENTINEL_KEK_PREVIOUS` (or `_FILE`) still opens what the old one
//! sealed and `sentinel-admin seal-keys` reseals it. A process without a KEK
//! refuses to create or use a private key (docs/security.md, "Keys at rest").
//!
//! INVARIANT: no code path writes a private key to the database unsealed;
//! migration 0008's `*_private_sealed` constraints refuse it in the database too.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const PREFIX: &str = "sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "no key-encryption key: set SENTINEL_KEK (32 random bytes, base64; e.g. `openssl rand -base64 32`) \
         or SENTINEL_KEK_FILE; private keys are stored encrypted with it"
    )]
    NoKek,
    #[error("{var}: {why}")]
    BadKek { var: &'static str, why: String },
    #[error("{what} was sealed with key-encryption key {id}, which is not configured (SENTINEL_KEK / SENTINEL_KEK_PREVIOUS)")]
    UnknownKek { what: String, id: String },
    #[error("{what} does not open with its key-encryption key: it was altered, or moved from another row")]
    Corrupt { what: String },
    #[error("{what} is stored unsealed: run `sentinel-admin seal-keys` with SENTINEL_KEK set")]
    Unsealed { what: String },
    #[error("cannot seal {what}")]
    Seal { what: String },
}

/// A key-encryption key.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Kek, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "a key-encryption key is 32 bytes, this one is {}",
                bytes.len()
            ));
        }
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let key =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "not an AES-256 key".to_owned())?;
        Ok(Kek {
            id,
            key: LessSafeKey::new(key),
        })
    }

    /// A KEK from its base64 text (standard or URL-safe, padded or not).
    pub fn from_base64(text: &str) -> Result<Kek, String> {
        let t = text.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
            .map_err(|_| "not base64".to_owned())?;
        Kek::from_bytes(&bytes)
    }

    /// The KEK's id (hex of the first 8 bytes of its SHA-256).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the row named by `aad` (table and `kid`).
    pub fn seal(&self, aad: &str, plain: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(
            |_| SealError::Seal {
                what: aad.to_owned(),
            },
        )?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Seal {
                what: aad.to_owned(),
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{PREFIX}{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    fn open_with(&self, aad: &str, body: &str) -> Result<String, SealError> {
        let corrupt = || SealError::Corrupt {
            what: aad.to_owned(),
        };
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| corrupt())?;
        if raw.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| corrupt())?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
    }
}

/// The configured KEK and, during a KEK change, the previous one.
#[derive(Debug)]
pub struct Keyring {
    pub current: Kek,
    pub previous: Option<Kek>,
}

/// Whether a stored value is sealed (anything else is a legacy clear key).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

impl Keyring {
    /// Opens a stored value sealed for the row `aad`. A clear value is refused.
    pub fn open(&self, aad: &str, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Err(SealError::Unsealed {
                what: aad.to_owned(),
            });
        };
        let (id, body) = rest.split_once(':').ok_or_else(|| SealError::Corrupt {
            what: aad.to_owned(),
        })?;
        let kek = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKek {
                what: aad.to_owned(),
                id: id.to_owned(),
            })?;
        kek.open_with(aad, body)
    }

    /// Seals with the current KEK.
    pub fn seal(&self, aad: &str, plain: &str) -> Result<String, SealError> {
        self.current.seal(aad, plain)
    }

    /// What a stored value should become: `None` when it is sealed with the
    /// current KEK already; otherwise the value sealed with it (a clear value
    /// is sealed, one under the previous KEK is resealed).
    pub fn reseal(&self, aad: &str, stored: &str) -> Result<Option<String>, SealError> {
        if !is_sealed(stored) {
            return self.seal(aad, stored).map(Some);
        }
        if stored[PREFIX.len()..].starts_with(&format!("{}:", self.current.id)) {
            return Ok(None);
        }
        let plain = self.open(aad, stored)?;
        self.seal(aad, &plain).map(Some)
    }

    /// The keyring from the environment.
    pub fn from_env() -> Result<Keyring, SealError> {
        let current = read_kek("SENTINEL_KEK", "SENTINEL_KEK_FILE")?.ok_or(SealError::NoKek)?;
        let previous = read_kek("SENTINEL_KEK_PREVIOUS", "SENTINEL_KEK_PREVIOUS_FILE")?;
        Ok(Keyring { current, previous })
    }
}

fn read_kek(var: &'static str, file_var: &'static str) -> Result<Option<Kek>, SealError> {
    if let Ok(text) = std::env::var(var) {
        if !text.trim().is_empty() {
            return Kek::from_base64(&text)
                .map(Some)
                .map_err(|why| SealError::BadKek { var, why });
        }
    }
    let Some(path) = std::env::var_os(file_var) else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path).map_err(|e| SealError::BadKek {
        var: file_var,
        why: format!("{}: {e}", std::path::Path::new(&path).display()),
    })?;
    let kek = if bytes.len() == 32 {
        Kek::from_bytes(&bytes)
    } else {
        Kek::from_base64(&String::from_utf8_lossy(&bytes))
    };
    kek.map(Some)
        .map_err(|why| SealError::BadKek { var: file_var, why })
}

static KEYRING: OnceLock<Keyring> = OnceLock::new();

/// The process's keyring, read from the environment on first use. Tests that
/// run the API in-process install theirs with [`install`] first.
pub fn keyring() -> Result<&'static Keyring, SealError> {
    if let Some(k) = KEYRING.get() {
        return Ok(k);
    }
    let k = Keyring::from_env()?;
    Ok(KEYRING.get_or_init(|| k))
}

/// Installs the keyring (first call wins; later calls are ignored).
pub fn install(keyring: Keyring) {
    let _ = KEYRING.set(keyring);
}

/// The associated data naming a row that holds a private key.
pub fn row(table: &str, kid: &str) -> String {
    format!("sentinel.{table}/{kid}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ring(byte: u8) -> Keyring {
        Keyring {
            current: Kek::from_bytes(&[byte; 32]).unwrap(),
            previous: None,
        }
    }

    #[test]
    fn a_sealed_key_opens_only_in_its_own_row_and_with_its_kek() {
        let k = ring(1);
        let s = k.seal("sentinel.signing_keys/a", "secret pem").unwrap();
        assert!(is_sealed(&s) && !s.contains("secret"));
        assert_eq!(k.open("sentinel.signing_keys/a", &s).unwrap(), "secret pem");
        // Moved to another row, or to the other table: refused.
        assert!(matches!(
            k.open("sentinel.signing_keys/b", &s),
            Err(SealError::Corrupt { .. })
        ));
        assert!(matches!(
            k.open("sentinel.snapshot_signing_keys/a", &s),
            Err(SealError::Corrupt { .. })
        ));
        // Another KEK: named, not "corrupt".
        assert!(matches!(
            ring(2).open("sentinel.signing_keys/a", &s),
            Err(SealError::UnknownKek { .. })
        ));
        // A flipped byte in the ciphertext: refused.
        let mut t = s.clone().into_bytes();
        let last = t.len() - 3;
        t[last] = if t[last] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert!(k.open("sentinel.signing_keys/a", &t).is_err());
        // Clear text is never accepted as a key.
        assert!(matches!(
            k.open("sentinel.signing_keys/a", "-----BEGIN PRIVATE KEY-----"),
            Err(SealError::Unsealed { .. })
        ));
    }

    #[test]
    fn reseal_moves_values_to_the_current_kek() {
        let old = ring(1);
        let sealed_old = old.seal("r", "pem").unwrap();
        let k = Keyring {
            current: Kek::from_bytes(&[2; 32]).unwrap(),
            previous: Some(Kek::from_bytes(&[1; 32]).unwrap()),
        };
        let moved = k.reseal("r", &sealed_old).unwrap().unwrap();
        assert_eq!(ring(2).open("r", &moved).unwrap(), "pem");
        assert_eq!(k.reseal("r", &moved).unwrap(), None);
        let from_clear = k.reseal("r", "pem").unwrap().unwrap();
        assert_eq!(k.open("r", &from_clear).unwrap(), "pem");
        // Two seals of one value differ (random nonce).
        assert_ne!(k.seal("r", "pem").unwrap(), k.seal("r", "pem").unwrap());
    }

    #[test]
    fn kek_text_is_checked() {
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
        assert!(Kek::from_base64("not base64 at all!").is_err());
        let b64 = STANDARD.encode([7u8; 32]);
        assert_eq!(
            Kek::from_base64(&b64).unwrap().id(),
            Kek::from_bytes(&[7; 32]).unwrap().id()
        );
    }
}
