// Vite configuration of the console. `npm run dev` serves it on
// http://127.0.0.1:5173/console/ and proxies the admin API (same origin, as
// in production) to SENTINEL_ADMIN_URL (default http://127.0.0.1:8081).
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";
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

export default defineConfig({
  base: "/console/",
  plugins: [react(), contentSecurityPolicy()],
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
