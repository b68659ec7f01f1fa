// Test harness of the browser tests: a fresh PostgreSQL database set up by
// the real `sentinel-admin` binary (migrate, bootstrap, seed-demo), the API
// served by that binary on an ephemeral port (the console too: `serve` serves
// dist/ at /console/, SENTINEL_CONSOLE_DIR), and headless Chromium.
//
// Environment:
//   DATABASE_URL         superuser URL of the cluster (default postgres://postgres@127.0.0.1:5432/postgres)
//   SENTINEL_ADMIN_BIN   the binary (default ../target/debug/sentinel-admin)
//   CHROMIUM             the browser (default /usr/bin/chromium)
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const run = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));
export const CONSOLE_DIR = resolve(here, "..");
export const DIST = join(CONSOLE_DIR, "dist");
export const OUTPUT = join(CONSOLE_DIR, "test-output");
const BIN = process.env.SENTINEL_ADMIN_BIN ?? resolve(CONSOLE_DIR, "../target/debug/sentinel-admin");
const BASE_DB = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export const ROOT_EMAIL = "root@platform.example.com";
export const ROOT_PASSWORD = "Root-Passw0rd!";
export const DEMO_PASSWORD = "Demo-Passw0rd!";
/** The admin API role's password, the same the Rust harness sets (the role is cluster-wide). */
const API_ROLE_PASSWORD = "sentinel-api-test";
/** Failed logins that lock an account in these tests. */
export const LOCKOUT_THRESHOLD = 3;

/** `base` with its database replaced (and optionally its user and password). */
function dbUrl(db, user, password) {
  const u = new URL(BASE_DB);
  u.pathname = `/${db}`;
  if (user) {
    u.username = user;
    u.password = password ?? "";
  }
  return u.toString();
}

async function psql(url, sql) {
  await run("psql", [url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], { timeout: 30_000 });
}

function adminEnv(url, extra = {}) {
  return {
    ...process.env,
    DATABASE_URL: url,
    SENTINEL_ARGON2_M_KIB: "256",
    SENTINEL_ARGON2_T: "1",
    // Private keys are sealed with a key-encryption key (docs/security.md).
    SENTINEL_KEK: process.env.SENTINEL_KEK ?? "c2VudGluZWwgdGVzdCBrZWssIDMyIGJ5dGVzIGxvbmc=",
    SENTINEL_LOCKOUT_THRESHOLD: String(LOCKOUT_THRESHOLD),
    // Every browser and API call of the tests comes from 127.0.0.1: keep the
    // auth endpoints' per-address limit out of their way.
    SENTINEL_AUTH_RATE_PER_MINUTE: "100000",
    SENTINEL_AUTH_RATE_BURST: "100000",
    RUST_LOG: "warn",
    ...extra,
  };
}

async function admin(url, args, extra) {
  try {
    const { stdout } = await run(BIN, args, { env: adminEnv(url, extra), timeout: 120_000 });
    return stdout;
  } catch (e) {
    throw new Error(`sentinel-admin ${args.join(" ")} failed: ${e.stderr || e.message}`);
  }
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

async function waitUp(url, child, deadlineMs = 30_000) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`sentinel-admin serve exited with ${child.exitCode}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}

/** A database, and the admin API on it serving the console (dist/) at /console/. */
export async function startStack() {
  const db = `sentinel_console_${randomUUID().replaceAll("-", "")}`;
  await psql(BASE_DB, `CREATE DATABASE ${db}`);
  const owner = dbUrl(db);
  const cleanups = [async () => psql(BASE_DB, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    await admin(owner, ["migrate"]);
    await psql(owner, `ALTER ROLE sentinel_api PASSWORD '${API_ROLE_PASSWORD}'`);
    // The platform role (migrations/0013_platform_role.sql) gets the same test password.
    await psql(owner, `ALTER ROLE sentinel_platform PASSWORD '${API_ROLE_PASSWORD}'`);
    await admin(owner, ["bootstrap", "--email", ROOT_EMAIL], { SENTINEL_BOOTSTRAP_PASSWORD: ROOT_PASSWORD });
    const seeded = await admin(owner, ["seed-demo"]);
    const port = await freePort();
    const child = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`], {
      env: adminEnv(dbUrl(db, "sentinel_api", API_ROLE_PASSWORD), {
        SENTINEL_PLATFORM_DATABASE_URL: dbUrl(db, "sentinel_platform", API_ROLE_PASSWORD),
        SENTINEL_CONSOLE_DIR: DIST,
      }),
      stdio: ["ignore", "inherit", "inherit"],
    });
    cleanups.push(async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      // A server that does not stop within 5 s (say, its database went away) is killed.
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    });
    const api = `http://127.0.0.1:${port}`;
    await waitUp(`${api}/healthz`, child);
    // The console as `sentinel-admin serve` serves it: what the tests drive is what operators get.
    const own = await fetch(`${api}/console/`);
    if (own.status !== 200 || !(own.headers.get("content-type") ?? "").startsWith("text/html")) {
      throw new Error(`sentinel-admin does not serve the console at /console/ (${own.status}: ${await own.text()}); run \`npm run build\` first`);
    }
    return { api, base: api, seeded, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export const BROWSER_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Debian's Chromium with a fresh profile; `close` removes the profile. */
export async function startBrowser(options = {}) {
  const profile = await mkdtemp(join(tmpdir(), "sentinel-console-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: BROWSER_FLAGS,
    viewport: { width: 1280, height: 800 },
    colorScheme: "light",
    ...options,
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Calls the admin API directly (to compare what the page shows with what the API says). */
export async function apiCall(api, method, path, { token, body, tenant } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (tenant) headers["x-tenant-id"] = tenant;
  const r = await fetch(`${api}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}
