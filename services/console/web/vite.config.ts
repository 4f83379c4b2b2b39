import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

// Built into dist/ and served by services/console (console/app.py): pages under /console and /portal,
// hashed files under /assets. `npm run dev` proxies /api to a console started by `amiflow up` on 8007.
export default defineConfig({
  plugins: [vue()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8007",
      "/console-config.json": "http://127.0.0.1:8007",
    },
  },
});
