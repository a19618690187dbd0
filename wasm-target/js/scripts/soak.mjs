// `npm run soak`: the package in headless Chromium makes many calls through one Client, a few
// at a time, against the mock server's random-fault mode (a stall before the head, a reset or
// a clean end after the role event, 429 with Retry-After: 1, 503 — each before any content,
// so each may be retried), one fresh mock per fault rate. Prints a table: calls that succeed,
// requests per call (counted by the server), the slowest call against its deadline, and how
// much the page's JS heap grew (after a forced GC, via the DevTools protocol). Measures, never
// asserts. Network only to 127.0.0.1.
//
//   npm run soak [-- --calls 400 --concurrency 8 --percent 10,25,60,100 --seed 1]
//
// Timeouts are shortened so a run takes minutes (as the Rust soak): first byte 1 s, first
// token 2 s, idle 1 s, total 20 s; backoff 100 ms to 1 s; everything else the defaults.
import { parseArgs } from "node:util";
import { launchBrowser, openPage, startMock, startStatic } from "../test/harness.mjs";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "400" },
    concurrency: { type: "string", default: "8" },
    percent: { type: "string", default: "10,25,60,100" },
    seed: { type: "string", default: "1" },
  },
});
const calls = Number(values.calls);
const concurrency = Number(values.concurrency);
const percents = values.percent.split(",").map(Number);
const seed = Number(values.seed);
if (!(calls > 0 && concurrency > 0 && percents.every((p) => p >= 0 && p <= 100) && seed >= 0)) {
  console.error("soak: --calls N --concurrency N --percent P,P,… (0–100) --seed N");
  process.exit(2);
}
const TOTAL_MS = 20_000;

const web = await startStatic();
const browser = await launchBrowser();
const rows = [];
try {
  console.log(
    `soak: ${calls} calls through one Client, ${concurrency} at a time, one endpoint, in Chromium ${browser.version()}; seed ${seed}`,
  );
  for (const percent of percents) {
    const mock = await startMock(["--random", `${percent}:${seed}`]);
    const { page } = await openPage(browser, `${web.url}/test/page.html`);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("HeapProfiler.enable");
    const heap = async () => {
      await cdp.send("HeapProfiler.collectGarbage");
      return (await cdp.send("Runtime.getHeapUsage")).usedSize;
    };
    const started = Date.now();
    const before = await heap();
    const r = await page.evaluate(
      async ([base, calls, concurrency, total]) => {
        const s = window.steadyllm;
        const client = new s.Client({
          endpoints: [{ baseUrl: base, apiKey: "sk-soak" }],
          model: "gpt-4o-mini",
          timeouts: { firstByteMs: 1000, firstTokenMs: 2000, idleMs: 1000, totalMs: total },
          retries: { baseDelayMs: 100, maxDelayMs: 1000 },
        });
        const request = { messages: [{ role: "user", content: "Why is the sky blue?" }] };
        const results = [];
        let next = 0;
        const worker = async () => {
          while (next < calls) {
            next++;
            const t0 = performance.now();
            try {
              for await (const _ of client.chat.stream(request)) {
                // drained
              }
              results.push({ ok: true, ms: performance.now() - t0 });
            } catch (e) {
              results.push({ ok: false, ms: performance.now() - t0, error: `${e.name}: ${e.reason ?? e.message}` });
            }
          }
        };
        await Promise.all(Array.from({ length: concurrency }, worker));
        return results;
      },
      [mock.base, calls, concurrency, TOTAL_MS],
    );
    const after = await heap();
    const requests = (await mock.requests()).length;
    await page.close();
    await mock.close();
    const errors = new Map();
    for (const x of r.filter((x) => !x.ok)) errors.set(x.error, (errors.get(x.error) ?? 0) + 1);
    const row = {
      percent,
      ok: r.filter((x) => x.ok).length,
      calls: r.length,
      requests,
      slowest: Math.max(...r.map((x) => x.ms)),
      late: r.filter((x) => x.ms > TOTAL_MS + 250).length,
      heap: after - before,
      wall: (Date.now() - started) / 1000,
      errors: [...errors].sort((a, b) => b[1] - a[1]),
    };
    console.error(`  ${percent} % faulted: ${row.ok}/${row.calls} ok in ${row.wall.toFixed(0)} s`);
    rows.push(row);
  }
} finally {
  await browser.close();
  await web.close();
}
console.log();
console.log(
  `| requests faulted | calls that succeed | requests per call | slowest call (deadline ${TOTAL_MS / 1000} s) | page heap growth |`,
);
console.log("|---|---|---|---|---|");
for (const r of rows) {
  const late = r.late ? ` (${r.late} past the deadline)` : "";
  console.log(
    `| ${r.percent} % | ${r.ok} / ${r.calls} (${((100 * r.ok) / r.calls).toFixed(1)} %) | ${(r.requests / r.calls).toFixed(2)} | ${(r.slowest / 1000).toFixed(1)} s${late} | ${(r.heap / 1024).toFixed(0)} KiB |`,
  );
}
console.log();
for (const r of rows) {
  if (r.errors.length) console.log(`  ${r.percent} %: failures: ${r.errors.map(([k, n]) => `${n}× ${k}`).join(", ")}`);
  console.log(`  ${r.percent} %: ${r.wall.toFixed(0)} s wall time`);
}
