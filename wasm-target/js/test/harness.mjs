// Shared pieces of the browser tests, the demo and the benchmark: the mock server from the
// tests crate, a static file server for this package, and headless Chromium via playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const PKG = join(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = join(PKG, "..", "..");

// The mock's deterministic answer (tests/src/mock.rs DEFAULT_ANSWER).
export const ANSWER =
  "The sky looks blue because of Rayleigh scattering. Sunlight contains every colour, but the " +
  "molecules of the air scatter short wavelengths far more strongly than long ones. Blue light " +
  "is scattered all over the sky, so it reaches your eyes from every direction \u2014 that is the " +
  '"blue sky" you see. At sunset the light crosses much more air, the blue is scattered away, ' +
  "and the reds and oranges remain.";

let mockBinary = null;

/** Builds (once) and returns the path of the mock-server binary. */
export function mockServerBinary() {
  if (!mockBinary) {
    execFileSync("cargo", ["build", "--release", "-q", "-p", "steadyllm-tests", "--bin", "mock-server"], {
      cwd: ROOT,
      stdio: "inherit",
    });
    const target = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
    mockBinary = join(target, "release", "mock-server");
  }
  return mockBinary;
}

/** Starts a mock server on 127.0.0.1; resolves { url, base, control(path, body), close() }. */
export async function startMock(args = []) {
  const child = spawn(mockServerBinary(), ["--host", "127.0.0.1", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`mock-server exited with ${code}`)));
    lines.once("line", (l) => {
      const m = /listening on (http:\/\/\S+)/.exec(l);
      if (m) resolve(m[1]);
      else reject(new Error(`mock-server said: ${l}`));
    });
  });
  lines.on("line", () => {});
  const control = async (path, body) => {
    const r = await fetch(`${url}/__control/${path}`, {
      method: body === undefined ? "GET" : "POST",
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`control ${path}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  return {
    url,
    base: `${url}/v1`,
    control,
    script: (s) => control("script", s),
    requests: () => control("requests"),
    reset: () => control("reset", ""),
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill();
      }),
  };
}

/** A closed port on 127.0.0.1 (bound, then released). */
export async function deadPort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".png": "image/png",
};

/** Serves files under `root` on 127.0.0.1; resolves { url, close() }. */
export async function startStatic(root = PKG, port = 0) {
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      const file = normalize(join(root, path.endsWith("/") ? path + "index.html" : path));
      if (!file.startsWith(normalize(root + sep)) && file !== normalize(root)) throw new Error("outside");
      if (!(await stat(file)).isFile()) throw new Error("not a file");
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Headless Debian Chromium (or $CHROMIUM). */
export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/** A page at `url` with the package loaded as `window.steadyllm`; page errors are collected. */
export async function openPage(browser, url) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.on("console", (m) => {
    // Chromium logs every failed request ("Failed to load resource: …"); the faults tested
    // cause those on purpose. Anything else logged as an error counts.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(new Error(m.text()));
  });
  await page.goto(url);
  await page.waitForFunction(() => window.steadyllm !== undefined);
  return { page, errors };
}
