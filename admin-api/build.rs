//! Rebuilds the crate when a migration is added: `sqlx::migrate!` (db.rs)
//! embeds the files of `migrations/`, and without this cargo tracks only the
//! files that existed when it last expanded (a new `0005_*.sql` would be
//! missing from the binary until some source file changed).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
