// Builds the package into dist/: the wasm module (cargo, profile wasm-release), its ESM glue
// (wasm-bindgen --target web), wasm-opt -Oz (npm binaryen; Debian's is too old), and the
// hand-written wrapper and types.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const root = join(pkg, "..", "..");
const dist = join(pkg, "dist");
const WASM_BINDGEN = "0.2.130";

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: "inherit", ...opts });

let version = "";
try {
  version = execFileSync("wasm-bindgen", ["--version"], { encoding: "utf8" }).trim();
} catch {
  // handled below
}
if (!version.endsWith(WASM_BINDGEN)) {
  console.error(
    `build: wasm-bindgen ${WASM_BINDGEN} is needed (found: ${version || "none"}).\n` +
      `  cargo install wasm-bindgen-cli --version ${WASM_BINDGEN}`,
  );
  process.exit(1);
}

// WebAssembly SIMD (memchr's fast paths in the SSE parser and JSON reader): every browser
// released since 2023 has it. Given here rather than in .cargo/config.toml, which a RUSTFLAGS
// in the environment (the test command sets one) would override.
let rustflags = `${process.env.RUSTFLAGS ?? ""} -C target-feature=+simd128`.trim();
const cargoArgs = ["build", "-p", "steadyllm-wasm", "--target", "wasm32-unknown-unknown", "--profile", "wasm-release"];
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
if (nightly) {
  cargoArgs.unshift("+nightly");
  cargoArgs.push("-Zbuild-std=core,alloc");
  rustflags += " -Zunstable-options -Cpanic=immediate-abort";
}
console.log(`build: ${nightly ? "nightly, core rebuilt with immediate-abort panics" : "stable toolchain"}`);
run("cargo", cargoArgs, {
  cwd: root,
  env: { ...process.env, RUSTFLAGS: rustflags },
});
const target = process.env.CARGO_TARGET_DIR || join(root, "target");
const wasm = join(target, "wasm32-unknown-unknown", "wasm-release", "steadyllm_wasm.wasm");

rmSync(dist, { recursive: true, force: true });
const gen = join(pkg, "target", "wasm-bindgen");
rmSync(gen, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
run("wasm-bindgen", ["--target", "web", "--no-typescript", "--out-dir", gen, wasm]);
const out = join(dist, "steadyllm_wasm_bg.wasm");
copyFileSync(join(gen, "steadyllm_wasm_bg.wasm"), out);
run(join(pkg, "node_modules", ".bin", "wasm-opt"), ["-Oz", "--low-memory-unused", "--zero-filled-memory", "--strip-debug", "--strip-producers", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue", "--enable-simd", out, "-o", out]);
// One ES module: the wrapper, wasm-bindgen's glue and its snippet, minified. The glue finds
// the wasm with `new URL("steadyllm_wasm_bg.wasm", import.meta.url)`, which stays as is, so
// the .wasm sits next to it (bundlers that understand that pattern copy it along).
copyFileSync(join(pkg, "src", "index.js"), join(gen, "index.js"));
run(join(pkg, "node_modules", ".bin", "esbuild"), [
  join(gen, "index.js"),
  "--bundle",
  "--format=esm",
  "--minify",
  "--target=es2022",
  "--legal-comments=none",
  `--outfile=${join(dist, "index.js")}`,
  // wasm-bindgen 0.2.130 repeats its snippet key in the imports object (same value each time);
  // esbuild warns about that, harmlessly.
  "--log-level=error",
]);
copyFileSync(join(pkg, "src", "index.d.ts"), join(dist, "index.d.ts"));
console.log(`build: dist/ ready (wasm ${statSync(out).size} bytes)`);
