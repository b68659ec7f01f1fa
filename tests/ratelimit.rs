#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly, in their helpers too"
)]
//! Rate limiting against a real Redis (`REDIS_URL`, else `redis://127.0.0.1:6379`); each test
//! uses its own random key prefix. Failure tests use closed loopback ports and throwaway
//! `redis-server` children. Every loop is bounded in count and time.

mod common;

use common::{free_port, RedisServer};
use sentinel::clock::{Clock, ManualClock};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel::ratelimit::{
    FailureMode, LimitKey, Limiter, Mode, Outcome, Quota, SetupError, Source,
};

const KINDS: [&str; 4] = ["tenant", "principal", "route:standard", "ip"];

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn prefix() -> String {
    format!("sentinel-test:{}", uuid::Uuid::new_v4())
}

fn no_refill(burst: u32) -> Quota {
    Quota::new(burst, Duration::from_secs(3600)).unwrap()
}

async fn local() -> Limiter {
    Limiter::new(Mode::Local).await.unwrap()
}

async fn cluster_at(
    url: String,
    prefix: String,
    failure: FailureMode,
    timeout: Duration,
) -> Limiter {
    Limiter::new(Mode::Cluster {
        url,
        failure,
        timeout,
        key_prefix: prefix,
    })
    .await
    .unwrap()
}

async fn cluster() -> Limiter {
    cluster_at(
        redis_url(),
        prefix(),
        FailureMode::FailClosed,
        Duration::from_millis(500),
    )
    .await
}

fn key<'a>(limit: &'a str, subject: &'a str, quota: Quota) -> LimitKey<'a> {
    LimitKey {
        limit,
        subject,
        quota,
    }
}

async fn run(limiter: &Limiter, keys: &[LimitKey<'_>], n: usize) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(limiter.check(keys).await);
    }
    out
}

fn allowed(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| o.allowed).count()
}

// ---------------------------------------------------------------------------------------------
// Both modes: the same behaviour table.

async fn each_limit_kind_enforces_its_burst(limiter: &Limiter, expected: Source) {
    let tenant = uuid::Uuid::new_v4().to_string();
    for kind in KINDS {
        let keys = [key(kind, &tenant, no_refill(3))];
        let out = run(limiter, &keys, 5).await;
        let got: Vec<bool> = out.iter().map(|o| o.allowed).collect();
        assert_eq!(got, [true, true, true, false, false], "{kind}");
        assert_eq!(
            out.iter().map(|o| o.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0, 0],
            "{kind}"
        );
        let denied = &out[3];
        assert_eq!(denied.limit, kind);
        assert_eq!(denied.source, expected, "{kind}");
        let retry = denied.retry_after.unwrap();
        assert!(
            retry > Duration::from_secs(3500) && retry <= Duration::from_secs(3600),
            "{retry:?}"
        );
        assert_eq!(denied.retry_after_secs(), Some(3600));
        let [(_, policy), (_, current)] = out[0].headers().unwrap();
        assert_eq!(policy, format!("\"{kind}\";q=3;w=10800"));
        assert_eq!(current, format!("\"{kind}\";r=2;t=3600"));
    }
}

async fn tightest_wins_and_denials_take_nothing(limiter: &Limiter) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let (p1, p2) = ("alice", "bob");
    let tenant_q = no_refill(10);
    let keys = |principal| {
        [
            key("tenant", &tenant, tenant_q),
            key("principal", principal, no_refill(3)),
            key("route:standard", &tenant, no_refill(50)),
        ]
    };
    let alice = keys(p1);
    let first = limiter.check(&alice).await;
    assert!(first.allowed);
    assert_eq!((first.limit.as_str(), first.remaining), ("principal", 2));
    let out = run(limiter, &alice, 30).await;
    assert_eq!(allowed(&out), 2);
    assert!(out[2..]
        .iter()
        .all(|o| !o.allowed && o.limit == "principal"));
    // Alice's 28 denied requests took nothing from the tenant: 10 - 3 are left for Bob.
    let bob = [
        key("tenant", &tenant, tenant_q),
        key("principal", p2, no_refill(100)),
    ];
    let out = run(limiter, &bob, 10).await;
    assert_eq!(allowed(&out), 7);
    assert_eq!(out[0].limit, "tenant");
    assert_eq!(out[0].remaining, 6);
    assert_eq!(out[9].limit, "tenant");
    // Two limits denying: the longer wait is reported.
    let short = Quota::new(1, Duration::from_secs(60)).unwrap();
    let long = Quota::new(1, Duration::from_secs(600)).unwrap();
    let both = [key("short", &tenant, short), key("long", &tenant, long)];
    assert!(limiter.check(&both).await.allowed);
    let denied = limiter.check(&both).await;
    assert!(!denied.allowed);
    assert_eq!(denied.limit, "long");
    assert!(denied.retry_after.unwrap() > Duration::from_secs(500));
}

/// The burst goes through at once, then the limit bites; then one request
/// per period gets through. `tick` moves time on by 2 ms (the test's clock,
/// or a real sleep) and `elapsed` says how much time has passed since the
/// steady part began: returns the steady part's acceptances and its length.
async fn burst_then_steady_rate<F: std::future::Future<Output = ()>>(
    limiter: &Limiter,
    tick: impl Fn() -> F,
    elapsed: impl Fn() -> Duration,
) -> (usize, Duration) {
    let subject = uuid::Uuid::new_v4().to_string();
    // 5 at once, then one per 50 ms.
    let quota = Quota::new(5, Duration::from_millis(50)).unwrap();
    let keys = [key("tenant", &subject, quota)];
    let out = run(limiter, &keys, 8).await;
    assert_eq!(allowed(&out[..5]), 5);
    assert!(allowed(&out[5..]) <= 1, "{:?}", out);
    let mut accepted = 0;
    // Bounded in count: a second of 2 ms ticks, and no more.
    for _ in 0..500 {
        if elapsed() >= Duration::from_secs(1) {
            break;
        }
        if limiter.check(&keys).await.allowed {
            accepted += 1;
        }
        tick().await;
    }
    (accepted, elapsed())
}

async fn one_tenants_flood_does_not_limit_another(limiter: &Limiter, most: usize) {
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let quota = Quota::new(5, Duration::from_millis(100)).unwrap();
    let flood = [key("tenant", &a, quota), key("route:standard", &a, quota)];
    let out = run(limiter, &flood, 200).await;
    assert!(allowed(&out) <= most, "flood got {}", allowed(&out));
    let calm = [key("tenant", &b, quota), key("route:standard", &b, quota)];
    let out = run(limiter, &calm, 5).await;
    assert_eq!(allowed(&out), 5);
}

/// A local limiter on a clock that moves only when the test says so.
fn local_on_clock() -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    (Limiter::local_with_clock(clock.clone()), clock)
}

#[tokio::test]
async fn local_each_limit_kind() {
    each_limit_kind_enforces_its_burst(&local().await, Source::Local).await;
}

#[tokio::test]
async fn local_tightest_wins() {
    tightest_wins_and_denials_take_nothing(&local().await).await;
}

#[tokio::test]
async fn local_burst_then_steady() {
    // The limiter's maths on the test's clock: exactly one per 50 ms.
    let (limiter, clock) = local_on_clock();
    let start = clock.unix_ms();
    let (accepted, took) = burst_then_steady_rate(
        &limiter,
        || {
            clock.advance(Duration::from_millis(2));
            std::future::ready(())
        },
        || Duration::from_millis(u64::try_from(clock.unix_ms() - start).unwrap()),
    )
    .await;
    assert_eq!(took, Duration::from_secs(1));
    // Checks at 0, 2, …, 998 ms after the burst: one each at 50, 100, …, 950 ms.
    assert_eq!(accepted, 19, "steady accepted {accepted}");
}

#[tokio::test]
async fn local_tenant_isolation() {
    // No time passes: the flood gets its burst and not one more.
    let (limiter, _clock) = local_on_clock();
    one_tenants_flood_does_not_limit_another(&limiter, 5).await;
}

#[tokio::test]
async fn cluster_each_limit_kind() {
    each_limit_kind_enforces_its_burst(&cluster().await, Source::Cluster).await;
}

#[tokio::test]
async fn cluster_tightest_wins() {
    tightest_wins_and_denials_take_nothing(&cluster().await).await;
}

#[tokio::test]
async fn cluster_burst_then_steady() {
    // Redis keeps its own time: the bound is the maths over the time that
    // really passed (at most one per period, plus one at the edge), and
    // some refill must have happened in it.
    let start = Instant::now();
    let (accepted, took) = burst_then_steady_rate(
        &cluster().await,
        || tokio::time::sleep(Duration::from_millis(2)),
        || start.elapsed(),
    )
    .await;
    let most = usize::try_from(took.as_millis() / 50).unwrap() + 1;
    assert!(
        (1..=most).contains(&accepted),
        "steady accepted {accepted} in {took:?} (at most {most})"
    );
}

#[tokio::test]
async fn cluster_tenant_isolation() {
    // Real time passes while the flood runs: at most a refill or two more.
    one_tenants_flood_does_not_limit_another(&cluster().await, 7).await;
}

#[tokio::test]
async fn no_limits_means_unlimited() {
    let o = local().await.check(&[]).await;
    assert!(o.allowed && o.headers().is_none() && o.source == Source::Unlimited);
}

// ---------------------------------------------------------------------------------------------
// Local only.

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn local_idle_keys_expire_so_memory_stays_bounded() {
    const SUBJECTS: usize = 1_000_000;
    /// Checks `SUBJECTS` fresh subjects, numbered from `first`.
    async fn fill(limiter: &Limiter, quota: Quota, first: usize) {
        let mut subject = String::new();
        for i in first..first + SUBJECTS {
            subject.clear();
            subject.push_str("client-");
            subject.push_str(&i.to_string());
            assert!(limiter.check(&[key("ip", &subject, quota)]).await.allowed);
        }
    }
    let rss = || rss_kib().expect("VmRSS in /proc/self/status");
    // Sweeps by hand here, so the counts below are exact.
    let limiter = Limiter::with_sweep_interval(Mode::Local, Duration::from_secs(3600))
        .await
        .unwrap();
    let quota = Quota::new(2, Duration::from_millis(10)).unwrap();
    let before = rss();
    let start = Instant::now();
    fill(&limiter, quota, 0).await;
    let fill_took = start.elapsed();
    let filled = rss();
    assert_eq!(limiter.stats().local_keys, SUBJECTS);
    // A subject still inside its refill window is kept.
    let live = [key("ip", "live", no_refill(2))];
    assert!(limiter.check(&live).await.allowed);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let start = Instant::now();
    assert_eq!(limiter.sweep(), 1);
    let sweep = start.elapsed();
    assert_eq!(limiter.stats().local_keys, 1);
    let swept = rss();
    // Another million subjects after the sweep: the memory the first held
    // is reused, so the process does not grow by another million keys.
    fill(&limiter, quota, SUBJECTS).await;
    let refilled = rss();
    assert_eq!(limiter.stats().local_keys, SUBJECTS + 1);
    println!(
        "{SUBJECTS} subjects in {fill_took:?}; rss KiB before {before}, filled {filled}, \
         after a {sweep:?} sweep {swept}, refilled {refilled}"
    );
    let grew = filled.saturating_sub(before);
    // Control: the measurement sees a million keys.
    assert!(grew > 8 * 1024, "a million keys took only {grew} KiB");
    assert!(
        refilled.saturating_sub(filled) < grew / 2,
        "memory grew by {} KiB on a second million after the sweep (the first took {grew} KiB)",
        refilled.saturating_sub(filled)
    );
    let out = run(&limiter, &live, 2).await;
    assert_eq!(allowed(&out), 1, "the live subject kept its state");
    // A key that was dropped behaves as a fresh one.
    let out = run(&limiter, &[key("ip", "client-7", quota)], 3).await;
    assert_eq!(allowed(&out), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_concurrent_checks_never_exceed_the_limit() {
    let limiter = local().await;
    let quota = no_refill(1_000);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let keys = [
                key("tenant", "shared", quota),
                key("principal", "p", no_refill(100_000)),
            ];
            allowed(&run(&limiter, &keys, 2_000).await)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 1_000);
}

// ---------------------------------------------------------------------------------------------
// Cluster only.

#[tokio::test]
async fn cluster_fast_path_answers_known_denials_without_redis() {
    let limiter = cluster().await;
    let keys = [key("tenant", "t", no_refill(1))];
    assert_eq!(limiter.check(&keys).await.source, Source::Cluster);
    assert_eq!(limiter.check(&keys).await.source, Source::Cluster);
    let o = limiter.check(&keys).await;
    assert_eq!((o.allowed, o.source), (false, Source::FastPath));
    let stats = limiter.stats();
    assert_eq!(stats.fast_path_denials, 1);
    assert_eq!(stats.fast_path_entries, 1);
    assert!(stats.cluster_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_two_limiters_enforce_one_shared_limit() {
    let prefix = prefix();
    let timeout = Duration::from_millis(500);
    let gateways = [
        cluster_at(
            redis_url(),
            prefix.clone(),
            FailureMode::FailClosed,
            timeout,
        )
        .await,
        cluster_at(
            redis_url(),
            prefix.clone(),
            FailureMode::FailClosed,
            timeout,
        )
        .await,
    ];
    let quota = Quota::new(10, Duration::from_millis(20)).unwrap();
    let window = Duration::from_millis(1_500);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let limiter = gateways[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let keys = [key("tenant", "shared-tenant", quota)];
            let mut accepted = 0u32;
            for _ in 0..10_000 {
                if start.elapsed() >= window {
                    break;
                }
                if limiter.check(&keys).await.allowed {
                    accepted += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            accepted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = start.elapsed();
    // GCRA bound over the window: the burst plus one per period.
    let limit = 10.0 + elapsed.as_secs_f64() / 0.020 + 1.0;
    println!("two gateways accepted {total} in {elapsed:?}; shared limit {limit:.0}");
    assert!(
        f64::from(total) <= limit * 1.05,
        "accepted {total} > {limit} x 1.05"
    );
    // And the limit is really shared, not each gateway's alone (that would be ~2x).
    assert!(
        f64::from(total) >= limit * 0.6,
        "accepted only {total} of {limit}"
    );
    for g in &gateways {
        assert_eq!(g.stats().cluster_errors, 0);
    }
}

#[tokio::test]
async fn cluster_invalid_url_is_a_setup_error() {
    let err = Limiter::new(Mode::Cluster {
        url: "not a url".into(),
        failure: FailureMode::FailOpen,
        timeout: Duration::from_millis(100),
        key_prefix: prefix(),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SetupError::RedisUrl), "{err}");
    let err = Limiter::new(Mode::Cluster {
        url: redis_url(),
        failure: FailureMode::FailOpen,
        timeout: Duration::ZERO,
        key_prefix: prefix(),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, SetupError::ZeroTimeout));
}

const TIMEOUT: Duration = Duration::from_millis(150);
/// "Does not hang": far above the 150 ms Redis timeout, far below a hung
/// connection, and no measurement of how fast the answer came on a loaded
/// machine.
const NO_HANG: Duration = Duration::from_secs(5);

async fn timed_check(limiter: &Limiter, keys: &[LimitKey<'_>]) -> Outcome {
    let start = Instant::now();
    let o = limiter.check(keys).await;
    let took = start.elapsed();
    assert!(took <= NO_HANG, "check took {took:?}");
    o
}

#[tokio::test]
async fn cluster_down_fail_open_falls_back_to_local_limits() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let start = Instant::now();
    let limiter = cluster_at(url, prefix(), FailureMode::FailOpen, TIMEOUT).await;
    assert!(start.elapsed() <= NO_HANG);
    let keys = [key("tenant", "t", no_refill(3))];
    let mut out = Vec::new();
    for _ in 0..5 {
        out.push(timed_check(&limiter, &keys).await);
    }
    assert_eq!(
        out.iter().map(|o| o.allowed).collect::<Vec<_>>(),
        [true, true, true, false, false]
    );
    assert!(out.iter().all(|o| o.source == Source::Fallback));
    let stats = limiter.stats();
    assert!(!stats.cluster_up);
    assert_eq!(stats.fallbacks, 5);
    assert!(stats.cluster_errors >= 1, "{stats:?}");
}

#[tokio::test]
async fn cluster_down_fail_closed_denies() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let limiter = cluster_at(url, prefix(), FailureMode::FailClosed, TIMEOUT).await;
    let keys = [
        key("tenant", "t", no_refill(3)),
        key("ip", "127.0.0.1", no_refill(3)),
    ];
    for _ in 0..5 {
        let o = timed_check(&limiter, &keys).await;
        assert!(!o.allowed);
        assert_eq!(o.source, Source::FailClosed);
        assert_eq!(o.retry_after_secs(), Some(1));
    }
    assert_eq!(limiter.stats().fail_closed, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_slow_redis_never_hangs_a_request() {
    // Accepts connections and never answers: every call must time out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..64 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
    });
    let url = format!("redis://127.0.0.1:{port}");
    for failure in [FailureMode::FailClosed, FailureMode::FailOpen] {
        let limiter = cluster_at(url.clone(), prefix(), failure, TIMEOUT).await;
        let keys = [key("tenant", "t", no_refill(100))];
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let o = limiter.check(&keys).await;
                (start.elapsed(), o)
            }));
        }
        for t in tasks {
            let (took, o) = t.await.unwrap();
            assert!(took <= NO_HANG, "{failure:?} check took {took:?}");
            let expected = match failure {
                FailureMode::FailClosed => (false, Source::FailClosed),
                FailureMode::FailOpen => (true, Source::Fallback),
            };
            assert_eq!((o.allowed, o.source), expected);
        }
        assert!(!limiter.stats().cluster_up);
    }
    silent.abort();
}

/// Polls until a check is answered by `source`, bounded by `within`.
async fn wait_for(
    limiter: &Limiter,
    keys: &[LimitKey<'_>],
    source: Source,
    within: Duration,
) -> Outcome {
    let start = Instant::now();
    for _ in 0..1_000 {
        let o = timed_check(limiter, keys).await;
        if o.source == source {
            return o;
        }
        assert!(
            start.elapsed() < within,
            "no {source:?} answer within {within:?}; last {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {source:?} answer after 1000 checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_starts_degraded_and_recovers_after_redis_restarts() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = prefix();
    // Redis is not there yet: setup still succeeds, degraded.
    let closed = cluster_at(
        url.clone(),
        prefix.clone(),
        FailureMode::FailClosed,
        TIMEOUT,
    )
    .await;
    let open = cluster_at(url.clone(), prefix.clone(), FailureMode::FailOpen, TIMEOUT).await;
    let quota = Quota::new(1_000, Duration::from_millis(1)).unwrap();
    let keys = [key("tenant", "t", quota)];
    assert_eq!(timed_check(&closed, &keys).await.source, Source::FailClosed);
    assert_eq!(timed_check(&open, &keys).await.source, Source::Fallback);

    let redis = RedisServer::start(port);
    let within = Duration::from_secs(5);
    assert!(
        wait_for(&closed, &keys, Source::Cluster, within)
            .await
            .allowed
    );
    assert!(
        wait_for(&open, &keys, Source::Cluster, within)
            .await
            .allowed
    );
    assert!(closed.stats().cluster_up && open.stats().cluster_up);

    drop(redis);
    assert!(
        !wait_for(&closed, &keys, Source::FailClosed, within)
            .await
            .allowed
    );
    assert!(
        wait_for(&open, &keys, Source::Fallback, within)
            .await
            .allowed
    );
    assert!(!closed.stats().cluster_up && !open.stats().cluster_up);

    let _redis = RedisServer::start(port);
    assert!(
        wait_for(&closed, &keys, Source::Cluster, within)
            .await
            .allowed
    );
    assert!(
        wait_for(&open, &keys, Source::Cluster, within)
            .await
            .allowed
    );
    let (c, o) = (closed.stats(), open.stats());
    assert!(c.cluster_up && o.cluster_up);
    assert!(c.cluster_errors >= 2 && c.fail_closed >= 2, "{c:?}");
    assert!(o.cluster_errors >= 2 && o.fallbacks >= 2, "{o:?}");
    // Shared limits again: both limiters see the same state.
    let tight = [key("tenant", "restart", no_refill(2))];
    assert!(closed.check(&tight).await.allowed);
    assert!(open.check(&tight).await.allowed);
    let denied = open.check(&tight).await;
    assert_eq!((denied.allowed, denied.source), (false, Source::Cluster));
}

#[tokio::test]
async fn cluster_limiter_is_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Limiter>();
    let limiter = Arc::new(cluster().await);
    let keys = [key("tenant", "t", no_refill(5))];
    assert!(limiter.check(&keys).await.allowed);
}

#[tokio::test]
async fn cluster_keys_expire_in_redis_once_the_limit_is_full_again() {
    let prefix = prefix();
    let limiter = cluster_at(
        redis_url(),
        prefix.clone(),
        FailureMode::FailClosed,
        Duration::from_millis(500),
    )
    .await;
    let quota = Quota::new(2, Duration::from_millis(100)).unwrap();
    assert!(limiter.check(&[key("ip", "::1", quota)]).await.allowed);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let redis_key = format!("{prefix}:ip|::1");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    // One token spent of a 100 ms period: full again within ~100 ms (+1 ms rounding).
    assert!((1..=102).contains(&ttl), "pttl {ttl}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

/// The gateway builds its state on a short-lived setup runtime and serves on Pingora's.
#[test]
fn limiter_built_on_a_setup_runtime_works_on_another() {
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limiter = setup.block_on(cluster_at(
        redis_url(),
        prefix(),
        FailureMode::FailClosed,
        Duration::from_millis(500),
    ));
    assert!(limiter.stats().cluster_up);
    drop(setup);
    let serving = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keys = [key("tenant", "t", no_refill(2))];
    let out = serving.block_on(run(&limiter, &keys, 3));
    let got: Vec<(bool, Source)> = out.iter().map(|o| (o.allowed, o.source)).collect();
    assert_eq!(
        got,
        [
            (true, Source::Cluster),
            (true, Source::Cluster),
            (false, Source::Cluster)
        ]
    );
    assert_eq!(limiter.stats().cluster_errors, 0);
}

#[tokio::test]
async fn housekeeping_thread_drops_idle_keys_by_itself() {
    let limiter = Limiter::with_sweep_interval(Mode::Local, Duration::from_millis(50))
        .await
        .unwrap();
    let quota = Quota::new(1, Duration::from_millis(10)).unwrap();
    for i in 0..1_000 {
        let subject = format!("s{i}");
        assert!(limiter.check(&[key("ip", &subject, quota)]).await.allowed);
    }
    let start = Instant::now();
    for _ in 0..200 {
        if limiter.stats().local_keys == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "keys never swept");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(limiter.stats().local_keys, 0);
}
