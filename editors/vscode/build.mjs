// Bundles the extension (dist/extension.js) and its vscode-free core for tests (dist/core.mjs).
import { build } from "esbuild";

const common = { bundle: true, platform: "node", target: "node20", sourcemap: false, logLevel: "warning" };
await build({ ...common, entryPoints: ["src/extension.ts"], outfile: "dist/extension.js", format: "cjs", external: ["vscode"] });
await build({ ...common, entryPoints: ["src/core.ts"], outfile: "dist/core.mjs", format: "esm" });
