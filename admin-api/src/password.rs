//! Password hashing (argon2id) and the password policy: character classes
//! and, as NIST SP 800-63B asks, no password from a list of common
//! (breached) passwords (docs/admin-api.md, "Password policy").

use crate::config::Config;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher(cfg: &Config) -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(cfg.argon2_m_kib, cfg.argon2_t, cfg.argon2_p, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password into a PHC string (the parameters travel with the hash).
pub fn hash(cfg: &Config, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let h = hasher(cfg)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(h.to_string())
}

/// Constant-time verification against a stored PHC string; false on any error.
pub fn verify(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes on the blocking pool (argon2 takes tens of milliseconds by design).
pub async fn hash_async(cfg: &Config, password: String) -> anyhow::Result<String> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || hash(&cfg, &password)).await?
}

pub async fn verify_async(stored: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&stored, &password))
        .await
        .unwrap_or(false)
}

/// Whether `password` is in the common-passwords list shipped with the
/// product (the `passwords` crate's table: 99,838 passwords, MIT), compared
/// case-insensitively: the list is lower case but for about 2,000 entries,
/// so the password is looked up as given and in lower case. The table is a
/// sorted static array (binary search in release builds).
pub fn is_common(password: &str) -> bool {
    passwords::analyzer::is_common_password(password)
        || passwords::analyzer::is_common_password(password.to_lowercase())
}

/// The policy: at least 8 characters (we also cap at 128), an upper-case
/// letter, a lower-case letter and a digit, and not a common password.
/// Returns every rule broken.
pub fn policy_problems(password: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let n = password.chars().count();
    if n < 8 {
        out.push("must be at least 8 characters");
    }
    if n > 128 {
        out.push("must be at most 128 characters");
    }
    if !password.chars().any(|c| c.is_uppercase()) {
        out.push("must contain an upper-case letter");
    }
    if !password.chars().any(|c| c.is_lowercase()) {
        out.push("must contain a lower-case letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        out.push("must contain a digit");
    }
    if is_common(password) {
        out.push("is too common: it is in a list of breached passwords");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        for (pw, ok) in [
            ("Passw0rd", false),
            ("Tq7-vexing-Marmot", true),
            ("password", false),
            ("PASSWORD1", false),
            ("Pa1", false),
            ("Correct-Horse-9", true),
            // In the common-passwords list, though they pass the classes.
            ("Password1234", false),
            ("PASSword1234", false),
            ("Qwertyuiop1", false),
        ] {
            assert_eq!(policy_problems(pw).is_empty(), ok, "{pw}");
        }
    }

    #[test]
    fn hash_and_verify() {
        let cfg = Config {
            argon2_m_kib: 256,
            argon2_t: 1,
            ..Config::default()
        };
        let h = hash(&cfg, "Secret-123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "Secret-123"));
        assert!(!verify(&h, "Secret-124"));
        assert!(!verify("garbage", "Secret-123"));
    }
}
