// Browser tests of the console: Debian's headless Chromium (playwright-core)
// against the real sentinel-admin binary and PostgreSQL. Screenshots of every
// page go to console/test-output/ (git-ignored) for reviewers.
//
//   cd console && npm run build && npm run test:browser
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { check as checkTypes } from "../scripts/gen-api.mjs";
import {
  DEMO_PASSWORD,
  DIST,
  LOCKOUT_THRESHOLD,
  OUTPUT,
  ROOT_EMAIL,
  ROOT_PASSWORD,
  apiCall,
  startBrowser,
  startStack,
} from "./harness.mjs";

/** The budget: all of the console's JavaScript, gzip-compressed. */
const JS_BUDGET_GZIP_BYTES = 300 * 1024;
const TEST_001 = "11111111-1111-1111-1111-111111111111";
const TEST_002 = "22222222-2222-2222-2222-222222222222";

test("the console's JavaScript stays within its size budget", async () => {
  const assets = join(DIST, "assets");
  const files = (await readdir(assets)).filter((f) => f.endsWith(".js"));
  assert.ok(files.length > 0, "console/dist has no JavaScript: run `npm run build` first");
  let total = 0;
  for (const f of files) total += gzipSync(await readFile(join(assets, f)), { level: 9 }).length;
  console.log(`console JS: ${files.length} files, ${(total / 1024).toFixed(1)} KiB gzip (budget ${JS_BUDGET_GZIP_BYTES / 1024} KiB)`);
  assert.ok(total <= JS_BUDGET_GZIP_BYTES, `console JS is ${total} bytes gzip, over the ${JS_BUDGET_GZIP_BYTES} budget`);
});

test("the console against the real admin API", { timeout: 600_000 }, async (t) => {
  await mkdir(OUTPUT, { recursive: true });
  const stack = await startStack();
  t.after(stack.stop);
  console.log(`admin API and console (served by sentinel-admin) at ${stack.base}/console/`);
  const browser = await startBrowser();
  t.after(browser.close);
  const page = await browser.context.newPage();
  page.setDefaultTimeout(15_000);
  const origin = new URL(stack.base).origin;
  const foreign = [];
  browser.context.on("request", (r) => {
    const u = new URL(r.url());
    if (u.protocol !== "data:" && u.origin !== origin) foreign.push(r.url());
  });
  const cspViolations = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  const shot = (name) => page.screenshot({ path: join(OUTPUT, `${name}.png`) });
  const go = (path) => page.goto(`${stack.base}/console${path}`);

  // Every labelled control has a name a screen reader can read.
  async function assertLabelled(where) {
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => el.getClientRects().length > 0 && el.type !== "hidden")
        .filter((el) => {
          const named =
            (el.labels && el.labels.length > 0) ||
            el.getAttribute("aria-label") ||
            el.getAttribute("aria-labelledby") ||
            (el.tagName === "BUTTON" && el.textContent.trim());
          return !named;
        })
        .map((el) => el.outerHTML.slice(0, 120)),
    );
    assert.deepEqual(unnamed, [], `controls without an accessible name on ${where}`);
  }

  async function login(tenant, email, password) {
    await go("/login");
    await page.getByLabel("Tenant code").fill(tenant);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
  }

  async function pick(label, option, scope = page) {
    await scope.getByRole("combobox", { name: label, exact: true }).click();
    await page.getByRole("option", { name: option, exact: true }).click();
  }

  async function searchPick(label, text, option, scope = page) {
    const input = scope.getByRole("combobox", { name: label, exact: true }).or(scope.getByRole("textbox", { name: label, exact: true }));
    await input.click();
    await input.fill(text);
    await page.getByRole("option", { name: option }).first().click();
  }

  await t.test("the committed API types match the live OpenAPI document", async () => {
    const doc = await (await fetch(`${stack.api}/api/v1/openapi.json`)).json();
    const problem = await checkTypes(doc);
    assert.equal(problem, null, problem ?? "");
  });

  await t.test("sentinel-admin serves the page: its CSP, cache rules, a missing asset is a 404", async () => {
    const index = await fetch(`${stack.base}/console/t/${TEST_001}/users`);
    assert.equal(index.status, 200, "a client route deep-links to the page");
    assert.equal(index.headers.get("cache-control"), "no-cache");
    assert.match(index.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
    assert.equal(index.headers.get("x-content-type-options"), "nosniff");
    const script = (await index.text()).match(/src="(\/console\/assets\/[^"]+\.js)"/);
    assert.ok(script, "the page loads its hashed bundle");
    const js = await fetch(`${stack.base}${script[1]}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
    const missing = await fetch(`${stack.base}/console/assets/missing-0000.js`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, "RESOURCE_NOT_FOUND");
  });

  await t.test("a wrong password shows the API's own message", async () => {
    const api = await apiCall(stack.api, "POST", "/api/v1/auth/login", {
      body: { email: ROOT_EMAIL, password: "wrong-Passw0rd", tenant_code: "PLATFORM" },
    });
    assert.equal(api.status, 401);
    await login("PLATFORM", ROOT_EMAIL, "wrong-Passw0rd");
    const alert = page.getByRole("alert").filter({ hasText: api.body.error.message });
    await alert.waitFor();
    assert.match(await alert.innerText(), new RegExp(api.body.error.code));
    await assertLabelled("login");
    await shot("01-login-refused");
  });

  await t.test("a held-back account answers like a wrong password", async () => {
    // After LOCKOUT_THRESHOLD failures this address is held back for the
    // account: the right password gets the wrong password's answer, so the
    // page cannot tell that the account exists (issue 17, item 9).
    for (let i = 0; i < LOCKOUT_THRESHOLD; i++) {
      await login("TEST-002", "pia@pacific.example", `Wrong-Passw0rd${i}`);
      await page.getByRole("alert").filter({ hasText: "AUTH_INVALID" }).waitFor();
    }
    await login("TEST-002", "pia@pacific.example", DEMO_PASSWORD);
    const api = await apiCall(stack.api, "POST", "/api/v1/auth/login", {
      body: { email: "pia@pacific.example", password: DEMO_PASSWORD, tenant_code: "TEST-002" },
    });
    assert.equal(api.status, 401);
    assert.equal(api.body.error.code, "AUTH_INVALID");
    await page.getByRole("alert").filter({ hasText: api.body.error.message }).waitFor();
    await shot("02-login-locked");
  });

  await t.test("a suspended tenant's user sees the API's suspension message", async () => {
    const api = await apiCall(stack.api, "POST", "/api/v1/auth/login", {
      body: { email: "carl@suspended.example", password: DEMO_PASSWORD, tenant_code: "TEST-003" },
    });
    assert.equal(api.body.error.code, "TENANT_SUSPENDED");
    await login("TEST-003", "carl@suspended.example", DEMO_PASSWORD);
    await page.getByRole("alert").filter({ hasText: api.body.error.message }).waitFor();
  });

  await t.test("a platform admin logs in and creates a tenant", async () => {
    await login("PLATFORM", ROOT_EMAIL, ROOT_PASSWORD);
    await page.getByRole("heading", { name: "Tenants" }).waitFor();
    await page.getByRole("button", { name: "New tenant" }).click();
    const dialog = page.getByRole("dialog", { name: "New tenant" });
    await dialog.getByLabel("Code").fill("CONSOLE-1");
    await dialog.getByLabel("Name").fill("Console Test Shipping");
    await dialog.getByRole("button", { name: "Create" }).click();
    await page.getByRole("link", { name: "CONSOLE-1" }).waitFor();
    await assertLabelled("tenants");
    await shot("03-tenants");
    await page.getByRole("link", { name: "TEST-001", exact: true }).click();
    await page.getByRole("heading", { name: "Nordic Shipping" }).waitFor();
    await page.getByRole("link", { name: "TEST-001-SUB" }).waitFor();
    await shot("04-tenant-detail");
  });

  await t.test("the tenant switcher acts on another tenant", async () => {
    await pick("Acting on tenant", "TEST-001 · Nordic Shipping");
    await page.waitForURL(`**/console/t/${TEST_001}/**`);
    await page.getByRole("link", { name: "Users" }).click();
    await page.getByRole("link", { name: "alice@nordic.example" }).waitFor();
    await shot("05-users");
  });

  await t.test("a permission with a condition: the API's validation errors appear at the field", async () => {
    await go(`/t/${TEST_001}/permissions`);
    await page.getByRole("link", { name: "vessel-read", exact: true }).waitFor();
    await shot("06-permissions");
    await page.getByRole("button", { name: "New permission" }).click();
    await page.getByRole("textbox", { name: /^Name/ }).fill("console-vessel-read");
    await page.getByLabel("Resource type").fill("vessel");
    await page.getByLabel("Resource pattern").fill("v-*");
    const actions = page.getByRole("combobox", { name: "Actions", exact: true });
    await actions.fill("read");
    await actions.press("Enter");
    await page.getByRole("button", { name: "Add condition" }).click();
    await pick("Condition 1", "Client IP in CIDRs");
    const cidrs = page.getByRole("combobox", { name: "CIDRs", exact: true });
    await cidrs.fill("10.0.0.0/99");
    await cidrs.press("Enter");
    await page.getByRole("button", { name: "Create permission" }).click();
    const api = await apiCall(stack.api, "POST", "/api/v1/permissions", {
      token: await rootToken(stack.api),
      tenant: TEST_001,
      body: {
        name: "console-probe",
        resource_type: "vessel",
        resource_pattern: "v-*",
        actions: ["read"],
        conditions: [{ type: "client_ip", cidrs: ["10.0.0.0/99"] }],
      },
    });
    assert.equal(api.status, 422);
    assert.equal(api.body.error.code, "VALIDATION_ERROR");
    const message = api.body.error.details.conditions.join("; ");
    const at = page.getByTestId("conditions-error");
    await at.waitFor();
    assert.equal(await at.innerText(), message);
    await shot("07-permission-error-at-field");
    await cidrs.press("Backspace");
    await cidrs.fill("10.0.0.0/8");
    await cidrs.press("Enter");
    await page.getByRole("button", { name: "Create permission" }).click();
    await page.getByRole("link", { name: "console-vessel-read" }).click();
    // Read back from the API into the form: the condition as it was saved.
    await page.getByRole("heading", { name: "console-vessel-read" }).waitFor();
    assert.equal(await page.getByRole("combobox", { name: "Condition 1", exact: true }).inputValue(), "Client IP in CIDRs");
    await page.getByTestId("condition-0").getByText("10.0.0.0/8", { exact: true }).waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("link", { name: "console-vessel-read" }).waitFor();
  });

  await t.test("a role with an inherited role", async () => {
    await go(`/t/${TEST_001}/roles`);
    await page.getByRole("button", { name: "New role" }).click();
    let dialog = page.getByRole("dialog", { name: "New role" });
    await dialog.getByLabel("Name").fill("console-base");
    await searchPick("Permissions", "console-vessel", "console-vessel-read", dialog);
    await page.keyboard.press("Escape");
    await dialog.getByRole("button", { name: "Create role" }).click();
    await page.getByRole("heading", { name: "console-base" }).waitFor();
    await page.getByRole("cell", { name: "console-vessel-read", exact: true }).waitFor();
    await go(`/t/${TEST_001}/roles`);
    await page.getByRole("button", { name: "New role" }).click();
    dialog = page.getByRole("dialog", { name: "New role" });
    await dialog.getByLabel("Name").fill("console-child");
    await searchPick("Inherits from (parent role)", "console-base", "console-base", dialog);
    await dialog.getByRole("button", { name: "Create role" }).click();
    await page.getByRole("heading", { name: "console-child" }).waitFor();
    await page.getByRole("link", { name: "console-base" }).waitFor();
    // Direct holders: assign, see, take back.
    await searchPick("Assign to user", "olga", "olga@nordic.example");
    await page.getByRole("button", { name: "Assign", exact: true }).click();
    const take = page.getByRole("button", { name: "Take the role from olga@nordic.example" });
    await take.waitFor();
    await page.locator("button[data-loading]").waitFor({ state: "detached" });
    await shot("08-role-inheritance");
    await take.click();
    await take.waitFor({ state: "detached" });
    await go(`/t/${TEST_001}/roles`);
    await page.getByRole("link", { name: "console-child" }).waitFor();
    await shot("09-roles");
  });

  await t.test("a group holding the inherited role, and a user in the group", async () => {
    await go(`/t/${TEST_001}/groups`);
    await page.getByRole("button", { name: "New group" }).click();
    const dialog = page.getByRole("dialog", { name: "New group" });
    await dialog.getByLabel("Name").fill("console-team");
    await searchPick("Roles", "console-child", "console-child", dialog);
    await page.keyboard.press("Escape");
    await dialog.getByRole("button", { name: "Create group" }).click();
    await page.getByRole("heading", { name: "console-team" }).waitFor();
    await shot("10-group");

    // The password policy is the API's: a weak password is refused at its field.
    await go(`/t/${TEST_001}/users`);
    await page.getByRole("button", { name: "New user" }).click();
    const form = page.getByRole("dialog", { name: "New user" });
    await form.getByLabel("Email").fill("cora@nordic.example");
    await form.getByLabel("Password", { exact: true }).fill("weakpass");
    await searchPick("Groups", "console-team", "console-team", form);
    await page.keyboard.press("Escape");
    await form.getByRole("button", { name: "Create user" }).click();
    const api = await apiCall(stack.api, "POST", "/api/v1/users", {
      token: await rootToken(stack.api),
      tenant: TEST_001,
      body: { email: "probe@nordic.example", password: "weakpass" },
    });
    assert.equal(api.status, 422);
    await form.getByText(api.body.error.details.password.join("; ")).waitFor();
    await shot("11-user-password-policy");
    await form.getByLabel("Password", { exact: true }).fill("Cora-Passw0rd1");
    await form.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("heading", { name: "cora@nordic.example" }).waitFor();
    await page.getByText("console-team").first().waitFor();
    await page.getByRole("cell", { name: "console-vessel-read", exact: true }).waitFor();
    await shot("12-user-detail");
  });

  async function decide(expect) {
    await go(`/t/${TEST_001}/access-check`);
    await searchPick("Principal", "cora", "cora@nordic.example");
    await page.getByLabel("Resource type").fill("vessel");
    await page.getByLabel("Resource id").fill("v-7");
    await page.getByLabel("Client IP").fill("10.1.2.3");
    await page.getByRole("button", { name: "Decide" }).click();
    const outcome = page.getByTestId("decision-outcome");
    await outcome.filter({ hasText: expect }).waitFor();
  }

  await t.test("can X do Y: allowed, then denied after a change", async () => {
    await decide("allowed");
    await page.getByTestId("decision-rules").getByText("console-vessel-read").waitFor();
    await assertLabelled("access check");
    await shot("13-check-allowed");
    // The change: cora leaves the group that gave her the role.
    await go(`/t/${TEST_001}/users`);
    await page.getByRole("link", { name: "cora@nordic.example" }).click();
    await page.getByRole("button", { name: "Remove from group console-team" }).click();
    await page.getByRole("cell", { name: "console-vessel-read", exact: true }).waitFor({ state: "detached" });
    await decide("denied");
    const reason = await page.getByTestId("decision").innerText();
    assert.match(reason, /no_matching_permission/);
    await shot("14-check-denied");
  });

  await t.test("lock and unlock a user", async () => {
    await go(`/t/${TEST_001}/users`);
    await page.getByRole("link", { name: "cora@nordic.example" }).click();
    await page.getByRole("button", { name: "Lock" }).click();
    await page.getByRole("button", { name: "Unlock" }).waitFor();
    const token = await rootToken(stack.api);
    const users = await apiCall(stack.api, "GET", "/api/v1/users?email=cora", { token, tenant: TEST_001 });
    assert.equal(users.body.items[0].is_locked, true);
    await page.getByRole("button", { name: "Unlock" }).click();
    await page.getByRole("button", { name: "Lock" }).waitFor();
    // The attributes ABAC conditions read.
    await page.getByRole("button", { name: "Edit" }).click();
    const dialog = page.getByRole("dialog", { name: "Edit cora@nordic.example" });
    await dialog.getByLabel("Attributes").fill('{"department": "port-ops"}');
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByText('"department": "port-ops"').waitFor();
  });

  await t.test("a service account's key is shown once, works, and rotation replaces it", async () => {
    await go(`/t/${TEST_001}/service-accounts`);
    await page.getByRole("button", { name: "New service account" }).click();
    const dialog = page.getByRole("dialog", { name: "New service account" });
    await dialog.getByLabel("Name").fill("console-etl");
    await dialog.getByRole("button", { name: "Create and show key" }).click();
    const first = (await page.getByTestId("shown-once-secret").innerText()).trim();
    assert.match(first, /^sk_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}$/);
    await shot("15-service-account-key");
    const ok = await apiCall(stack.api, "POST", "/api/v1/auth/token", { body: { api_key: first } });
    assert.equal(ok.status, 200);
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByTestId("shown-once-secret").waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Actions for console-etl" }).click();
    await page.getByRole("menuitem", { name: "Check key" }).click();
    await page.getByText("The key works now.").waitFor();
    await page.getByRole("button", { name: "Actions for console-etl" }).click();
    await page.getByRole("menuitem", { name: "Rotate key" }).click();
    const second = (await page.getByTestId("shown-once-secret").innerText()).trim();
    assert.notEqual(second, first);
    const old = await apiCall(stack.api, "POST", "/api/v1/auth/token", { body: { api_key: first } });
    assert.equal(old.status, 401, "the rotated-out key must stop working");
    await page.getByRole("button", { name: "I have stored it" }).click();
    await shot("16-service-accounts");
  });

  await t.test("every other page renders the tenant's data", async () => {
    for (const [path, text, name] of [
      ["/resources", "v-a1", "17-resources"],
      ["/navigation", "Your menu", "18-navigation"],
      ["/groups", "nordic-port-team", "19-groups"],
    ]) {
      await go(`/t/${TEST_001}${path}`);
      await page.getByText(text).first().waitFor();
      await assertLabelled(path);
      await shot(name);
    }
    // Keyboard: the first Tab reaches the skip link, which moves the focus to the page.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement?.id === "main");
    await go(`/t/${TEST_001}/field-definitions`);
    for (const [tab, n] of [
      ["Core", "20-fields-core"],
      ["Platform dynamic", "21-fields-platform-dynamic"],
      ["Tenant specific", "22-fields-tenant-specific"],
    ]) {
      await page.getByRole("tab", { name: tab }).click();
      await page.getByRole("tabpanel").getByRole("row").nth(1).waitFor();
      await shot(n);
    }
  });

  await t.test("a platform admin's audit page follows the tenant switcher", async () => {
    await go(`/t/${TEST_001}/audit`);
    await page.getByLabel("Action", { exact: true }).fill("permission.create");
    await page.getByLabel("Action", { exact: true }).press("Enter");
    await page.getByTestId("audit-row").filter({ hasText: "permission.create" }).first().waitFor();
    const token = await rootToken(stack.api);
    const own = await apiCall(stack.api, "GET", "/api/v1/audit/events?action=permission.create", { token, tenant: TEST_002 });
    assert.equal(own.status, 200);
    assert.equal(own.body.items.length, 0, "TEST-002 had no permission made in these tests");
    await pick("Acting on tenant", "TEST-002 · Pacific Lines");
    await page.waitForURL(`**/console/t/${TEST_002}/audit`);
    await page.getByRole("heading", { name: "Audit", exact: true }).waitFor();
    await page.getByRole("table").getByText(/^\d+ events$/).waitFor();
    assert.equal(await page.getByTestId("audit-row").filter({ hasText: "permission.create" }).count(), 0);
  });

  await t.test("a tablet and the dark system theme", async () => {
    await page.setViewportSize({ width: 820, height: 1180 });
    await go(`/t/${TEST_001}/users`);
    await page.getByRole("link", { name: "alice@nordic.example" }).waitFor();
    const burger = page.getByRole("button", { name: "Toggle navigation" });
    assert.ok(await burger.isVisible(), "the navigation folds behind a button on a tablet");
    await shot("23-tablet-users");
    await burger.click();
    await page.getByRole("link", { name: "Roles" }).click();
    await page.getByRole("heading", { name: "Roles" }).waitFor();
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: "dark" });
    await go(`/t/${TEST_001}/roles`);
    await page.getByRole("link", { name: "console-child" }).waitFor();
    assert.equal(await page.locator("html").getAttribute("data-mantine-color-scheme"), "dark");
    await shot("24-dark-roles");
    await page.emulateMedia({ colorScheme: "light" });
  });

  await t.test("a tenant admin logs in by keyboard and cannot see another tenant", async () => {
    await page.getByRole("button", { name: /Account:/ }).click();
    await page.getByRole("menuitem", { name: "Log out" }).click();
    await page.getByLabel("Tenant code").waitFor();
    // Keyboard only: the tenant code field has the focus.
    await page.keyboard.type("TEST-002");
    await page.keyboard.press("Tab");
    await page.keyboard.type("bob@pacific.example");
    await page.keyboard.press("Tab");
    await page.keyboard.type(DEMO_PASSWORD);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Tenants" }).waitFor();
    await page.getByRole("link", { name: "TEST-002" }).waitFor();
    const listed = await page.getByRole("table").innerText();
    assert.doesNotMatch(listed, /TEST-001|CONSOLE-1|PLATFORM/);
    assert.equal(await page.getByTestId("tenant-switcher").count(), 0, "no switcher: Pacific Lines has no sub-tenants");
    await shot("25-tenant-admin-tenants");

    // Naming Nordic's tenant in the address: the API refuses, the page shows it and no Nordic data.
    const bob = await login2(stack.api, "TEST-002", "bob@pacific.example");
    const api = await apiCall(stack.api, "GET", "/api/v1/users", { token: bob, tenant: TEST_001 });
    assert.ok(api.status === 403 || api.status === 404, JSON.stringify(api.body));
    await go(`/t/${TEST_001}/users`);
    await page.getByRole("alert").filter({ hasText: api.body.error.code }).waitFor();
    assert.doesNotMatch(await page.locator("main").innerText(), /alice@nordic\.example/);
    const direct = await apiCall(stack.api, "GET", `/api/v1/tenants/${TEST_001}`, { token: bob });
    assert.equal(direct.status, 404);
    await go(`/t/${TEST_002}/tenants/${TEST_001}`);
    await page.getByRole("alert").filter({ hasText: "RESOURCE_NOT_FOUND" }).waitFor();
    await shot("26-tenant-admin-other-tenant");
  });

  await t.test("a token revoked elsewhere ends the session: the login page says so", async () => {
    await go(`/t/${TEST_002}/users`);
    await page.getByRole("link", { name: "bob@pacific.example" }).waitFor();
    const kept = await page.evaluate(() => JSON.parse(sessionStorage.getItem("sentinel-console-session") ?? "null"));
    assert.ok(kept?.access, "the session keeps its token pair in this tab");
    const out = await apiCall(stack.api, "POST", "/api/v1/auth/logout", {
      token: kept.access,
      body: { refresh_token: kept.refresh },
    });
    assert.equal(out.status, 204);
    await page.getByRole("link", { name: "Groups" }).click();
    await page.getByRole("status").filter({ hasText: "log in again" }).waitFor();
    await page.getByLabel("Tenant code").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("sentinel-console-session")), null);
  });

  await t.test("changing one's own password: the API's policy message at the field", async () => {
    await login("TEST-002", "bob@pacific.example", DEMO_PASSWORD);
    await page.getByRole("button", { name: /Account:/ }).click();
    await page.getByRole("menuitem", { name: "Change password" }).click();
    const dialog = page.getByRole("dialog", { name: "Change your password" });
    await dialog.getByLabel("Current password").fill(DEMO_PASSWORD);
    await dialog.getByLabel("New password").fill("short");
    await dialog.getByRole("button", { name: "Change password" }).click();
    const bob = await login2(stack.api, "TEST-002", "bob@pacific.example");
    const me = await apiCall(stack.api, "GET", "/api/v1/auth/me", { token: bob });
    const api = await apiCall(stack.api, "POST", `/api/v1/users/${me.body.user_id}/change-password`, {
      token: bob,
      body: { current_password: DEMO_PASSWORD, new_password: "short" },
    });
    assert.equal(api.status, 422);
    await dialog.getByText(api.body.error.details.new_password.join("; ")).waitFor();
    await shot("27-change-password-policy");
    await dialog.getByLabel("New password").fill("Bob-Passw0rd-2");
    await dialog.getByRole("button", { name: "Change password" }).click();
    await dialog.waitFor({ state: "detached" });
    const relogin = await apiCall(stack.api, "POST", "/api/v1/auth/login", {
      body: { email: "bob@pacific.example", password: "Bob-Passw0rd-2", tenant_code: "TEST-002" },
    });
    assert.equal(relogin.status, 200, "the new password works");
  });

  await t.test("the audit page: a tenant admin's change, its filters, the request lookup, the export", async () => {
    // The change, through the API with a request id of ours: a new group.
    const bob = await login2(stack.api, "TEST-002", "bob@pacific.example", "Bob-Passw0rd-2");
    const requestId = `console-audit-${Date.now()}`;
    const made = await fetch(`${stack.api}/api/v1/groups`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${bob}`, "x-request-id": requestId },
      body: JSON.stringify({ name: "audit-probe-team", description: "made for the audit page test" }),
    });
    assert.equal(made.status, 201, await made.text());
    assert.equal(made.headers.get("x-request-id"), requestId);
    const api = await apiCall(stack.api, "GET", `/api/v1/audit/requests/${requestId}`, { token: bob });
    assert.equal(api.status, 200, JSON.stringify(api.body));
    const action = api.body.items[0].action;
    assert.equal(action, "group.create");

    await page.evaluate(() => sessionStorage.clear());
    await login("TEST-002", "bob@pacific.example", "Bob-Passw0rd-2");
    await page.getByRole("heading", { name: "Tenants" }).waitFor();
    await page.getByRole("navigation", { name: "Operations" }).getByRole("link", { name: "Audit" }).click();
    await page.getByRole("heading", { name: "Audit", exact: true }).waitFor();
    const row = page.getByTestId("audit-row").filter({ hasText: action }).first();
    await row.waitFor();
    await assertLabelled("audit");
    await shot("29-audit");

    // The row's detail, by keyboard: the group as it was created.
    await row.getByRole("button", { name: /^Details of group\.create/ }).focus();
    await page.keyboard.press("Enter");
    const detail = page.getByTestId("audit-event-detail").first();
    await detail.getByLabel("After", { exact: true }).filter({ hasText: "audit-probe-team" }).waitFor();
    await detail.getByText(requestId).waitFor();
    await shot("30-audit-detail");

    // Filter by outcome: the admin write is allowed, so "denied" shows none of it.
    await pick("Outcome", "denied");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("table").getByText("0 events", { exact: true }).waitFor();
    await pick("Outcome", "allowed");
    await page.getByLabel("Action", { exact: true }).fill("group.create");
    await page.getByLabel("Action", { exact: true }).press("Enter");
    await page.getByTestId("audit-row").filter({ hasText: action }).first().waitFor();
    const shown = await page.getByTestId("audit-row").allInnerTexts();
    assert.ok(shown.length > 0 && shown.every((r) => /allowed/.test(r) && /group\.create/.test(r)), shown.join("\n"));

    // More events than a page (50): "Load more" follows next_cursor to older ones.
    for (let i = 0; i < 55; i++) {
      const r = await apiCall(stack.api, "POST", "/api/v1/groups", { token: bob, body: { name: `audit-page-${i}` } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await page.getByRole("button", { name: "Search" }).click();
    const rows = page.getByTestId("audit-row");
    await page.getByRole("table").getByText("50 events", { exact: true }).waitFor();
    assert.match(await rows.first().innerText(), /group\.create/, "newest first");
    await page.getByRole("button", { name: "Load more" }).click();
    await page.getByRole("table").getByText("56 events", { exact: true }).waitFor();
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-event-id")));
    assert.equal(ids.length, 56, "the 55 new groups and the probe group, over two pages");
    assert.equal(new Set(ids).size, ids.length, "no event twice across pages");

    // "Why was this request answered so?" by request id.
    await page.getByLabel("Request id (X-Request-Id)").fill(requestId);
    await page.getByRole("button", { name: "Look up" }).click();
    const found = page.getByTestId("audit-lookup-result");
    await found.getByText(action).first().waitFor();
    await found.getByText(requestId).first().waitFor();
    await shot("31-audit-lookup");
    await page.getByLabel("Request id (X-Request-Id)").fill("no-such-request");
    await page.getByRole("button", { name: "Look up" }).click();
    await found.getByRole("alert").filter({ hasText: "RESOURCE_NOT_FOUND" }).waitFor();

    // The export carries the bearer token and the same filters.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export CSV" }).click(),
    ]);
    const csv = await readFile(await download.path(), "utf8");
    assert.match(csv.split("\n")[0], /^id,time,source,request_id/);
    assert.match(csv, new RegExp(requestId));
    assert.doesNotMatch(csv, /,denied,/, "the export used the page's filters");
  });

  await t.test("a principal without audit:read is not offered the audit page, and the API refuses it", async () => {
    await page.evaluate(() => sessionStorage.clear());
    await login("TEST-001", "victor@nordic.example", DEMO_PASSWORD);
    await page.waitForURL(`**/console/t/${TEST_001}/**`);
    await page.getByRole("button", { name: /Account:/ }).waitFor();
    assert.equal(await page.getByRole("link", { name: "Audit", exact: true }).count(), 0);
    const victor = await login2(stack.api, "TEST-001", "victor@nordic.example");
    const api = await apiCall(stack.api, "GET", "/api/v1/audit/events", { token: victor });
    assert.equal(api.status, 403);
    await go(`/t/${TEST_001}/audit`);
    await page.getByRole("alert").filter({ hasText: api.body.error.code }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Export CSV" }).count(), 0);
    await shot("32-audit-refused");
  });

  await t.test("the API docs page renders Redoc from this origin, no CDN", async () => {
    const resp = await page.goto(`${stack.base}/api/v1/docs`);
    assert.equal(resp.status(), 200);
    await page.getByRole("heading", { name: /Sentinel admin API/ }).first().waitFor();
    await page.getByText("Log in with email, password and tenant", { exact: false }).first().waitFor({ state: "attached" });
    const scripts = await page.evaluate(() => [...document.scripts].map((s) => s.src).filter(Boolean));
    assert.deepEqual(scripts, [`${origin}/console/vendor/redoc.standalone.js`]);
    await shot("28-api-docs");
  });

  await t.test("no request left the console's origin, and the pages broke no CSP rule", async () => {
    assert.deepEqual(foreign, []);
    await go("/login");
    const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute("content");
    assert.match(csp ?? "", /default-src 'self'/, "the built page carries its CSP");
    assert.deepEqual(cspViolations, []);
  });
});

let cachedRoot = null;
async function rootToken(api) {
  cachedRoot ??= await login2(api, "PLATFORM", ROOT_EMAIL, ROOT_PASSWORD);
  return cachedRoot;
}

async function login2(api, tenant, email, password = DEMO_PASSWORD) {
  const r = await apiCall(api, "POST", "/api/v1/auth/login", { body: { email, password, tenant_code: tenant } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.access_token;
}
