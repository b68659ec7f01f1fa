//! `sentinel-admin`: the admin API (skeleton; the policy plane lands with the admin-API work).
fn main() {
    eprintln!("sentinel-admin: not built yet");
    std::process::exit(2);
}
