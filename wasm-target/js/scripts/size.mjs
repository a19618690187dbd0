// What a page downloads: every file of the packed package that a browser loads (the JS and
// the wasm; not the .d.ts, README or package.json), gzip level 9 each, summed.
// The last line is `package gzip bytes: N`. Goal: N ≤ 30 KB (30 000 bytes).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { PKG } from "../test/harness.mjs";

const GOAL = 30_000;
const [pack] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: PKG, encoding: "utf8" }));
const shipped = pack.files.map((f) => f.path).filter((p) => /\.(m?js|wasm)$/.test(p) && !p.endsWith(".d.ts"));
let raw = 0;
let gz = 0;
for (const p of shipped.sort()) {
  const bytes = readFileSync(join(PKG, p));
  const g = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gz += g;
  console.log(`${p.padEnd(48)} ${String(bytes.length).padStart(8)} B  gzip ${String(g).padStart(7)} B`);
}
console.log(`${"total".padEnd(48)} ${String(raw).padStart(8)} B  gzip ${String(gz).padStart(7)} B`);
console.log(`npm tarball ${pack.filename}: ${pack.size} B (with types and README)`);
console.log(`goal: ${GOAL} B gzip — ${gz <= GOAL ? "met" : `missed by ${gz - GOAL} B`}`);
console.log(`package gzip bytes: ${gz}`);
