// Bundle CodeMirror 6 and the playground's script into one minified file that ships inside the
// Python package (netdsl/static/playground.js): `netdsl serve` never fetches anything at run time.
// Run after editing src/ or package.json:  npm ci && npm run build  (then commit the output).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(here, "../../netdsl/static/playground.js");

await esbuild.build({
  entryPoints: [resolve(here, "src/main.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "eof",  // CodeMirror's MIT notices stay in the file
  outfile,
  logLevel: "info",
});
