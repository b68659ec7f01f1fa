//! Behavioural biometrics at the edge: the state behind
//! `POST /.sentinel/biometrics` (SPEC "Behavioural telemetry") and the
//! session score that every request made with the posting credential carries.
//!
//! Scoring is `sentinel_risk::biometrics` (pure); this module holds its
//! state in memory, bounded (moka): per-user profiles, per-(user, session)
//! session states, per-credential session scores and per-session rate
//! buckets. With an admin API ([`BiometricStore::attach`]) profiles are
//! loaded from it on first use, checked every `profile_check` and written
//! back after they change ([`super::biometrics_sync`]). It knows nothing of Pingora: the proxy hands it a principal, a
//! credential and the body bytes, and writes what it answers.
//!
//! Locking: a user's profile is a `tokio::sync::Mutex`, held while one batch
//! of that user is validated and accepted, and by the fit that enrolment or
//! adaptation makes due (on the blocking pool), so the next batch waits for
//! the fitted profile (SPEC: usable from the first batch after the one that
//! completes it). A session's state sits behind a `std::sync::Mutex` taken
//! only inside the profile's lock.

use super::biometrics_shared::{SharedScores, Unavailable};
use super::biometrics_sync::{ProfileClient, ProfileSync, Slot};
use crate::config::{AdminSource, BiometricsSettings};
use crate::errors::{Denial, ErrorCode};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use sentinel_risk::biometrics::{
    self as bio, Answer, BackgroundPart, BiometricsConfig, Profile, SessionState, Status,
};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// At most this many other users' profiles lend background data to one fit.
pub const MAX_BACKGROUND_USERS: usize = 20;
/// A credential keeps its last session score this long without a request or post.
const CREDENTIAL_TTL: Duration = Duration::from_secs(3600);
/// Score bits meaning "no score" in [`SharedScore`].
const NO_SCORE: u32 = u32::MAX;

type SessionKey = (Uuid, Box<str>);

/// A session's current score, shared with the credentials that posted to it.
#[derive(Debug)]
pub struct SharedScore(AtomicU32);

impl SharedScore {
    fn new() -> Self {
        SharedScore(AtomicU32::new(NO_SCORE))
    }
    fn set(&self, score: Option<f64>) {
        let bits = score.map_or(NO_SCORE, |s| (s.clamp(0.0, 1.0) as f32).to_bits());
        self.0.store(bits, Ordering::Relaxed);
    }
    /// The score, if the session has one.
    pub fn get(&self) -> Option<f32> {
        match self.0.load(Ordering::Relaxed) {
            NO_SCORE => None,
            bits => Some(f32::from_bits(bits)),
        }
    }
}

/// One session: its state and the score the credentials read.
struct Session {
    state: Mutex<SessionState>,
    score: Arc<SharedScore>,
}

/// A token bucket: the endpoint's own rate limit, per session.
struct Bucket {
    tokens: f64,
    at: Instant,
}

type ProfileSlot = Arc<Slot>;

/// Biometric state of one gateway (in memory; see docs/biometrics.md, "At the edge").
pub struct BiometricStore {
    cfg: Arc<BiometricsConfig>,
    settings: BiometricsSettings,
    /// Derives each user's key-id secret (`key_secret`).
    secret: [u8; 32],
    profiles: Cache<Uuid, ProfileSlot>,
    sessions: Cache<SessionKey, Arc<Session>>,
    credentials: Cache<u128, Arc<SharedScore>>,
    buckets: Cache<SessionKey, Arc<Mutex<Bucket>>>,
    /// Profiles that were fitted at least once (how many users can serve as background).
    ready: Arc<AtomicUsize>,
    /// Whether any batch was accepted yet.
    posted: AtomicBool,
    /// Profiles kept in the admin API (set by [`BiometricStore::attach`]).
    sync: Arc<OnceLock<Arc<ProfileSync>>>,
    /// Session scores shared with other gateways (`redis_url`).
    shared: Option<SharedScores>,
}

/// Why a batch was refused (the proxy writes it as the SPEC error body).
pub type Refusal = Denial;

impl BiometricStore {
    pub fn new(settings: &BiometricsSettings, secret: [u8; 32]) -> Self {
        let cfg = Arc::new(settings.scoring.clone());
        let profiles: Cache<Uuid, ProfileSlot> =
            Cache::builder().max_capacity(settings.max_profiles).build();
        let interval = Duration::from_secs(cfg.continuous_auth_interval_s.max(1));
        // A session ends when it posted nothing for the continuous-auth
        // interval; moka expires it then and an `ok` one teaches its profile.
        let sync: Arc<OnceLock<Arc<ProfileSync>>> = Arc::new(OnceLock::new());
        let (p, c, y) = (profiles.clone(), cfg.clone(), sync.clone());
        let sessions = Cache::builder()
            .max_capacity(settings.max_sessions)
            .time_to_idle(interval)
            .eviction_listener(move |key: Arc<SessionKey>, s: Arc<Session>, cause| {
                if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                    adapt_ended(&p, &c, y.get(), &key.0, &s);
                }
            })
            .build();
        BiometricStore {
            cfg,
            settings: settings.clone(),
            secret,
            profiles,
            sessions,
            credentials: Cache::builder()
                .max_capacity(settings.max_sessions)
                .time_to_idle(CREDENTIAL_TTL)
                .build(),
            buckets: Cache::builder()
                .max_capacity(settings.max_sessions)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            ready: Arc::new(AtomicUsize::new(0)),
            posted: AtomicBool::new(false),
            sync,
            shared: settings.redis.as_ref().and_then(|r| {
                SharedScores::new(&r.url, &r.prefix, r.timeout, CREDENTIAL_TTL)
                    .map_err(|e| tracing::error!(error = %e, "cannot set up the redis client of shared biometric scores; scores stay local"))
                    .ok()
            }),
        }
    }

    /// Keeps profiles in the admin API (`[policy] source = "admin"`): loaded
    /// on first use, checked every `profile_check`, written back
    /// `profile_write_delay` after a change. Without it they live in memory.
    pub fn attach(&self, admin: &AdminSource) {
        if let Some(client) = ProfileClient::new(admin) {
            let _ = self.sync.set(Arc::new(ProfileSync::new(
                client,
                self.settings.profile_check,
                self.settings.profile_write_delay,
                self.cfg.clone(),
            )));
        }
    }

    /// Whether `GET /.sentinel/telemetry/demo` is served (`demo_page`).
    pub fn demo_page(&self) -> bool {
        self.settings.demo_page
    }

    /// Largest body the endpoint reads.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// The score of the session last posted with this credential, if any.
    pub fn credential_score(&self, credential: &str) -> Option<f32> {
        // Until the first post, no request pays for hashing its credential.
        if !self.posted.load(Ordering::Relaxed) {
            return None;
        }
        self.credentials.get(&credential_key(credential))?.get()
    }

    /// Whether session scores are shared with other gateways (Redis).
    pub fn shares_scores(&self) -> bool {
        self.shared.is_some()
    }

    /// The credential's session score as every gateway sees it: the shared
    /// one (Redis), else this gateway's own; `Err` when Redis cannot say
    /// (the caller fails closed). Without Redis: this gateway's own.
    pub async fn shared_score(&self, credential: &str) -> Result<Option<f32>, Unavailable> {
        let local = self.credential_score(credential);
        match &self.shared {
            Some(shared) => Ok(shared.get(credential_key(credential)).await?.or(local)),
            None => Ok(local),
        }
    }

    /// The user's key-id secret for the collector (SPEC: "a keyed hash the
    /// gateway hands the page"): HMAC-SHA256 of the user id under the
    /// gateway's telemetry key; stable for one user, different per user.
    pub fn key_secret(&self, user: &Uuid) -> String {
        use base64::Engine;
        let mac = hmac_sha256(&self.secret, user.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    }

    /// Events accepted so far for a session (for tests and tools).
    pub fn samples(&self, user: &Uuid, session_id: &str) -> Option<(u64, u64)> {
        let s = self.sessions.get(&(*user, session_id.into()))?;
        let st = s.state.lock().ok()?;
        Some((st.mouse_events, st.key_events))
    }

    /// One `POST /.sentinel/biometrics` of `user` (of `tenant`), posted with
    /// `credential` (the bearer token), at wall-clock `now_ms`.
    pub async fn post(
        &self,
        user: Uuid,
        tenant: Uuid,
        credential: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Answer, Refusal> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            Denial::with_message(ErrorCode::BadRequest, format!("malformed JSON: {e}"))
        })?;
        // The session named, if the body names one well enough to look it up
        // (validation reports every problem of the body below).
        let named = value
            .get("session_id")
            .and_then(|v| v.as_str())
            .filter(|s| bio::batch::is_session_id(s))
            .map(|s| (user, Box::<str>::from(s)));
        if let Some(key) = &named {
            self.admit(key)?;
        }
        let slot = self.profiles.get_with(user, || Arc::new(Slot::new(tenant)));
        let mut profile = slot.profile.clone().lock_owned().await;
        if let Some(sync) = self.sync.get() {
            sync.bind_runtime();
            let was_ready = profile.phase == bio::Phase::Ready;
            if sync.refresh(user, &slot, &mut profile).await {
                let ready = profile.phase == bio::Phase::Ready;
                if ready && !was_ready {
                    self.ready.fetch_add(1, Ordering::Relaxed);
                } else if was_ready && !ready {
                    self.ready.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        let existing = named.as_ref().and_then(|k| self.sessions.get(k));

        // A retried batch (its `seq` already accepted): the answer as it stands.
        if let (Some(s), Some(seq), Some(key)) = (
            &existing,
            value.get("seq").and_then(serde_json::Value::as_u64),
            &named,
        ) {
            let st = s.state.lock().map_err(|_| internal())?;
            if st.seqs.seen(seq) {
                return Ok(bio::answer(&key.1, &st));
            }
        }
        let clock = match &existing {
            Some(s) => s.state.lock().map_err(|_| internal())?.clock,
            None => bio::Clock::default(),
        };
        let batch = bio::validate(&value, &clock).map_err(problems_denial)?;
        let key = (user, Box::<str>::from(batch.session_id.as_str()));
        let session = match existing {
            Some(s) => s,
            None => self.sessions.get_with(key, || {
                Arc::new(Session {
                    state: Mutex::new(SessionState::default()),
                    score: Arc::new(SharedScore::new()),
                })
            }),
        };
        let outcome = {
            let mut st = session.state.lock().map_err(|_| internal())?;
            let was_ready = profile.phase == bio::Phase::Ready;
            let outcome = bio::accept(&self.cfg, &mut profile, &mut st, &batch, now_ms);
            if !was_ready && profile.phase == bio::Phase::Ready {
                self.ready.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        };
        session.score.set(outcome.answer.score);
        if outcome.profile_changed {
            if let Some(sync) = self.sync.get() {
                sync.changed(user, slot.clone());
            }
        }
        self.posted.store(true, Ordering::Relaxed);
        self.credentials
            .insert(credential_key(credential), session.score.clone());
        if let Some(shared) = &self.shared {
            // Before answering: the page's next request, on any gateway,
            // sees this score. A failed write leaves it local (logged).
            let _ = shared
                .set(credential_key(credential), outcome.answer.score)
                .await;
        }
        if let Some(m) = crate::metrics::get() {
            m.risk
                .biometric_batches
                .with_label_values(&[outcome.answer.status.as_str()])
                .inc();
            if let Some(s) = outcome.answer.score {
                m.risk.biometric_score.observe(s);
            }
        }
        // Other users that can lend background: the fitted profiles but this one.
        let own = usize::from(profile.phase == bio::Phase::Ready);
        let others = self
            .ready
            .load(Ordering::Relaxed)
            .saturating_sub(own)
            .min(MAX_BACKGROUND_USERS);
        if profile.fit_due(others) {
            self.fit_later(user, slot, profile);
        }
        Ok(outcome.answer)
    }

    /// The session's rate limit: `batches_per_second`, bursts of `burst`.
    fn admit(&self, key: &SessionKey) -> Result<(), Refusal> {
        let (rate, burst) = (
            self.settings.batches_per_second,
            f64::from(self.settings.burst),
        );
        let bucket = self.buckets.get_with(key.clone(), || {
            Arc::new(Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }))
        });
        let mut b = bucket.lock().map_err(|_| internal())?;
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let mut d = Denial::new(ErrorCode::RateLimited)
            .details(serde_json::json!({"limit": "biometrics", "retry_after": 1}));
        d.retry_after = Some(1);
        Err(d)
    }

    /// Fits the profile on the blocking pool, holding its lock, with up to
    /// [`MAX_BACKGROUND_USERS`] other users' parts as impostor background.
    fn fit_later(
        &self,
        user: Uuid,
        slot: ProfileSlot,
        mut profile: tokio::sync::OwnedMutexGuard<Profile>,
    ) {
        let background = self.background(&user);
        let cfg = self.cfg.clone();
        let ready = self.ready.clone();
        let sync = self.sync.get().cloned();
        tokio::task::spawn_blocking(move || {
            let was_ready = profile.phase == bio::Phase::Ready;
            let result = profile.fit(&cfg, &background);
            if let Some(m) = crate::metrics::get() {
                let outcome = if result.is_ok() { "ok" } else { "failed" };
                m.risk.biometric_fits.with_label_values(&[outcome]).inc();
            }
            match result {
                Ok(()) if !was_ready => {
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "biometric profile fit failed"),
            }
            drop(profile);
            if let Some(sync) = sync {
                sync.changed(user, slot);
            }
        });
    }

    /// Other users' background parts (profiles not busy right now).
    fn background(&self, user: &Uuid) -> Vec<BackgroundPart> {
        let mut parts = Vec::new();
        for (other, slot) in self.profiles.iter() {
            if parts.len() >= MAX_BACKGROUND_USERS {
                break;
            }
            if *other == *user {
                continue;
            }
            if let Ok(p) = slot.profile.try_lock() {
                // Fitted (or due) profiles only, as `ready` counts them: a
                // refit is due when more users can lend than the fit had.
                if p.phase != bio::Phase::Enrolling && p.pooled().0 >= 20 {
                    parts.push(p.background_part());
                }
            }
        }
        parts
    }

    /// Status of the user's profile (`enrolling` / `ready`), for tests and tools.
    pub fn profile_ready(&self, user: &Uuid) -> bool {
        self.profiles
            .get(user)
            .and_then(|s| {
                s.profile
                    .try_lock()
                    .ok()
                    .map(|p| p.phase == bio::Phase::Ready)
            })
            .unwrap_or(false)
    }
}

/// An ended session teaches its profile if it ended `ok` (the crate checks).
/// A profile busy with a batch or a fit is skipped: adaptation is best effort.
fn adapt_ended(
    profiles: &Cache<Uuid, ProfileSlot>,
    cfg: &BiometricsConfig,
    sync: Option<&Arc<ProfileSync>>,
    user: &Uuid,
    s: &Session,
) {
    let Some(slot) = profiles.get(user) else {
        return;
    };
    let adapted = {
        let (Ok(mut p), Ok(mut st)) = (slot.profile.try_lock(), s.state.lock()) else {
            return;
        };
        st.status == Status::Ok && p.adapt(cfg, &mut st)
    };
    if adapted {
        tracing::debug!(user = %user, "biometric profile adapted from an ended ok session");
        if let Some(sync) = sync {
            sync.changed(*user, slot);
        }
    }
}

/// 128 bits of SHA-256 of the credential: the credential map's key (the
/// token itself is never kept).
fn credential_key(credential: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(credential.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // INVARIANT: HMAC takes keys of any length, so `new_from_slice` cannot fail.
    match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

fn internal() -> Denial {
    Denial::new(ErrorCode::InternalError)
}

/// `422 VALIDATION_ERROR`, details `{field: message}` like the admin API's.
fn problems_denial(problems: Vec<bio::Problem>) -> Denial {
    let mut details = serde_json::Map::new();
    for p in problems {
        let field = if p.field.is_empty() {
            "body".to_owned()
        } else {
            p.field
        };
        match details.get_mut(&field) {
            Some(serde_json::Value::String(s)) => {
                s.push_str("; ");
                s.push_str(&p.message);
            }
            _ => {
                details.insert(field, serde_json::Value::String(p.message));
            }
        }
    }
    Denial::with_message(ErrorCode::ValidationError, "the telemetry batch is invalid")
        .details(serde_json::Value::Object(details))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_rfc4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn shared_score_round_trips() {
        let s = SharedScore::new();
        assert_eq!(s.get(), None);
        s.set(Some(0.75));
        assert_eq!(s.get(), Some(0.75));
        s.set(None);
        assert_eq!(s.get(), None);
    }
}
