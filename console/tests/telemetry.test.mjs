// The behavioural-telemetry collector (src/risk/telemetry.js) in a real
// browser: Debian's headless Chromium (playwright-core) opens the demo page
// of the real `sentinel demo` binary, a scripted user moves the mouse,
// clicks and types, and the test reads what the gateway received and
// answered (the page's answers, the posted bodies, the gateway's metrics).
// docs/biometrics.md, "At the edge".
//
// Environment: SENTINEL_BIN (default ../target/debug/sentinel), CHROMIUM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CONSOLE_DIR, startBrowser } from "./harness.mjs";

const BIN = process.env.SENTINEL_BIN ?? resolve(CONSOLE_DIR, "../target/debug/sentinel");
const TYPED = "harbour pilot 42";

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

/** `sentinel demo` on ephemeral ports; resolves with its URLs and persona tokens. */
async function startDemo() {
  const dir = await mkdtemp(join(tmpdir(), "sentinel-telemetry-demo-"));
  const [proxy, ops] = [await freePort(), await freePort()];
  const child = spawn(
    BIN,
    ["demo", "--listen", `127.0.0.1:${proxy}`, "--ops", `127.0.0.1:${ops}`, "--dir", join(dir, "demo")],
    { env: { ...process.env, SENTINEL_LOG: "warn" }, stdio: ["ignore", "pipe", "inherit"] },
  );
  let banner = "";
  child.stdout.on("data", (d) => {
    banner += d.toString();
  });
  const stop = async () => {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  };
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`sentinel demo exited with ${child.exitCode}`);
    }
    const token = /export VICTOR=(\S+)/.exec(banner);
    if (token) {
      try {
        const r = await fetch(`http://127.0.0.1:${ops}/readyz`);
        if (r.ok) {
          return { gw: `http://127.0.0.1:${proxy}`, ops: `http://127.0.0.1:${ops}`, victor: token[1], stop };
        }
      } catch {
        // not listening yet
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`sentinel demo did not become ready:\n${banner}`);
}

function metric(text, name, label) {
  return text
    .split("\n")
    .filter((l) => l.startsWith(name) && (!label || l.includes(label)))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

test("telemetry.js in Chromium: moves, clicks and keys reach the gateway as timings and opaque ids", async () => {
  const demo = await startDemo();
  const browser = await startBrowser();
  try {
    const page = await browser.context.newPage();
    const posted = [];
    page.on("request", (r) => {
      if (r.url().endsWith("/.sentinel/biometrics") && r.method() === "POST") posted.push(r.postData() ?? "");
    });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${demo.gw}/.sentinel/telemetry/demo#token=${demo.victor}`);
    await page.waitForFunction(() => window.sentinelTelemetry !== undefined);

    // A scripted user: moves across the pad, clicks the button, drags, types.
    const pad = await page.locator("#pad").boundingBox();
    for (let i = 0; i < 3; i += 1) {
      await page.mouse.move(pad.x + 10, pad.y + 10 + i * 30);
      await page.mouse.move(pad.x + pad.width - 10, pad.y + 40 + i * 30, { steps: 25 });
    }
    await page.click("#go");
    await page.mouse.move(pad.x + 50, pad.y + 50);
    await page.mouse.down();
    await page.mouse.move(pad.x + 250, pad.y + 120, { steps: 20 });
    await page.mouse.up();
    await page.click("#text");
    await page.keyboard.type(TYPED, { delay: 60 });
    // Send now rather than at the next 2 s tick, and wait for the answer.
    await page.evaluate(() => window.sentinelTelemetry.flush());
    await page.waitForFunction(
      (n) => window.sentinelAnswers.reduce((k, a) => Math.max(k, a.samples.keys), 0) >= n,
      TYPED.length,
      { timeout: 20_000 },
    );
    const answers = await page.evaluate(() => window.sentinelAnswers);
    const last = answers[answers.length - 1];
    assert.deepEqual(errors, [], "no script errors");

    // What the gateway received and answered (SPEC answer shape).
    assert.match(last.session_id, /^s-[A-Za-z0-9_-]+$/);
    assert.equal(last.samples.keys, TYPED.length, "every key press, once");
    assert.ok(last.samples.mouse >= 30, `mouse events: ${last.samples.mouse}`);
    // A first-time user: enrolling, no score yet.
    assert.equal(last.status, "enrolling");
    assert.equal(last.score, null);
    assert.ok(answers.every((a) => a.session_id === last.session_id), "one session");

    // What went over the wire: timings and opaque ids, never what was typed.
    assert.ok(posted.length >= 1);
    const bodies = posted.map((p) => JSON.parse(p));
    const keys = bodies.flatMap((b) => b.keys);
    const mouse = bodies.flatMap((b) => b.mouse);
    assert.equal(keys.length, TYPED.length);
    for (const k of keys) {
      assert.match(k.key, /^[A-Za-z0-9_-]{12}$/);
      assert.match(k.field, /^[A-Za-z0-9_-]{12}$/);
      assert.ok(k.up >= k.down);
    }
    for (const b of posted) {
      assert.ok(!b.includes("harbour") && !b.includes("pilot"), "the typed text never leaves the page");
      assert.ok(!/"key":"(Key|Digit|Space)/.test(b), "nor key codes in the clear");
    }
    // The same key (the three 'a's... 'r's) gets the same id; different keys differ.
    const ids = new Set(keys.map((k) => k.key));
    assert.ok(ids.size < keys.length && ids.size > 5, `${ids.size} distinct ids for ${keys.length} presses`);
    const downs = keys.map((k) => k.down);
    assert.deepEqual(downs, [...downs].sort((a, b) => a - b), "down times never go back");
    const states = new Set(mouse.map((m) => m.state));
    for (const s of ["move", "pressed", "released", "drag"]) assert.ok(states.has(s), `mouse ${s} sent`);
    const seqs = bodies.map((b) => b.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i), "seq counts batches from 0");

    // The gateway's own count of what it accepted.
    const metrics = await (await fetch(`${demo.ops}/metrics`)).text();
    const accepted = metric(metrics, "sentinel_biometric_batches_total", 'status="enrolling"');
    assert.ok(accepted >= answers.length && accepted <= posted.length, `${accepted} accepted, ${answers.length} answered, ${posted.length} posted`);
  } finally {
    await browser.close();
    await demo.stop();
  }
});

test("telemetry.js stops on 401: a page with a forged token sends nothing more", async () => {
  const demo = await startDemo();
  const browser = await startBrowser();
  try {
    const page = await browser.context.newPage();
    const posted = [];
    page.on("request", (r) => {
      if (r.url().includes("/.sentinel/")) posted.push(`${r.method()} ${new URL(r.url()).pathname}`);
    });
    await page.goto(`${demo.gw}/.sentinel/telemetry/demo#token=forged.token.value`);
    await page.waitForFunction(() => window.sentinelTelemetry !== undefined);
    await page.mouse.move(10, 10);
    await page.mouse.move(300, 200, { steps: 30 });
    await page.evaluate(() => window.sentinelTelemetry.flush());
    await new Promise((r) => setTimeout(r, 2500));
    // The key request is refused (401): the collector stops and posts no batch.
    assert.ok(posted.includes("GET /.sentinel/telemetry/key"), posted.join(", "));
    assert.ok(posted.filter((p) => p.startsWith("POST")).length <= 1, posted.join(", "));
    const answers = await page.evaluate(() => window.sentinelAnswers);
    assert.deepEqual(answers, []);
  } finally {
    await browser.close();
    await demo.stop();
  }
});
