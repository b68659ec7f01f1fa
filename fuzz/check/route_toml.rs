// The fuzz property check of route files through the config loader
// (`sentinel::config::load`), shared by the cargo-fuzz target
// (fuzz/fuzz_targets/route_toml.rs) and the corpus replay in `cargo test`
// (tests/fuzz_corpus.rs), through `include!`.
//
// Input: the text of one route file, loaded beside the bundled
// `config/sentinel.toml` (its upstreams, issuer and keys) as the only file
// its `routes/*.toml` matches. Checks: no panic; every problem names the
// main file or the route file, at a line and column inside that file; a
// route file that is not UTF-8 TOML is refused; an accepted one is a TOML
// table whose `routes` array (if any) holds one table per route in force,
// each with a string `id` and `path`.
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// A directory holding the bundled config with `routes/` emptied; one per
/// process, used under its lock (tests may replay from several threads).
fn workdir() -> &'static Mutex<PathBuf> {
    static DIR: OnceLock<Mutex<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        // The fuzz crate lives in `fuzz/`; the bundled config at the root.
        let root = if manifest.join("fuzz/check").is_dir() {
            manifest
        } else {
            manifest.parent().unwrap()
        };
        let config = root.join("config");
        let dir = std::env::temp_dir().join(format!("sentinel-fuzz-routes-{}", std::process::id()));
        for sub in ["routes", "keys", "policy"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for sub in ["keys", "policy"] {
            for e in std::fs::read_dir(config.join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
        std::fs::copy(config.join("sentinel.toml"), dir.join("sentinel.toml")).unwrap();
        Mutex::new(dir)
    })
}

/// Runs one fuzz input; panics on a violated property. Returns whether the
/// configuration loaded.
pub fn check(data: &[u8]) -> bool {
    let dir = workdir().lock().unwrap_or_else(|e| e.into_inner());
    let main = dir.join("sentinel.toml");
    let file = dir.join("routes/fuzz.toml");
    std::fs::write(&file, data).unwrap();
    let result = sentinel::config::load(&main);
    let text = std::str::from_utf8(data).ok();
    let table = text.and_then(|t| t.parse::<toml::Table>().ok());
    let config = match result {
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                let lines = if p.file == file {
                    text.map_or(1, |t| t.lines().count().max(1) + 1)
                } else {
                    assert_eq!(p.file, main, "problem in another file: {p}");
                    usize::MAX
                };
                assert!(p.line >= 1 && p.col >= 1, "no position: {p}");
                assert!(p.line <= lines, "{p} is past the end of the file");
            }
            return false;
        }
        Ok(config) => config,
    };
    let table = table.expect("a route file that is not UTF-8 TOML was accepted");
    let declared = match table.get("routes") {
        None => Vec::new(),
        Some(toml::Value::Array(routes)) => routes.clone(),
        Some(other) => panic!("accepted `routes = {other}`"),
    };
    assert_eq!(config.routes.len(), declared.len(), "routes in force");
    for r in &declared {
        assert!(r.get("id").is_some_and(toml::Value::is_str), "route without an id: {r}");
        assert!(r.get("path").is_some_and(toml::Value::is_str), "route without a path: {r}");
    }
    true
}
