// Test harness of the browser tests: a fresh PostgreSQL database set up by
// the real `sentinel-admin` binary (migrate, bootstrap, seed-demo), the API
// served by that binary on an ephemeral port, and headless Chromium.
//
// Environment:
//   DATABASE_URL         superuser URL of the cluster (default postgres://postgres@127.0.0.1:5432/postgres)
//   SENTINEL_ADMIN_BIN   the binary (default ../target/debug/sentinel-admin)
//   CHROMIUM             the browser (default /usr/bin/chromium)
import { spawn, execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
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
    SENTINEL_LOCKOUT_THRESHOLD: String(LOCKOUT_THRESHOLD),
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

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
};

/**
 * Until `sentinel-admin serve` serves the console itself at /console/, one
 * origin in front of it: dist/ at /console/ (index.html for client routes),
 * everything else passed to the admin API unchanged. Used only when the
 * binary answers /console/ with 404.
 */
async function sameOriginFront(apiPort) {
  const port = await freePort();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/console" || url.pathname.startsWith("/console/")) {
      const rel = normalize(decodeURIComponent(url.pathname.slice("/console".length)) || "/");
      let file = join(DIST, rel);
      if (!file.startsWith(DIST)) return res.writeHead(404).end();
      const isFile = await stat(file).then((s) => s.isFile()).catch(() => false);
      if (!isFile) file = join(DIST, "index.html");
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      return res.end(body);
    }
    const upstream = httpRequest(
      { host: "127.0.0.1", port: apiPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

/** A database, the admin API on it, and the console's origin. */
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
    await admin(owner, ["bootstrap", "--email", ROOT_EMAIL], { SENTINEL_BOOTSTRAP_PASSWORD: ROOT_PASSWORD });
    const seeded = await admin(owner, ["seed-demo"]);
    const port = await freePort();
    const child = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`], {
      env: adminEnv(dbUrl(db, "sentinel_api", API_ROLE_PASSWORD)),
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
    let base = api;
    let servedBy = "sentinel-admin";
    const own = await fetch(`${api}/console/`);
    if (own.status === 404) {
      const front = await sameOriginFront(port);
      cleanups.push(front.close);
      base = front.base;
      servedBy = "test front (sentinel-admin does not serve /console/ yet)";
    }
    return { api, base, servedBy, seeded, stop };
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
