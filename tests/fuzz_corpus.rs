//! Replays the committed fuzz corpora (`fuzz/corpus/<target>`) through the
//! property checks their fuzz targets run (`fuzz/check/<target>.rs`), so
//! every `cargo test` re-checks what the fuzzer kept; the field filter's
//! corpus is replayed by tests/fields_gateway.rs. Each corpus must hold
//! inputs that are accepted and inputs that are refused: a check that
//! refuses everything, or a corpus that never reaches the happy path, fails.
//!
//! The seeds (`seed-*`) are written by the ignored test `write_seeds`
//! (`cargo test --test fuzz_corpus -- --ignored write_seeds`).
//!
//! Run: `cargo test --test fuzz_corpus`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and fuzz checks fail loudly"
)]

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// A seed: its name, its bytes, and whether the check accepts it.
type Seed = (&'static str, Vec<u8>, bool);

/// Asserts each seed gets its expected answer.
fn answers(seeds: Vec<Seed>, check: fn(&[u8]) -> bool) {
    for (name, data, accepted) in seeds {
        assert_eq!(check(&data), accepted, "seed {name}");
    }
}

/// Replays the corpus of `target`; asserts it reaches both answers.
fn replays(target: &str, check: fn(&[u8]) -> bool, min_accepted: usize, min_refused: usize) {
    let (accepted, refused) = replay(target, check);
    assert!(
        accepted >= min_accepted && refused >= min_refused,
        "{target}: {accepted} accepted, {refused} refused"
    );
}

/// Runs every corpus input of `target`; returns (accepted, refused).
fn replay(target: &str, check: fn(&[u8]) -> bool) -> (usize, usize) {
    let (mut accepted, mut refused) = (0, 0);
    for entry in std::fs::read_dir(corpus(target)).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| check(&data))
            .unwrap_or_else(|_| panic!("corpus input {} fails the check", path.display()));
        if ok {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    (accepted, refused)
}

fn write_seed(target: &str, name: &str, data: &[u8]) {
    let dir = corpus(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

mod jwt {
    include!("../fuzz/check/jwt.rs");

    const HEADER: &str = r#"{"alg":"HS256","typ":"JWT","kid":"hs-1"}"#;

    fn claims(extra: &str) -> String {
        format!(
            r#"{{"iss":"{ISS_HS}","sub":"u-1","aud":"sentinel","exp":4102444800,"iat":1700000000,"jti":"j-1"{extra}}}"#
        )
    }

    /// Structured inputs (mode 1): header and claims that the check signs.
    fn signed(header: &str, claims: &str) -> Vec<u8> {
        [&[1u8][..], header.as_bytes(), b"\n", claims.as_bytes()].concat()
    }

    /// Raw inputs (mode 0): the token as sent.
    fn raw(token: &str) -> Vec<u8> {
        [&[0u8][..], token.as_bytes()].concat()
    }

    pub fn seeds() -> Vec<super::Seed> {
        let es256 = {
            let key = EncodingKey::from_ec_pem(repo_file("config/keys/demo-issuer.pem").as_bytes())
                .unwrap();
            let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
            h.kid = Some("demo-issuer-1".into());
            let c: Value = serde_json::from_str(&claims("").replace(ISS_HS, ISS_EC)).unwrap();
            sentinel::auth::ecdsa::canonical_es256(jsonwebtoken::encode(&h, &c, &key).unwrap())
        };
        let no_kid = r#"{"alg":"HS256"}"#;
        vec![
            ("hs256", signed(HEADER, &claims("")), true),
            (
                "hs256-claims",
                signed(
                    HEADER,
                    &claims(
                        r#","tid":"t-1","scope":"a b","scp":["c"],"amr":["pwd","mfa"],"nbf":1"#,
                    ),
                ),
                true,
            ),
            ("hs256-no-kid", signed(no_kid, &claims("")), true),
            (
                "hs256-aud-array",
                signed(
                    HEADER,
                    &claims("").replace(r#""sentinel""#, r#"["x","sentinel"]"#),
                ),
                true,
            ),
            (
                "hs256-raw",
                raw(&sign_hs256(HEADER.as_bytes(), claims("").as_bytes())),
                true,
            ),
            ("es256-raw", raw(&es256), true),
            ("alg-none", signed(r#"{"alg":"none"}"#, &claims("")), false),
            (
                "jku",
                signed(r#"{"alg":"HS256","jku":"https://x.test/k"}"#, &claims("")),
                false,
            ),
            (
                "duplicate-alg",
                signed(r#"{"alg":"none","alg":"HS256"}"#, &claims("")),
                false,
            ),
            (
                "duplicate-sub",
                signed(HEADER, &claims(r#","sub":"u-2""#)),
                false,
            ),
            (
                "kid-unknown",
                signed(r#"{"alg":"HS256","kid":"hs-2"}"#, &claims("")),
                false,
            ),
            (
                "exp-string",
                signed(HEADER, &claims("").replace("4102444800", "\"4102444800\"")),
                false,
            ),
            (
                "exp-float",
                signed(HEADER, &claims("").replace("4102444800", "4102444800.5")),
                false,
            ),
            (
                "exp-huge",
                signed(
                    HEADER,
                    &claims("").replace("4102444800", "18446744073709551616"),
                ),
                false,
            ),
            (
                "expired",
                signed(HEADER, &claims("").replace("4102444800", "1")),
                false,
            ),
            (
                "nbf-ahead",
                signed(HEADER, &claims(r#","nbf":4102444000"#)),
                false,
            ),
            (
                "sub-empty",
                signed(HEADER, &claims("").replace(r#""u-1""#, r#""""#)),
                false,
            ),
            (
                "iss-other",
                signed(HEADER, &claims("").replace(ISS_HS, "https://evil.test")),
                false,
            ),
            (
                "aud-other",
                signed(HEADER, &claims("").replace(r#""sentinel""#, r#""api""#)),
                false,
            ),
            ("not-json", signed("{", "["), false),
            ("empty", raw(""), false),
            ("dots", raw("..."), false),
            ("garbage", raw("a b.c d.e f"), false),
            (
                "alg-none-raw",
                raw("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2hzLmZ1enoifQ."),
                false,
            ),
        ]
    }

    #[test]
    fn seeds_are_answered_as_expected() {
        super::answers(seeds(), check);
    }

    #[test]
    fn committed_corpus_replays() {
        super::replays("jwt", check, 3, 10);
    }
}

mod normalize_path {
    include!("../fuzz/check/normalize_path.rs");

    pub fn seeds() -> Vec<super::Seed> {
        let rows: [(&str, &str, bool); 22] = [
            ("root", "/", true),
            ("plain", "/msw/vessels/v-1", true),
            ("trailing-slash", "/msw/vessels/", true),
            ("space", "/a%20b", true),
            ("utf8", "/caf%C3%A9", true),
            ("literal-utf8", "/café", true),
            ("query-like", "/x?y=1", true),
            ("relative", "msw/vessels", false),
            ("empty", "", false),
            ("encoded-slash", "/a%2fb", false),
            ("encoded-backslash", "/a%5Cb", false),
            ("encoded-percent", "/a%25b", false),
            ("encoded-nul", "/a%00b", false),
            ("bad-escape", "/a%zzb", false),
            ("short-escape", "/a%2", false),
            ("bad-utf8", "/a%ffb", false),
            ("dot-dot", "/a/../b", false),
            ("encoded-dot-dot", "/a/%2e%2e/b", false),
            ("dot", "/a/./b", false),
            ("empty-segment", "/a//b", false),
            ("backslash", "/a\\b", false),
            ("control", "/a\tb", false),
        ];
        rows.iter()
            .map(|(n, p, ok)| (*n, p.as_bytes().to_vec(), *ok))
            .collect()
    }

    #[test]
    fn seeds_are_answered_as_expected() {
        super::answers(seeds(), check);
    }

    #[test]
    fn committed_corpus_replays() {
        super::replays("normalize_path", check, 3, 10);
    }
}

mod snapshot_bundle {
    include!("../fuzz/check/snapshot_bundle.rs");
    use std::path::Path;

    /// The demo policy as a structured input (mode `flags | 1`): the
    /// manifest names its parts by `#N`.
    fn demo(flags: u8) -> Vec<u8> {
        use sentinel_policy::bundle::PartRef;
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy/demo.toml"),
        )
        .unwrap();
        let src: sentinel_policy::PolicySource = toml::from_str(&text).unwrap();
        let (global, shards) = bundle::split(&src).unwrap();
        let mut parts = vec![bundle::part_bytes(&global)];
        let mut refs = std::collections::BTreeMap::new();
        for (tenant, shard) in &shards {
            refs.insert(
                *tenant,
                PartRef {
                    sha256: format!("#{}", parts.len()),
                    since: 1,
                },
            );
            parts.push(bundle::part_bytes(shard));
        }
        assert!(parts.len() <= 10, "`#N` names at most ten parts");
        let manifest = Manifest {
            format: FORMAT.into(),
            version: 1,
            global: PartRef {
                sha256: "#0".into(),
                since: 1,
            },
            shards: refs,
            anomaly_model: None,
        };
        let mut out = vec![flags | 1];
        out.extend_from_slice(&serde_json::to_vec(&manifest).unwrap());
        for p in parts {
            out.push(0xFF);
            out.extend_from_slice(&p);
        }
        out
    }

    pub fn seeds() -> Vec<super::Seed> {
        let whole = demo(0);
        let raw = [&[0u8][..], &body(1, &whole[1..])].concat();
        let mut tampered = raw.clone();
        let at = tampered.len() - 10;
        tampered[at] ^= 1;
        let empty_manifest = format!(
            r##"{{"format":"{FORMAT}","version":3,"global":{{"sha256":"#0","since":3}},"shards":{{}}}}"##
        );
        vec![
            ("demo", whole, true),
            ("demo-raw", raw, true),
            (
                "global-only",
                [&[1u8][..], empty_manifest.as_bytes(), b"\xFF{}"].concat(),
                true,
            ),
            ("version-mismatch", demo(2), false),
            ("part-hash-mismatch", demo(4), false),
            ("tampered-raw", tampered, false),
            (
                "missing-part",
                [&[1u8][..], empty_manifest.as_bytes()].concat(),
                false,
            ),
            (
                "unsigned",
                br#" {"signature":"","manifest":{},"parts":{}}"#.to_vec(),
                false,
            ),
            ("not-json", b"\x00{".to_vec(), false),
        ]
    }

    #[test]
    fn seeds_are_answered_as_expected() {
        super::answers(seeds(), check);
    }

    #[test]
    fn committed_corpus_replays() {
        super::replays("snapshot_bundle", check, 2, 4);
    }
}

mod route_toml {
    include!("../fuzz/check/route_toml.rs");

    pub fn seeds() -> Vec<super::Seed> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let file = |p: &str| std::fs::read(root.join(p)).unwrap();
        vec![
            ("msw", file("config/routes/msw.toml"), true),
            ("fleet", file("config/routes/fleet.toml"), true),
            ("port", file("config/routes/port.toml"), true),
            ("empty", Vec::new(), true),
            ("syntax", b"[[routes]\nid = \"x\"\n".to_vec(), false),
            ("id-not-string", b"[[routes]]\nid = 1\n".to_vec(), false),
            (
                "unknown-upstream",
                b"[[routes]]\nid = \"p\"\npath = \"/p\"\nupstream = \"nowhere\"\nauth = \"public\"\n"
                    .to_vec(),
                false,
            ),
            (
                "unknown-key",
                b"[[routes]]\nid = \"p\"\npath = \"/p\"\nupstream = \"msw\"\nauth = \"public\"\nwat = 1\n"
                    .to_vec(),
                false,
            ),
            (
                "tie",
                b"[[routes]]\nid = \"a\"\npath = \"/t/*\"\nupstream = \"msw\"\nauth = \"public\"\n\n[[routes]]\nid = \"b\"\npath = \"/t/*\"\nupstream = \"msw\"\nauth = \"public\"\n"
                    .to_vec(),
                false,
            ),
            ("not-utf8", b"[[routes]]\nid = \"\xff\"\n".to_vec(), false),
        ]
    }

    #[test]
    fn seeds_are_answered_as_expected() {
        super::answers(seeds(), check);
    }

    #[test]
    fn committed_corpus_replays() {
        super::replays("route_toml", check, 3, 4);
    }
}

/// Writes every target's seeds into its corpus directory.
#[test]
#[ignore = "writes fuzz/corpus/*/seed-*: run by hand when the seeds change"]
fn write_seeds() {
    type Seeds = fn() -> Vec<Seed>;
    let targets: [(&str, Seeds); 4] = [
        ("jwt", jwt::seeds),
        ("normalize_path", normalize_path::seeds),
        ("snapshot_bundle", snapshot_bundle::seeds),
        ("route_toml", route_toml::seeds),
    ];
    for (target, seeds) in targets {
        for (name, data, _) in seeds() {
            write_seed(target, name, &data);
        }
    }
}
