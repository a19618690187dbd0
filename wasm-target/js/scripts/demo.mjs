// `npm run demo`: serves the demo chat page with the mock server from the tests crate.
// Run after `node scripts/build.mjs` (the npm script does both). Ctrl-C stops both servers.
//
//   PORT      port of the page server on 127.0.0.1 (default 8080)
//   DELAY_MS  pause between the mock's events, so answers visibly stream (default 40)
import { createServer } from "node:net";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PKG, startMock, startStatic } from "../test/harness.mjs";

const port = Number.parseInt(process.env.PORT ?? "8080", 10);
const delay = Number.parseInt(process.env.DELAY_MS ?? "40", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`PORT must be a port number, not ${process.env.PORT}`);
if (!Number.isInteger(delay) || delay < 0) fail(`DELAY_MS must be a number of milliseconds, not ${process.env.DELAY_MS}`);
if (!existsSync(join(PKG, "dist", "index.js"))) fail("dist/ is missing: run `npm run demo` (it builds first) or `npm run build`");

function fail(message) {
  console.error(`demo: ${message}`);
  process.exit(1);
}

/** startStatic does not report a port in use, so look first. */
function portFree(p) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(p, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

if (port !== 0 && !(await portFree(port))) fail(`port ${port} on 127.0.0.1 is in use; set PORT to another one`);

const mock = await startMock(["--delay-ms", String(delay)]);
let web = null;
let closing = false;

async function shutdown(code) {
  if (closing) return;
  closing = true;
  await Promise.all([mock.close(), web?.close()]);
  process.exit(code);
}
// The mock is a child process: never leave it behind.
process.on("exit", () => mock.close());
process.on("SIGINT", () => shutdown(0));
process.on("SIGTERM", () => shutdown(0));
process.on("SIGHUP", () => shutdown(0));

try {
  web = await startStatic(PKG, port);
} catch (e) {
  console.error(`demo: cannot serve the page: ${e.message}`);
  await shutdown(1);
}

const page = `${web.url}/demo/?mock=${mock.url}&pace=${delay}`;
console.log(`mock server:  ${mock.url}  (OpenAI base URL ${mock.base}, ${delay} ms between events)`);
console.log(`demo page:    ${page}`);
console.log("");
console.log("Open the demo page in a browser. Tick \u201cChaos\u201d to watch the client retry through a stall,");
console.log("a 429 and a reset. Ctrl-C stops both servers.");
