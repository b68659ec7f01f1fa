// Vite configuration of the console. `npm run dev` serves it on
// http://127.0.0.1:5173/console/ and proxies the admin API (same origin, as
// in production) to SENTINEL_ADMIN_URL (default http://127.0.0.1:8081).
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const admin = process.env.SENTINEL_ADMIN_URL ?? "http://127.0.0.1:8081";

// The built page allows nothing but its own origin: no third-party host can
// be reached at run time even if a dependency tried. Only in the build: the
// dev server injects inline scripts for hot reload.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // Mantine writes its CSS variables into a <style> element.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join("; ");

function contentSecurityPolicy(): Plugin {
  return {
    name: "sentinel-csp",
    apply: "build",
    transformIndexHtml(html) {
      return html.replace(
        "<head>",
        `<head>\n    <meta http-equiv="Content-Security-Policy" content="${CSP}" />`,
      );
    },
  };
}

// The admin API's Redoc page (/api/v1/docs) loads Redoc from this build
// (`/console/vendor/redoc.standalone.js`, the pinned npm package) instead of
// a CDN. Not part of the console's own bundle or its size budget. Redoc's
// side menu shows a logo from its CDN; the copy shows an empty image instead,
// so the page contacts no other host (the build fails if the URL moves).
const REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg";
const EMPTY_IMAGE = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==";

function vendorRedoc(): Plugin {
  return {
    name: "sentinel-vendor-redoc",
    apply: "build",
    closeBundle() {
      const require = createRequire(import.meta.url);
      const bundles = join(dirname(require.resolve("redoc/package.json")), "bundles");
      const out = fileURLToPath(new URL("./dist/vendor", import.meta.url));
      mkdirSync(out, { recursive: true });
      copyFileSync(join(bundles, "redoc.standalone.js.LICENSE.txt"), join(out, "redoc.standalone.js.LICENSE.txt"));
      const js = readFileSync(join(bundles, "redoc.standalone.js"), "utf8");
      const found = js.split(REDOC_CDN_LOGO).length - 1;
      if (found !== 1) throw new Error(`redoc.standalone.js names ${REDOC_CDN_LOGO} ${found} times, not once: review vendorRedoc`);
      writeFileSync(join(out, "redoc.standalone.js"), js.replace(REDOC_CDN_LOGO, EMPTY_IMAGE));
    },
  };
}

export default defineConfig({
  base: "/console/",
  plugins: [react(), contentSecurityPolicy(), vendorRedoc()],
  resolve: {
    alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // One chunk of ~820 kB (~245 KiB gzip); the budget that counts is checked
    // in gzip by tests/console.test.mjs (300 KiB for all the JavaScript).
    chunkSizeWarningLimit: 1000,
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: admin, changeOrigin: false },
      "/healthz": { target: admin, changeOrigin: false },
    },
  },
});
