#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rate-limit check cost: local (one thread, and both cores on one subject and on distinct
//! subjects) and cluster against the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
//!
//! Run: `cargo bench --bench ratelimit -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sentinel::ratelimit::{FailureMode, LimitKey, Limiter, Mode, Quota};
use tokio::runtime::{Builder, Runtime};

fn runtime() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// Never denies during a run: the cost measured is the allowed path, the common one.
fn generous() -> Quota {
    Quota::new(u32::MAX / 2, Duration::from_micros(1)).unwrap()
}

/// The three limits a typical authenticated request carries.
fn request_keys<'a>(tenant: &'a str, principal: &'a str) -> [LimitKey<'a>; 3] {
    [
        LimitKey {
            limit: "tenant",
            subject: tenant,
            quota: generous(),
        },
        LimitKey {
            limit: "principal",
            subject: principal,
            quota: generous(),
        },
        LimitKey {
            limit: "route:standard",
            subject: tenant,
            quota: generous(),
        },
    ]
}

fn local(c: &mut Criterion) {
    let rt = runtime();
    let limiter = rt.block_on(Limiter::new(Mode::Local)).unwrap();
    let mut group = c.benchmark_group("local");

    group.throughput(Throughput::Elements(1));
    // What `block_on` alone costs in the single-thread figures below (subtract it).
    group.bench_function("baseline_block_on", |b| b.iter(|| rt.block_on(async {})));
    let one = [LimitKey {
        limit: "tenant",
        subject: "t-1",
        quota: generous(),
    }];
    group.bench_function("1_limit", |b| {
        b.iter(|| rt.block_on(limiter.check(black_box(&one))))
    });
    let three = request_keys("t-1", "p-1");
    group.bench_function("3_limits", |b| {
        b.iter(|| rt.block_on(limiter.check(black_box(&three))))
    });

    // Denied path: one limit over, the other two refunded.
    let denying = [
        LimitKey {
            limit: "tenant",
            subject: "t-d",
            quota: generous(),
        },
        LimitKey {
            limit: "principal",
            subject: "p-d",
            quota: Quota::new(1, Duration::from_secs(3600)).unwrap(),
        },
        LimitKey {
            limit: "route:standard",
            subject: "t-d",
            quota: generous(),
        },
    ];
    rt.block_on(limiter.check(&denying));
    group.bench_function("3_limits_denied", |b| {
        b.iter(|| rt.block_on(limiter.check(black_box(&denying))))
    });

    // Both cores at once; time per iteration = one check on each of 2 threads (wall clock).
    for shared in [true, false] {
        let name = if shared {
            "same_subject"
        } else {
            "distinct_subjects"
        };
        group.bench_function(BenchmarkId::new("2_threads_3_limits", name), |b| {
            b.iter_custom(|iters| {
                let barrier = Barrier::new(2);
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..2)
                        .map(|t| {
                            let limiter = &limiter;
                            let barrier = &barrier;
                            s.spawn(move || {
                                let rt = runtime();
                                let tenant = if shared {
                                    "t-shared".to_owned()
                                } else {
                                    format!("t-{t}")
                                };
                                let principal = if shared {
                                    "p-shared".to_owned()
                                } else {
                                    format!("p-{t}")
                                };
                                let keys = request_keys(&tenant, &principal);
                                barrier.wait();
                                let start = Instant::now();
                                rt.block_on(async {
                                    for _ in 0..iters {
                                        black_box(limiter.check(black_box(&keys)).await);
                                    }
                                });
                                start.elapsed()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap())
                        .max()
                        .unwrap()
                })
            })
        });
    }
    group.finish();
}

fn cluster(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("sentinel-bench:{}", uuid::Uuid::new_v4());
    let limiter = rt
        .block_on(Limiter::new(Mode::Cluster {
            url,
            failure: FailureMode::FailClosed,
            timeout: Duration::from_millis(500),
            key_prefix: prefix,
        }))
        .unwrap();
    assert!(
        limiter.stats().cluster_up,
        "the cluster bench needs a running Redis"
    );
    let mut group = c.benchmark_group("cluster");
    group.throughput(Throughput::Elements(1));
    let one = [LimitKey {
        limit: "tenant",
        subject: "t-1",
        quota: generous(),
    }];
    group.bench_function("1_limit_sequential", |b| {
        b.iter(|| rt.block_on(limiter.check(black_box(&one))))
    });
    let three = request_keys("t-1", "p-1");
    group.bench_function("3_limits_sequential", |b| {
        b.iter(|| rt.block_on(limiter.check(black_box(&three))))
    });
    // 64 checks in flight on the multiplexed connection: time per iteration is per check.
    group.bench_function("3_limits_64_in_flight", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for w in 0..64u64 {
                    let limiter = limiter.clone();
                    let n = iters / 64 + u64::from(w < iters % 64);
                    tasks.spawn(async move {
                        let tenant = format!("t-{}", w % 8);
                        let principal = format!("p-{w}");
                        let keys = request_keys(&tenant, &principal);
                        for _ in 0..n {
                            black_box(limiter.check(&keys).await);
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            });
            start.elapsed()
        })
    });
    // A subject over its limit: answered by the fast path, no round trip.
    let over = [LimitKey {
        limit: "tenant",
        subject: "over",
        quota: Quota::new(1, Duration::from_secs(3600)).unwrap(),
    }];
    rt.block_on(limiter.check(&over));
    rt.block_on(limiter.check(&over));
    group.bench_function("fast_path_denial", |b| {
        b.iter(|| rt.block_on(limiter.check(black_box(&over))))
    });
    group.finish();
    assert_eq!(limiter.stats().cluster_errors, 0);
}

criterion_group!(benches, local, cluster);
criterion_main!(benches);
