// Bundle CodeMirror 6 and the playground's script into one minified file that ships inside the
// Python package (netdsl/static/playground.js): `netdsl serve` never fetches anything at run time.
// Run after editing src/ or package.json:  npm ci && npm run build  (then commit the output).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(here, "../../netdsl/static/playground.js");
// What the bundle was built from, in its first line: tests/test_serve.py checks that the
// committed bundle is the build of the committed sources.
const digest = (name) => createHash("sha256").update(readFileSync(resolve(here, name))).digest("hex");
const banner = `/* netdsl playground: built by editors/playground/build.mjs from src/main.js ${digest("src/main.js")} ` +
  `package-lock.json ${digest("package-lock.json")} */`;

await esbuild.build({
  entryPoints: [resolve(here, "src/main.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "eof",  // CodeMirror's MIT notices stay in the file
  outfile,
  banner: { js: banner },
  logLevel: "info",
});
