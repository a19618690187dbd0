// Builds the package into dist/ — three entries, `steadyllm` (dist/), `steadyllm/anthropic`
// (dist/anthropic/) and `steadyllm/responses` (dist/responses/), each the wasm module (cargo,
// profile wasm-release; the second with the crate's `anthropic` feature, the third with its
// `responses` feature) through wasm-opt (npm binaryen; Debian's is too old), and the
// hand-written wrapper (which calls the module's C ABI itself: no generated glue), plus types.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const root = join(pkg, "..", "..");
const dist = join(pkg, "dist");
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: "inherit", ...opts });

// WebAssembly SIMD (memchr's fast paths in the SSE parser and JSON reader): every browser
// released since 2023 has it. Given here rather than in .cargo/config.toml, which a RUSTFLAGS
// in the environment (the test command sets one) would override.
let rustflags = `${process.env.RUSTFLAGS ?? ""} -C target-feature=+simd128`.trim();
// With a nightly toolchain and its rust-src, core and alloc are rebuilt for size with
// panics that abort at once: no panic message machinery is linked (about 0.6 KB gzip).
// Stable builds the same module, slightly larger. STEADYLLM_STABLE=1 forces stable.
let nightly = false;
if (!process.env.STEADYLLM_STABLE) {
  try {
    const sysroot = execFileSync("rustc", ["+nightly", "--print", "sysroot"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    nightly = existsSync(join(sysroot, "lib", "rustlib", "src", "rust", "library", "core"));
  } catch {
    // no nightly
  }
}
if (nightly) rustflags += " -Zunstable-options -Cpanic=immediate-abort";
console.log(`build: ${nightly ? "nightly, core rebuilt with immediate-abort panics" : "stable toolchain"}`);
const target = process.env.CARGO_TARGET_DIR || join(root, "target");
rmSync(dist, { recursive: true, force: true });

// Three entries, one per module: `steadyllm` (dist/index.js: OpenAI-compatible APIs),
// `steadyllm/anthropic` (dist/anthropic/index.js: the same API, plus Anthropic's Messages API,
// built with the crate's `anthropic` feature) and `steadyllm/responses` (dist/responses/:
// the same, plus OpenAI's Responses API with exact resume, the crate's `responses` feature).
// A page loads one of them.
function variant(name, feature) {
  const targetDir = feature ? join(target, feature) : target;
  const args = ["build", "-p", "steadyllm-wasm", "--target", "wasm32-unknown-unknown", "--profile", "wasm-release", "--target-dir", targetDir];
  if (feature) args.push("--features", feature);
  if (nightly) args.unshift("+nightly"), args.push("-Zbuild-std=core,alloc");
  run("cargo", args, { cwd: root, env: { ...process.env, RUSTFLAGS: rustflags } });
  const wasm = join(targetDir, "wasm32-unknown-unknown", "wasm-release", "steadyllm_wasm.wasm");
  const d = join(dist, name);
  mkdirSync(d, { recursive: true });
  const out = join(d, "steadyllm_wasm_bg.wasm");
  // The module's memory is fresh (zero-filled) and Rust's data starts at 1 MiB (low memory
  // unused): both assumptions hold.
  run(join(pkg, "node_modules", ".bin", "wasm-opt"), ["--one-caller-inline-max-function-size", "100", "-Oz", "--converge", "--low-memory-unused", "--zero-filled-memory", "--strip-debug", "--strip-producers", "--strip-target-features", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue", "--enable-simd", wasm, "-o", out]);
  // One ES module, minified. The wrapper finds the wasm with
  // `new URL("steadyllm_wasm_bg.wasm", import.meta.url)`, which stays as is, so the .wasm sits
  // next to it (bundlers that understand that pattern copy it along).
  run(join(pkg, "node_modules", ".bin", "esbuild"), [
    join(pkg, "src", "index.js"),
    "--bundle",
    "--format=esm",
    "--minify",
    "--target=es2022",
    "--legal-comments=none",
    `--define:__ANTHROPIC__=${feature === "anthropic"}`,
    `--define:__RESPONSES__=${feature === "responses"}`,
    `--outfile=${join(d, "index.js")}`,
    "--log-level=error",
  ]);
  copyFileSync(join(pkg, "src", "index.d.ts"), join(d, "index.d.ts"));
  console.log(`build: ${join("dist", name, "index.js")} ready (wasm ${statSync(out).size} bytes)`);
}
variant("", null);
variant("anthropic", "anthropic");
variant("responses", "responses");

