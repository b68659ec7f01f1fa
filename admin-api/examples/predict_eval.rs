//! Predictive access measured (docs/PERFORMANCE.md, "Predictive access"):
//! generated users, 20 % of each user's permissions held out, precision and
//! recall of the suggestions at the confidence threshold.
//!
//! Run: `cargo run -p sentinel-admin --example predict_eval -- [USERS] [THRESHOLD]`
//! (defaults: 1000 users, 0.8). No database: the filter is pure.

use sentinel_admin::ai::predict::{holdout, synthetic};

fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let threshold: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.8);
    println!("users  seed  threshold  held_out  suggested  hits  precision  recall  seconds");
    for seed in [1u64, 2, 3] {
        let profiles = synthetic(users, seed);
        let start = std::time::Instant::now();
        let h = holdout(&profiles, 0.2, threshold, seed + 100);
        println!(
            "{:>5}  {seed:>4}  {threshold:>9.2}  {:>8}  {:>9}  {:>4}  {:>9.3}  {:>6.3}  {:>7.2}",
            h.users,
            h.held_out,
            h.suggested,
            h.hits,
            h.precision,
            h.recall,
            start.elapsed().as_secs_f64()
        );
    }
}
