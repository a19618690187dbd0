// Builds the package into dist/: the wasm module (cargo, profile wasm-release), its ESM glue
// (wasm-bindgen --target web), wasm-opt -Oz (npm binaryen; Debian's is too old), and the
// hand-written wrapper and types.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
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

run("cargo", ["build", "-p", "steadyllm-wasm", "--target", "wasm32-unknown-unknown", "--profile", "wasm-release"], {
  cwd: root,
});
const target = process.env.CARGO_TARGET_DIR || join(root, "target");
const wasm = join(target, "wasm32-unknown-unknown", "wasm-release", "steadyllm_wasm.wasm");

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "wasm"), { recursive: true });
run("wasm-bindgen", ["--target", "web", "--no-typescript", "--out-dir", join(dist, "wasm"), wasm]);
const out = join(dist, "wasm", "steadyllm_wasm_bg.wasm");
run(join(pkg, "node_modules", ".bin", "wasm-opt"), ["-Oz", "--strip-debug", "--strip-producers", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue", "--enable-simd", out, "-o", out]);
copyFileSync(join(pkg, "src", "index.js"), join(dist, "index.js"));
copyFileSync(join(pkg, "src", "index.d.ts"), join(dist, "index.d.ts"));
console.log(`build: dist/ ready (wasm ${statSync(out).size} bytes)`);
