// The demo chat page (demo/) in headless Chromium against the mock server: the answer streams
// in, Stop keeps the partial text, the chaos switch makes the client retry visibly, and a
// screenshot is saved to test-results/demo.png.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { ANSWER, PKG, deadPort, launchBrowser, openPage, startMock, startStatic } from "./harness.mjs";

// Pause between the mock's events: the answer (~70 events) takes several seconds to stream,
// so there is ample time to press Stop mid-answer.
const PACE = 80;
const SHOT = join(PKG, "test-results", "demo.png");

let mock, web, browser;
const pages = [];

before(async () => {
  [mock, web, browser] = await Promise.all([
    startMock(["--delay-ms", String(PACE)]),
    startStatic(),
    launchBrowser(),
  ]);
});

after(async () => {
  await browser?.close();
  await Promise.all([mock?.close(), web?.close()]);
});

afterEach(async () => {
  while (pages.length) await pages.pop().close();
});

/** The demo page pointed at the mock; resolves once it is ready for input. */
async function openDemo() {
  const { page, errors } = await openPage(browser, `${web.url}/demo/?mock=${mock.url}&pace=${PACE}`);
  pages.push(page);
  await page.waitForSelector("#status[data-state='idle']");
  return { page, errors };
}

const answerText = (page) => page.locator(".turn").last().locator(".assistant .text").textContent();
const status = (page) => page.locator("#status");

describe("demo page", () => {
  test("streams an answer, Stop keeps the partial text, screenshot saved", async () => {
    const { page, errors } = await openDemo();
    assert.equal(await page.inputValue("#baseUrl"), `${mock.url}/v1`, "points at the mock by default");
    assert.equal(await page.isDisabled("#stop"), true);

    await page.fill("#prompt", "Why is the sky blue?");
    await page.click("#send");
    assert.equal(await page.textContent(".turn .user .text"), "Why is the sky blue?");

    // Wait for a few words to have streamed in.
    await page.waitForFunction(() => {
      const t = document.querySelector(".turn:last-child .assistant .text");
      return t && t.textContent.split(" ").length >= 4;
    });
    const early = await answerText(page);
    assert.ok(ANSWER.startsWith(early), `streamed text is a prefix of the answer: ${JSON.stringify(early)}`);
    assert.equal(await status(page).getAttribute("data-state"), "streaming");
    assert.equal(await page.isEnabled("#stop"), true);
    assert.equal(await page.isDisabled("#send"), true);

    await page.click("#stop");
    await page.waitForSelector("#status[data-state='stopped']");
    assert.equal(await status(page).textContent(), "stopped");
    assert.equal(await page.getAttribute(".turn:last-child .assistant", "data-state"), "stopped");
    assert.equal(await page.textContent(".turn:last-child .assistant .meta"), "stopped");
    assert.equal(await page.isHidden(".turn:last-child .assistant .error"), true, "a stop is not shown as an error");

    const shown = await answerText(page);
    assert.ok(shown.length > 0, "partial text kept");
    assert.ok(shown.length >= early.length);
    assert.ok(shown.length < ANSWER.length, "stopped before the end");
    assert.ok(ANSWER.startsWith(shown), `kept text is a prefix of the answer: ${JSON.stringify(shown)}`);
    // Nothing arrives after Stop.
    await page.waitForTimeout(4 * PACE);
    assert.equal(await answerText(page), shown);
    // Ready for the next prompt.
    assert.equal(await page.isEnabled("#send"), true);
    assert.equal(await page.isDisabled("#stop"), true);

    await mkdir(join(PKG, "test-results"), { recursive: true });
    await rm(SHOT, { force: true });
    await page.screenshot({ path: SHOT, fullPage: true });
    const png = await readFile(SHOT);
    assert.ok(png.length > 1000, "screenshot has content");
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "PNG signature");

    assert.deepEqual(errors.map(String), []);
  });

  test("chaos on: the retries are shown, then the whole answer arrives", { timeout: 90_000 }, async () => {
    const { page, errors } = await openDemo();
    assert.equal(await page.isEnabled("#chaos"), true);
    await page.check("#chaos");
    await page.fill("#prompt", "Why is the sky blue?");
    await page.press("#prompt", "Enter");

    // A retry notice appears in the answer and in the status line.
    const firstRetry = page.locator(".turn:last-child .notice.retry").first();
    await firstRetry.waitFor({ timeout: 60_000 });
    assert.match(await firstRetry.textContent(), / — retrying in \d+(\.\d+)? m?s$/);

    await page.waitForSelector("#status[data-state='done']", { timeout: 60_000 });
    assert.equal(await answerText(page), ANSWER);
    const notices = await page.locator(".turn:last-child .notice").allTextContents();
    const retries = notices.filter((n) => / — retrying in /.test(n));
    // Stall (first-byte timeout), 429 (Retry-After 1 s), reset mid-answer: three retries.
    assert.equal(retries.length, 3, notices.join("\n"));
    assert.ok(retries.some((n) => n.startsWith("no response head in time")), notices.join("\n"));
    assert.ok(retries.some((n) => n === "server busy — retrying in 1 s"), notices.join("\n"));
    assert.ok(retries.some((n) => n.startsWith("stream reset")), notices.join("\n"));
    assert.ok(notices.some((n) => n.includes("answer interrupted")), "the broken answer was discarded");
    assert.match(await status(page).textContent(), /^done · 4 attempts · finish: stop/);
    assert.equal(await page.isHidden(".turn:last-child .assistant .error"), true);

    // Chaos off: the mock answers at once again.
    await page.uncheck("#chaos");
    await page.waitForSelector("#status:text('chaos off')");
    await page.fill("#prompt", "And at sunset?");
    await page.click("#send");
    await page.waitForSelector("#status[data-state='done']");
    assert.equal(await answerText(page), ANSWER);
    assert.equal(await page.locator(".turn:last-child .notice").count(), 0);
    // The second turn carried the first one as history.
    const reqs = await mock.requests();
    const last = JSON.parse(reqs[reqs.length - 1].body);
    assert.deepEqual(
      last.messages.map((m) => m.role),
      ["user", "assistant", "user"],
    );
    assert.equal(last.messages[1].content, ANSWER);

    assert.deepEqual(errors.map(String), []);
  });

  test("a dead primary: the failover is shown and the fallback answers", async () => {
    const { page, errors } = await openDemo();
    await mock.script({ steps: [], then: { fault: "ok" } });
    await page.fill("#baseUrl", `http://127.0.0.1:${await deadPort()}/v1`);
    await page.fill("#fallbackUrl", `${mock.url}/v1`);
    assert.equal(await page.isDisabled("#chaos"), true, "chaos only acts on the mock");
    await page.fill("#prompt", "Why is the sky blue?");
    await page.click("#send");
    await page.waitForSelector("#status[data-state='done']", { timeout: 60_000 });
    assert.equal(await answerText(page), ANSWER);
    const failover = await page.locator(".turn:last-child .notice.failover").allTextContents();
    assert.deepEqual(failover, ["failing over from endpoint 0 to endpoint 1"]);
    assert.match(await status(page).textContent(), /^done · 2 attempts/);
    assert.deepEqual(errors.map(String), []);
  });

  test("an error is shown by class name and message, partial text kept", async () => {
    const { page, errors } = await openDemo();
    // Every attempt streams three words and then gets an error event. The demo restarts broken
    // answers (restartOnPartial), so it retries until its attempts run out, then shows the error.
    await mock.script({
      steps: [],
      then: { fault: "error_event_after", events: 4, message: "the model fell over", delay_between_events_ms: PACE },
    });
    await page.fill("#prompt", "Why is the sky blue?");
    await page.click("#send");
    await page.waitForSelector("#status[data-state='error']", { timeout: 60_000 });
    const err = await page.textContent(".turn:last-child .assistant .error");
    assert.match(err, /^StreamError: .*the model fell over/);
    // The default 8 attempts: 7 retry notices.
    assert.equal(await page.locator(".turn:last-child .notice.retry").count(), 7);
    assert.equal(await status(page).textContent(), err);
    const shown = await answerText(page);
    assert.ok(shown.length > 0 && ANSWER.startsWith(shown), `partial kept: ${JSON.stringify(shown)}`);
    assert.deepEqual(errors.map(String), []);
  });
});
