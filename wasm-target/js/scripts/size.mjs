// What a page downloads, per entry of the packed package: the entry's ES module and the wasm
// it loads (not the .d.ts, README or package.json), gzip level 9 each, summed.
// `steadyllm` (OpenAI-compatible APIs) is the package's payload; `steadyllm/anthropic` (the same
// plus Anthropic's Messages API) and `steadyllm/responses` (plus OpenAI's Responses API with
// exact resume) are printed too. The last line is `package gzip bytes: N`,
// N for `steadyllm`. Goal: N ≤ 30 KB (30 000 bytes); with `--enforce` (the test command) a
// package over it fails.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { PKG } from "../test/harness.mjs";

const GOAL = 30_000;
const [pack] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: PKG, encoding: "utf8" }));
const shipped = new Set(pack.files.map((f) => f.path));
const entries = [
  ["steadyllm", "dist"],
  ["steadyllm/anthropic", "dist/anthropic"],
  ["steadyllm/responses", "dist/responses"],
];
const totals = {};
for (const [entry, dir] of entries) {
  let raw = 0;
  let gz = 0;
  for (const f of ["index.js", "steadyllm_wasm_bg.wasm"]) {
    const p = `${dir}/${f}`;
    if (!shipped.has(p)) throw new Error(`${p} is not in the packed package`);
    const bytes = readFileSync(join(PKG, p));
    const g = gzipSync(bytes, { level: 9 }).length;
    raw += bytes.length;
    gz += g;
    console.log(`${p.padEnd(44)} ${String(bytes.length).padStart(8)} B  gzip ${String(g).padStart(7)} B`);
  }
  console.log(`${`${entry}: a page loads`.padEnd(44)} ${String(raw).padStart(8)} B  gzip ${String(gz).padStart(7)} B`);
  totals[entry] = gz;
}
const gz = totals.steadyllm;
console.log(`npm tarball ${pack.filename}: ${pack.size} B (every entry, types, README)`);
console.log(`goal: ${GOAL} B gzip — ${gz <= GOAL ? "met" : `missed by ${gz - GOAL} B`}`);
console.log(`package gzip bytes: ${gz}`);
if (process.argv.includes("--enforce") && gz > GOAL) process.exit(1);
