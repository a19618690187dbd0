// `npm pack` output installs into a fresh folder and works there: the bare specifier resolves
// through `exports`, the types resolve for TypeScript, and a page using the installed copy
// streams an answer from the mock server in Chromium.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PKG, launchBrowser, startMock, startStatic } from "./harness.mjs";

let dir, app, mock, web, browser;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "steadyllm-pack-"));
  app = join(dir, "app");
  const [info] = JSON.parse(
    execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: PKG, encoding: "utf8" }),
  );
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, info.filename)], {
    cwd: app,
    stdio: "inherit",
  });
  [mock, browser] = await Promise.all([startMock(), launchBrowser()]);
  web = await startStatic(app);
});

after(async () => {
  await browser?.close();
  await Promise.all([mock?.close(), web?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the tarball holds the built package and nothing else of the repo", () => {
  const root = join(app, "node_modules", "steadyllm");
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.equal(pkg.exports["."].default, "./dist/index.js");
  assert.equal(pkg.exports["./anthropic"].default, "./dist/anthropic/index.js");
  assert.equal(pkg.exports["./responses"].default, "./dist/responses/index.js");
  for (const d of ["dist", "dist/anthropic", "dist/responses"]) for (const f of ["index.js", "index.d.ts", "steadyllm_wasm_bg.wasm"]) {
    const f2 = `${d}/${f}`;
    assert.ok(existsSync(join(root, f2)), f2);
  }
  assert.ok(!existsSync(join(root, "src")) && !existsSync(join(root, "test")) && !existsSync(join(root, "node_modules")));
});

test("TypeScript resolves the installed package's types through exports", () => {
  writeFileSync(
    join(app, "check.ts"),
    `import { Client, type Delta, IdleTimeoutError } from "steadyllm";
import * as withAnthropic from "steadyllm/anthropic";
const c = new Client({ endpoints: [{ baseUrl: "http://127.0.0.1:1/v1" }], model: "m" });
export const claude = new withAnthropic.Client({ endpoints: [{ baseUrl: "http://127.0.0.1:1", dialect: "anthropic" }], model: "claude" });
export async function f(): Promise<string> {
  let s = "";
  for await (const d of c.chat.stream({ messages: [{ role: "user", content: "hi" }] })) {
    const x: Delta = d;
    if (x.type === "content") s += x.text;
  }
  return s + String(IdleTimeoutError.name);
}
`,
  );
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "esnext", moduleResolution: "bundler", lib: ["es2022", "dom"], skipLibCheck: false },
      files: ["check.ts"],
    }),
  );
  execFileSync(join(PKG, "node_modules", ".bin", "tsc"), ["-p", join(app, "tsconfig.json")], { stdio: "inherit" });
});

test("a page importing the installed package streams an answer, from either entry", async () => {
  writeFileSync(
    join(app, "index.html"),
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{ "imports": {
  "steadyllm": "./node_modules/steadyllm/dist/index.js",
  "steadyllm/anthropic": "./node_modules/steadyllm/dist/anthropic/index.js"
} }</script>
<script type="module">
  import { Client, init } from "steadyllm";
  import * as withAnthropic from "steadyllm/anthropic";
  // init() with a URL, and with a Response, instead of the default location.
  await init(new URL("./node_modules/steadyllm/dist/steadyllm_wasm_bg.wasm", location.href));
  await withAnthropic.init(await fetch("./node_modules/steadyllm/dist/anthropic/steadyllm_wasm_bg.wasm"));
  window.ask = async (base, anthropic) => {
    const c = anthropic
      ? new withAnthropic.Client({ endpoints: [{ baseUrl: base.replace("/v1", ""), apiKey: "k", dialect: "anthropic" }], model: "claude" })
      : new Client({ endpoints: [{ baseUrl: base, apiKey: "k" }], model: "gpt-4o" });
    let text = "", n = 0;
    for await (const d of c.chat.stream({ messages: [{ role: "user", content: "hi" }] })) {
      if (d.type === "content") { text += d.text; n++; }
    }
    return { text, n };
  };
</script>`,
  );
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${web.url}/index.html`);
  await page.waitForFunction(() => typeof window.ask === "function");
  for (const anthropic of [false, true]) {
    const r = await page.evaluate(([base, a]) => window.ask(base, a), [mock.base, anthropic]);
    assert.ok(r.text.startsWith("The sky looks blue because of Rayleigh scattering."), r.text);
    assert.ok(r.n > 10);
  }
  assert.deepEqual(errors, []);
});
