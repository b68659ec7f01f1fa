//! `sentinel demo`: the bundled config, policy and keys (written to a
//! directory so they can be edited and watched), and persona tokens signed by
//! the demo issuer. No database: the audit trail stays in a spool in the
//! demo directory (`sentinel audit tail`). The demo upstream apps (MSW, fleet, port)
//! are the `sentinel-demo-apps` crate, which only the binary links.
//!
//! ```text
//! sentinel demo
//! curl -si http://127.0.0.1:8080/msw/vessels -H "Authorization: Bearer $VICTOR"
//! ```

use crate::config::Config;
use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::{Path, PathBuf};

/// Appended to the demo's `sentinel.toml`: with no admin API the audit trail
/// is spool-only, in the demo directory.
const DEMO_AUDIT: &str =
    "\n[audit]\nspool_dir = \"audit-spool\"\nmax_spool_bytes = 67108864\nsegment_bytes = 4194304\n\n[risk.biometrics]\ndemo_page = true\n";

/// The bundled files, relative to the demo directory.
const FILES: &[(&str, &str)] = &[
    ("sentinel.toml", include_str!("../../config/sentinel.toml")),
    (
        "routes/msw.toml",
        include_str!("../../config/routes/msw.toml"),
    ),
    (
        "routes/fleet.toml",
        include_str!("../../config/routes/fleet.toml"),
    ),
    (
        "routes/port.toml",
        include_str!("../../config/routes/port.toml"),
    ),
    (
        "policy/demo.toml",
        include_str!("../../config/policy/demo.toml"),
    ),
    (
        "keys/demo-issuer.jwks.json",
        include_str!("../../config/keys/demo-issuer.jwks.json"),
    ),
    (
        "keys/gateway-assertion.pem",
        include_str!("../../config/keys/gateway-assertion.pem"),
    ),
];

/// The committed anomaly model (models/anomaly/), written beside the demo
/// config so the demo scores with the model rather than the rule fallback.
const ANOMALY_MODEL: &[u8] = include_bytes!("../../models/anomaly/model.onnx");

/// The demo issuer's signing key (public: it is in the repository).
pub const DEMO_ISSUER_KEY: &str = include_str!("../../config/keys/demo-issuer.pem");
pub const DEMO_ISSUER: &str = "https://demo.sentinel.local";
pub const DEMO_AUDIENCE: &str = "sentinel";
pub const DEMO_KID: &str = "demo-issuer-1";
/// The fleet-sync service account's API key (demo only).
pub const DEMO_API_KEY: &str = "sk_fleetsy1_Q7wN2kR9pX4mT6vB8cJ3hL5dF1gS0aZeYu";

pub const TENANT_NORDIC: &str = "11111111-1111-1111-1111-111111111111";
pub const TENANT_TANKERS: &str = "33333333-3333-3333-3333-333333333333";
pub const TENANT_PACIFIC: &str = "22222222-2222-2222-2222-222222222222";

/// A persona of the demo policy.
pub struct Persona {
    pub var: &'static str,
    pub principal: &'static str,
    pub tenant: &'static str,
    pub mfa: bool,
    pub jti: Option<&'static str>,
    pub about: &'static str,
}

pub const PERSONAS: &[Persona] = &[
    Persona {
        var: "ALICE",
        principal: "aaaaaaaa-0000-4000-8000-000000000001",
        tenant: TENANT_NORDIC,
        mfa: true,
        jti: None,
        about: "Alice, tenant admin of Nordic Shipping (TEST-001), signed in with MFA",
    },
    Persona {
        var: "VICTOR",
        principal: "aaaaaaaa-0000-4000-8000-000000000002",
        tenant: TENANT_NORDIC,
        mfa: false,
        jti: None,
        about: "Victor, viewer at Nordic Shipping",
    },
    Persona {
        var: "BOB",
        principal: "bbbbbbbb-0000-4000-8000-000000000001",
        tenant: TENANT_PACIFIC,
        mfa: false,
        jti: None,
        about: "Bob, admin of Pacific Lines (TEST-002): another tenant",
    },
    Persona {
        var: "LENA",
        principal: "aaaaaaaa-0000-4000-8000-000000000004",
        tenant: TENANT_NORDIC,
        mfa: false,
        jti: None,
        about: "Lena, whose account is locked",
    },
    Persona {
        var: "CARL",
        principal: "cccccccc-0000-4000-8000-000000000001",
        tenant: "44444444-4444-4444-4444-444444444444",
        mfa: false,
        jti: None,
        about: "Carl, user of a suspended tenant",
    },
    Persona {
        var: "REVOKED",
        principal: "aaaaaaaa-0000-4000-8000-000000000001",
        tenant: TENANT_NORDIC,
        mfa: false,
        jti: Some("demo-logged-out"),
        about: "a token of Alice's that was logged out (its jti is revoked)",
    },
];

/// Signs a demo token for `principal`, valid for `ttl_secs`.
pub fn mint(
    principal: &str,
    tenant: &str,
    mfa: bool,
    jti: Option<&str>,
    ttl_secs: i64,
) -> anyhow::Result<String> {
    let key = EncodingKey::from_ec_pem(DEMO_ISSUER_KEY.as_bytes()).context("demo issuer key")?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(DEMO_KID.to_owned());
    let now = crate::clock::unix_now();
    let jti = jti.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let claims = serde_json::json!({
        "iss": DEMO_ISSUER,
        "aud": DEMO_AUDIENCE,
        "sub": principal,
        "tid": tenant,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_secs,
        "jti": jti,
        "mfa": mfa,
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map(crate::auth::ecdsa::canonical_es256)
        .context("sign demo token")
}

/// Writes the bundled files into `dir`, pointing the upstreams at `apps`
/// (msw, fleet, port) and the listeners at `listen` and `ops`.
pub fn write_files(
    dir: &Path,
    listen: &str,
    ops: &str,
    apps: [std::net::SocketAddr; 3],
) -> anyhow::Result<PathBuf> {
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let text = if *name == "sentinel.toml" {
            text.replace("127.0.0.1:8080", listen)
                .replace("127.0.0.1:9090", ops)
                .replace("127.0.0.1:7101", &apps[0].to_string())
                .replace("127.0.0.1:7102", &apps[1].to_string())
                .replace("127.0.0.1:7103", &apps[2].to_string())
                + DEMO_AUDIT
        } else {
            (*text).to_owned()
        };
        let text = if *name == "sentinel.toml" {
            format!("{text}\n# `sentinel demo` only: the committed anomaly model.\n[risk]\nmodel = \"models/anomaly.onnx\"\n")
        } else {
            text
        };
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    let model = dir.join("models/anomaly.onnx");
    std::fs::create_dir_all(dir.join("models")).context("create the models directory")?;
    std::fs::write(&model, ANOMALY_MODEL).with_context(|| format!("write {}", model.display()))?;
    Ok(dir.join("sentinel.toml"))
}

/// Writes the files for the demo apps listening on `apps` (msw, fleet, port;
/// `sentinel_demo_apps::start`), loads the config, and returns it with the banner.
pub fn prepare(
    listen: &str,
    ops: &str,
    dir: Option<PathBuf>,
    apps: [std::net::SocketAddr; 3],
) -> anyhow::Result<(Config, String)> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sentinel-demo-{}", std::process::id()))
    });
    let path = write_files(&dir, listen, ops, apps)?;
    let config = crate::config::load(&path).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("bundled demo config is invalid:\n{}", text.join("\n"))
    })?;
    let mut banner = String::new();
    let gw = format!("http://{listen}");
    banner.push_str(&format!(
        "Sentinel demo\n  proxy  {gw}\n  ops    http://{ops}  (/healthz /readyz /metrics /.well-known/jwks.json)\n  apps   msw {} · fleet {} · port {}\n  files  {}  (edit policy/demo.toml: the gateway reloads it live)\n\nPersonas (paste into your shell; tokens are valid for 12 hours):\n",
        apps[0],
        apps[1],
        apps[2],
        dir.display()
    ));
    for p in PERSONAS {
        let token = mint(p.principal, p.tenant, p.mfa, p.jti, 12 * 3600)?;
        banner.push_str(&format!("  export {}={token}   # {}\n", p.var, p.about));
    }
    banner.push_str(&format!(
        "  export FLEET_KEY={DEMO_API_KEY}   # the fleet-sync service account's API key\n"
    ));
    banner.push_str(&format!(
        r#"
Try (x-sentinel-decision explains Alice's and Victor's decisions):
  # allow: Victor reads his tenant's vessels
  curl -si {gw}/msw/vessels -H "Authorization: Bearer $VICTOR"
  # field security: Victor (viewer) sees imo and crew_count masked and no crew_salary_budget; Alice sees all
  curl -s {gw}/msw/vessels/v-a1 -H "Authorization: Bearer $VICTOR"
  curl -s {gw}/msw/vessels/v-a1 -H "Authorization: Bearer $ALICE"
  # writing a field the caller may not write: 403 FIELD_WRITE_DENIED with the field list
  curl -si -X POST {gw}/fleet/voyages -H "X-API-Key: $FLEET_KEY" -H 'content-type: application/json' -d '{{"origin":"NOOSL","cargo_value_usd":1}}'
  # deny: a viewer may not update a vessel
  curl -si -X PATCH {gw}/msw/vessels/v-a2 -H "Authorization: Bearer $VICTOR" -H 'content-type: application/json' -d '{{"name":"Renamed"}}'
  # deny overrides allow: Alice may delete vessels, but never the flagship v-a1
  curl -si -X DELETE {gw}/msw/vessels/v-a1 -H "Authorization: Bearer $ALICE"
  # cross-tenant: Bob asks for Nordic's vessel and gets exactly what a missing one gets
  curl -si {gw}/msw/vessels/v-a1 -H "Authorization: Bearer $BOB"
  # sub-tenant: Alice lists Nordic Tankers' port calls; Bob may not list Nordic's
  curl -si {gw}/port/tenants/{TENANT_TANKERS}/port-calls -H "Authorization: Bearer $ALICE"
  curl -si {gw}/port/tenants/{TENANT_NORDIC}/port-calls -H "Authorization: Bearer $BOB"
  # ABAC: port-ops staff (Alice) may update port calls; Victor (finance) may not
  curl -si -X PATCH {gw}/port/port-calls/pc-a1 -H "Authorization: Bearer $VICTOR" -H 'content-type: application/json' -d '{{"berth":"B7"}}'
  # approval: deleting voyage voy-a1 needs an approved request; voy-a2 has one
  curl -si -X DELETE {gw}/fleet/voyages/voy-a1 -H "Authorization: Bearer $ALICE"
  curl -si -X DELETE {gw}/fleet/voyages/voy-a2 -H "Authorization: Bearer $ALICE"
  # a service account, by API key
  curl -si {gw}/fleet/voyages -H "X-API-Key: $FLEET_KEY"
  # locked account, suspended tenant, revoked token, no credentials, unknown route
  curl -si {gw}/msw/vessels -H "Authorization: Bearer $LENA"
  curl -si {gw}/msw/vessels -H "Authorization: Bearer $CARL"
  curl -si {gw}/msw/vessels -H "Authorization: Bearer $REVOKED"
  curl -si {gw}/msw/vessels
  curl -si {gw}/nowhere -H "Authorization: Bearer $ALICE"
  # behavioural telemetry (what {gw}/.sentinel/telemetry.js sends from a browser): the answer says enrolling, collecting, ok, suspicious or failed
  curl -s -X POST {gw}/.sentinel/biometrics -H "Authorization: Bearer $VICTOR" -H 'content-type: application/json' -d '{{"session_id":"s-demo","seq":0,"mouse":[{{"t":0,"x":100,"y":80,"button":"none","state":"move"}},{{"t":16,"x":104,"y":82,"button":"none","state":"move"}}]}}'
  # …or in a browser: open {gw}/.sentinel/telemetry/demo#token=<$VICTOR's value>, move, click, type; the page shows each answer
  # request risk: once Victor's baseline is learned (30 requests), failed logins from his address raise his next request's risk above the route's step_up_above (0.85): 401 STEP_UP_REQUIRED, details.signal "anomaly"
  for i in $(seq 30); do curl -s -o /dev/null {gw}/msw/vessels -H "Authorization: Bearer $VICTOR"; done
  for i in $(seq 25); do curl -s -o /dev/null {gw}/msw/vessels -H "Authorization: Bearer stuffed.$i"; done
  curl -si {gw}/msw/vessels -H "Authorization: Bearer $VICTOR"
  # the audit trail: every answer above is one event (decision, reason, rules), newest last
  {exe} audit tail --spool {spool} -n 5
"#,
        exe = std::env::current_exe()
            .map_or_else(|_| "sentinel".to_owned(), |p| p.display().to_string()),
        spool = dir.join("audit-spool").display(),
    ));
    Ok((config, banner))
}
