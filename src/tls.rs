//! Downstream TLS (rustls): a certificate per SNI name, reloaded when the
//! files change. A reload that fails keeps the certificates in force.

use crate::config::{CertConfig, TlsConfig};
use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora_rustls::sign::CertifiedKey;
use pingora_rustls::{load_certs_and_key_files, ClientHello, CryptoProvider, ResolvesServerCert};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("certificate `{0}` or its key holds no usable PEM item")]
    Empty(String),
    #[error("unsupported private key in `{0}`")]
    Key(String),
    #[error("certificate `{0}` does not match its private key")]
    Mismatch(String),
    #[error("no TLS crypto provider installed")]
    Provider,
}

#[derive(Debug, Default)]
struct Certs {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// Chooses the certificate by SNI: exact name, then `*.parent`, then the first certificate.
#[derive(Debug)]
pub struct SniResolver {
    certs: ArcSwap<Certs>,
    config: Vec<CertConfig>,
}

fn load_one(c: &CertConfig) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert = c.cert.display().to_string();
    let key = c.key.display().to_string();
    let loaded = load_certs_and_key_files(&cert, &key).map_err(|e| TlsError::Read {
        path: cert.clone(),
        reason: e.to_string(),
    })?;
    let (chain, private) = loaded.ok_or_else(|| TlsError::Empty(cert.clone()))?;
    pingora_rustls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or(TlsError::Provider)?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|_| TlsError::Key(key.clone()))?;
    let certified = CertifiedKey::new(chain, signing);
    // A certificate rewritten before its key (or the reverse) must not be served.
    certified
        .keys_match()
        .map_err(|_| TlsError::Mismatch(cert.clone()))?;
    Ok(Arc::new(certified))
}

fn load_all(config: &[CertConfig]) -> Result<Certs, TlsError> {
    let mut certs = Certs::default();
    for c in config {
        let key = load_one(c)?;
        if certs.default.is_none() {
            certs.default = Some(key.clone());
        }
        for name in &c.server_names {
            certs.by_name.insert(name.clone(), key.clone());
        }
    }
    Ok(certs)
}

impl SniResolver {
    pub fn new(config: &TlsConfig) -> Result<SniResolver, TlsError> {
        let certs = load_all(&config.certificates)?;
        Ok(SniResolver {
            certs: ArcSwap::from_pointee(certs),
            config: config.certificates.clone(),
        })
    }

    /// Reloads every certificate; on failure the old ones stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certs = load_all(&self.config)?;
        self.certs.store(Arc::new(certs));
        Ok(())
    }

    fn fingerprint(&self) -> Vec<Option<SystemTime>> {
        self.config
            .iter()
            .flat_map(|c| [&c.cert, &c.key])
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Polls the certificate files and reloads when they change.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut last = self.fingerprint();
        loop {
            tokio::time::sleep(interval).await;
            let now = self.fingerprint();
            if now != last {
                last = now;
                match self.reload() {
                    Ok(()) => tracing::info!("TLS certificates reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate reload failed; keeping the current ones")
                    }
                }
            }
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(c) = certs.by_name.get(&name) {
                return Some(c.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(c) = certs.by_name.get(&format!("*.{parent}")) {
                    return Some(c.clone());
                }
            }
        }
        certs.default.clone()
    }
}

/// Listener settings with the SNI resolver and HTTP/2 (ALPN h2, http/1.1).
pub fn settings(config: &TlsConfig) -> Result<(TlsSettings, Arc<SniResolver>), TlsError> {
    let resolver = Arc::new(SniResolver::new(config)?);
    let mut settings =
        TlsSettings::with_callbacks(Box::new(NoCallbacks)).map_err(|e| TlsError::Read {
            path: String::new(),
            reason: e.to_string(),
        })?;
    settings.set_cert_resolver(resolver.clone());
    settings.enable_h2();
    Ok((settings, resolver))
}

struct NoCallbacks;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for NoCallbacks {}
