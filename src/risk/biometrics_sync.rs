//! Where biometric profiles live when the gateway has an admin API
//! (`[policy] source = "admin"`): `GET`/`POST
//! {admin}/api/v1/gateway/biometrics/{tenant}/{user}` with the gateway's
//! key, the channel the snapshots and audit batches use. The admin API
//! keeps them in PostgreSQL (`biometric_profiles`); see
//! admin-api/src/biometrics/gateway.rs for the answers.
//!
//! This module is the HTTP client only; when to load, check and write is
//! [`super::biometrics::BiometricStore`]'s business.

use crate::config::{AdminSource, Secret};
use sentinel_risk::biometrics::{self as bio, BiometricsConfig, Profile};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Every call to the admin API is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(3);
const GENERATION_HEADER: &str = "sentinel-profile-generation";

/// What the admin API holds for a user.
#[derive(Debug)]
pub enum Remote {
    /// A stored profile (encoded), its generation and tag.
    Profile {
        bytes: Vec<u8>,
        generation: Uuid,
        etag: String,
    },
    /// A row without a profile: reset, enrolment starts again in `generation`.
    Empty { generation: Uuid, etag: String },
    /// No row: never enrolled, or deleted.
    Absent,
    /// The tag the gateway named is still the row's.
    NotModified,
}

/// What a write did.
#[derive(Debug)]
pub struct Stored {
    pub stored: bool,
    pub generation: Option<Uuid>,
    pub etag: Option<String>,
}

/// What the gateway says of the profile it writes (the admin API cannot
/// decode it; people see these).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub ready: bool,
    pub samples: u32,
    pub mouse_actions: usize,
    pub key_observations: usize,
}

pub struct ProfileClient {
    client: reqwest::Client,
    /// `{admin}/api/v1/gateway/biometrics`.
    base: String,
    key: Secret,
}

impl ProfileClient {
    pub fn new(admin: &AdminSource) -> Option<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the biometric profile client; profiles stay in memory"))
            .ok()?;
        Some(ProfileClient {
            client,
            base: format!("{}/api/v1/gateway/biometrics", admin.url),
            key: admin.api_key.clone(),
        })
    }

    fn url(&self, tenant: Uuid, user: Uuid) -> String {
        format!("{}/{tenant}/{user}", self.base)
    }

    /// Loads (or, with `etag`, revalidates) a user's profile.
    pub async fn fetch(
        &self,
        tenant: Uuid,
        user: Uuid,
        etag: Option<&str>,
    ) -> Result<Remote, String> {
        let mut req = self.client.get(self.url(tenant, user)).header(
            http::header::AUTHORIZATION,
            format!("ApiKey {}", self.key.0),
        );
        if let Some(t) = etag {
            req = req.header(http::header::IF_NONE_MATCH, t);
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(http::header::ETAG.as_str());
        let generation = header(GENERATION_HEADER).and_then(|g| g.parse::<Uuid>().ok());
        match (status, generation, etag) {
            (304, _, _) => Ok(Remote::NotModified),
            (404, _, _) => Ok(Remote::Absent),
            (204, Some(generation), Some(etag)) => Ok(Remote::Empty { generation, etag }),
            (200, Some(generation), Some(etag)) => {
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                Ok(Remote::Profile {
                    bytes: bytes.to_vec(),
                    generation,
                    etag,
                })
            }
            (s, _, _) => Err(format!("status {s}")),
        }
    }

    /// Writes a user's profile for `generation` (none: create only if absent).
    pub async fn store(
        &self,
        tenant: Uuid,
        user: Uuid,
        generation: Option<Uuid>,
        summary: Summary,
        bytes: Vec<u8>,
    ) -> Result<Stored, String> {
        let mut query = vec![
            (
                "status",
                if summary.ready { "ready" } else { "enrolling" }.to_owned(),
            ),
            ("samples", summary.samples.min(i32::MAX as u32).to_string()),
            (
                "mouse_actions",
                summary.mouse_actions.min(i32::MAX as usize).to_string(),
            ),
            (
                "key_observations",
                summary.key_observations.min(i32::MAX as usize).to_string(),
            ),
        ];
        if let Some(g) = generation {
            query.push(("generation", g.to_string()));
        }
        let resp = self
            .client
            .post(self.url(tenant, user))
            .query(&query)
            .header(
                http::header::AUTHORIZATION,
                format!("ApiKey {}", self.key.0),
            )
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(format!("status {status}"));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            stored: bool,
            generation: Option<Uuid>,
            version: Option<i64>,
        }
        let a: Answer = resp.json().await.map_err(|e| e.to_string())?;
        Ok(Stored {
            stored: a.stored,
            generation: a.generation,
            etag: match (a.generation, a.version) {
                (Some(g), Some(v)) => Some(format!("\"{g}.{v}\"")),
                _ => None,
            },
        })
    }
}

/// What the gateway knows of the admin API's copy of one profile.
#[derive(Debug, Default)]
pub struct SyncState {
    /// The generation loaded or written (none: the admin API had no row).
    generation: Option<Uuid>,
    /// The tag of the copy this profile came from or was written as.
    etag: Option<String>,
    /// When the admin API's copy is next looked at (none: at the next post).
    next_check: Option<Instant>,
    /// Changed since the last write.
    dirty: bool,
    /// A write task runs for this profile.
    writing: bool,
}

/// One user's profile as the gateway caches it.
pub struct Slot {
    pub tenant: Uuid,
    pub profile: Arc<tokio::sync::Mutex<Profile>>,
    pub sync: Mutex<SyncState>,
}

impl Slot {
    pub fn new(tenant: Uuid) -> Self {
        Slot {
            tenant,
            profile: Arc::new(tokio::sync::Mutex::new(Profile::default())),
            sync: Mutex::new(SyncState::default()),
        }
    }
}

/// Profiles kept in the admin API: loaded on first use, checked every
/// `check`, written back `delay` after they change (off the request path).
pub struct ProfileSync {
    client: ProfileClient,
    check: Duration,
    delay: Duration,
    cfg: Arc<BiometricsConfig>,
    runtime: OnceLock<tokio::runtime::Handle>,
}

/// Retry a failed load or check this soon (at most `check`).
const RETRY: Duration = Duration::from_secs(5);

impl ProfileSync {
    pub fn new(
        client: ProfileClient,
        check: Duration,
        delay: Duration,
        cfg: Arc<BiometricsConfig>,
    ) -> Self {
        ProfileSync {
            client,
            check,
            delay,
            cfg,
            runtime: OnceLock::new(),
        }
    }

    /// Remembers the runtime write tasks are spawned on (from a request).
    pub fn bind_runtime(&self) {
        if self.runtime.get().is_none() {
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                let _ = self.runtime.set(h);
            }
        }
    }

    /// Loads the profile on first use, and checks the admin API's copy when
    /// a check is due; the caller holds the profile's lock. Returns whether
    /// `profile` was replaced (loaded, reset or deleted elsewhere).
    pub async fn refresh(&self, user: Uuid, slot: &Slot, profile: &mut Profile) -> bool {
        let etag = {
            let Ok(st) = slot.sync.lock() else {
                return false;
            };
            if st.next_check.is_some_and(|t| Instant::now() < t) {
                return false;
            }
            st.etag.clone()
        };
        let answer = self.client.fetch(slot.tenant, user, etag.as_deref()).await;
        let Ok(mut st) = slot.sync.lock() else {
            return false;
        };
        let now = Instant::now();
        st.next_check = Some(now + self.check);
        match answer {
            Err(e) => {
                st.next_check = Some(now + RETRY.min(self.check));
                count_error("profile_load");
                tracing::warn!(error = %e, user = %user, "cannot load a biometric profile from the admin API; the cached one is used");
                false
            }
            Ok(Remote::NotModified) => false,
            Ok(Remote::Absent) => {
                st.etag = None;
                if st.generation.is_none() {
                    return false;
                }
                // Deleted (a data-subject request): forget it.
                *profile = Profile::default();
                fresh(&mut st, None, None);
                true
            }
            Ok(Remote::Empty { generation, etag }) => {
                if st.generation == Some(generation) {
                    st.etag = Some(etag);
                    return false;
                }
                // Reset: enrolment starts again.
                *profile = Profile::default();
                fresh(&mut st, Some(generation), Some(etag));
                true
            }
            Ok(Remote::Profile {
                bytes,
                generation,
                etag,
            }) => {
                // This gateway's own changes in that generation are newer.
                if st.generation == Some(generation) && (st.dirty || st.writing) {
                    return false;
                }
                match bio::decode::<Profile>(&bytes) {
                    Ok(p) => {
                        *profile = p;
                        fresh(&mut st, Some(generation), Some(etag));
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, user = %user, "the admin API's biometric profile cannot be read; the cached one is used");
                        false
                    }
                }
            }
        }
    }

    /// Marks the profile changed and writes it back after `delay` (once for
    /// every change in between), off the request path.
    pub fn changed(self: &Arc<Self>, user: Uuid, slot: Arc<Slot>) {
        {
            let Ok(mut st) = slot.sync.lock() else {
                return;
            };
            st.dirty = true;
            if st.writing {
                return;
            }
            st.writing = true;
        }
        let Some(rt) = self.runtime.get() else {
            if let Ok(mut st) = slot.sync.lock() {
                st.writing = false;
            }
            return;
        };
        let me = self.clone();
        rt.spawn(async move { me.write_loop(user, slot).await });
    }

    async fn write_loop(&self, user: Uuid, slot: Arc<Slot>) {
        let mut wait = self.delay;
        loop {
            tokio::time::sleep(wait).await;
            let (bytes, generation, summary) = {
                let p = slot.profile.lock().await;
                let Ok(mut st) = slot.sync.lock() else {
                    return;
                };
                if !st.dirty {
                    st.writing = false;
                    return;
                }
                st.dirty = false;
                let bytes = match bio::encode(&*p) {
                    Ok(b) => b,
                    Err(e) => {
                        st.writing = false;
                        tracing::error!(error = %e, "cannot encode a biometric profile");
                        return;
                    }
                };
                let (mouse_actions, key_observations) = p.pooled();
                let summary = Summary {
                    ready: p.phase == bio::Phase::Ready,
                    samples: p.samples(&self.cfg),
                    mouse_actions,
                    key_observations,
                };
                (bytes, st.generation, summary)
            };
            let result = self
                .client
                .store(slot.tenant, user, generation, summary, bytes)
                .await;
            let Ok(mut st) = slot.sync.lock() else {
                return;
            };
            match result {
                Ok(s) if s.stored => {
                    st.generation = s.generation;
                    st.etag = s.etag;
                    wait = self.delay;
                }
                Ok(_) => {
                    // Reset, deleted or created by another gateway since this
                    // copy was loaded: the next post adopts the admin API's.
                    st.next_check = None;
                    st.etag = None;
                    wait = self.delay;
                }
                Err(e) => {
                    tracing::warn!(error = %e, user = %user, "cannot write a biometric profile to the admin API; retrying");
                    st.dirty = true;
                    count_error("profile_write");
                    wait = (wait * 2).clamp(Duration::from_millis(200), Duration::from_secs(30));
                }
            }
        }
    }
}

fn count_error(kind: &str) {
    if let Some(m) = crate::metrics::get() {
        m.risk
            .biometric_shared_errors
            .with_label_values(&[kind])
            .inc();
    }
}

/// The cached profile now is the admin API's copy of `generation` (`etag`).
fn fresh(st: &mut SyncState, generation: Option<Uuid>, etag: Option<String>) {
    st.generation = generation;
    st.etag = etag;
    st.dirty = false;
}
