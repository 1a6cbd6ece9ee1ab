import { defineConfig } from "vite";

// No framework plugin: esbuild compiles TSX with React's automatic runtime. The build has no
// inline script or style (the gateway's Content-Security-Policy allows none).
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    target: "es2020",
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
