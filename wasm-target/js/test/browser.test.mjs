// The package in real headless Chromium against the fault-injecting mock server (a different
// origin, so CORS is exercised): streaming, cancel, every timeout, retries, failover, stream
// faults, concurrency, bad input. Each test asserts its outcome; none asserts a duration.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ANSWER, deadPort, launchBrowser, openPage, startMock, startStatic } from "./harness.mjs";

const KEY = "sk-test-secret-1234567890";

let mock, mock2, web, browser, page, errors;

before(async () => {
  [mock, mock2, web, browser] = await Promise.all([startMock(), startMock(), startStatic(), launchBrowser()]);
  ({ page, errors } = await openPage(browser, `${web.url}/test/page.html`));
  // Helpers inside the page.
  await page.evaluate(
    ([key]) => {
      const s = window.steadyllm;
      const a = window.steadyllmAnthropic;
      const rs = window.steadyllmResponses;
      // Clients with an Anthropic endpoint come from the `steadyllm/anthropic` entry.
      window.client = (endpoints, extra = {}) =>
        new (endpoints.some((e) => e.dialect === "anthropic") ? a : s).Client({
          endpoints: endpoints.map((e) => (typeof e === "string" ? { baseUrl: e, apiKey: key } : e)),
          model: "gpt-4o",
          retries: { baseDelayMs: 50, maxDelayMs: 200, ...(extra.retries ?? {}) },
          ...extra,
        });
      window.ask = { messages: [{ role: "user", content: "Why is the sky blue?" }] };
      // Runs a stream to its end; returns the deltas and the error (as plain data).
      window.collect = async (client, request = window.ask, options = {}) => {
        const deltas = [];
        try {
          for await (const d of client.chat.stream(request, options)) deltas.push(d);
          return { deltas, text: deltas.filter((d) => d.type === "content").map((d) => d.text).join("") };
        } catch (e) {
          return {
            deltas,
            text: deltas.filter((d) => d.type === "content").map((d) => d.text).join(""),
            error: window.describe(e),
          };
        }
      };
      window.describe = (e) => ({
        name: e.name,
        message: e.message,
        isError: e instanceof Error,
        isSteady: e instanceof s.SteadyLlmError || e instanceof a.SteadyLlmError || e instanceof rs.SteadyLlmError,
        isTimeout: e instanceof s.TimeoutError || e instanceof a.TimeoutError || e instanceof rs.TimeoutError,
        ctor: e.constructor.name,
        partial: e.partial,
        attempts: e.attempts,
        reason: e.reason,
        status: e.status,
        kind: e.kind,
        serverError: e.serverError,
        abortReason: typeof e.abortReason === "object" ? JSON.stringify(e.abortReason) : e.abortReason,
        abortReasonType: typeof e.abortReason,
        abortReasonName: e.abortReason && e.abortReason.name,
      });
    },
    [KEY],
  );
});

after(async () => {
  await browser?.close();
  await Promise.all([mock?.close(), mock2?.close(), web?.close()]);
});

beforeEach(async () => {
  await Promise.all([mock.reset(), mock2.reset()]);
});

const run = (fn, arg) => page.evaluate(fn, arg);

describe("streaming", () => {
  test("deltas arrive as the server sends them, before it sends the rest", async () => {
    // The server sends four events and then never another byte: whatever arrives was streamed.
    await mock.script([{ fault: "stall_after", events: 4 }]);
    const r = await run(async (base) => {
      const c = window.client([base]);
      const ctl = new AbortController();
      const got = [];
      try {
        for await (const d of c.chat.stream(window.ask, { signal: ctl.signal })) {
          got.push(d);
          if (got.filter((x) => x.type === "content").length === 3) ctl.abort("enough");
        }
      } catch (e) {
        return { got, error: window.describe(e) };
      }
      return { got };
    }, mock.base);
    const content = r.got.filter((d) => d.type === "content").map((d) => d.text);
    assert.deepEqual(content, ["The", " sky", " looks"]);
    assert.equal(r.error.name, "AbortError");
    assert.equal(r.error.partial, "The sky looks");
  });

  test("a whole answer: text, finish reason, usage; the request is what the server expects", async () => {
    const r = await run((base) => window.client([base]).chat.complete(window.ask), mock.base);
    assert.equal(r.text, ANSWER);
    assert.equal(r.finishReason, "stop");
    assert.equal(r.attempts, 1);
    assert.equal(r.endpoint, 0);
    assert.ok(r.usage && r.usage.completionTokens > 0 && r.usage.totalTokens >= r.usage.completionTokens);
    const [req] = await mock.requests();
    assert.equal(req.path, "/v1/chat/completions");
    const h = Object.fromEntries(req.headers);
    assert.equal(h.authorization, `Bearer ${KEY}`);
    assert.equal(h["x-steadyllm-retry-count"], "0");
    assert.equal(h["content-type"], "application/json");
    const body = JSON.parse(req.body);
    assert.equal(body.model, "gpt-4o");
    assert.equal(body.stream, true);
    assert.deepEqual(body.messages, [{ role: "user", content: "Why is the sky blue?" }]);
  });

  test("the Anthropic dialect streams from /v1/messages", async () => {
    const r = await run(
      (base) =>
        window
          .client([{ baseUrl: base.replace(/\/v1$/, ""), apiKey: "k", dialect: "anthropic", model: "claude" }])
          .chat.complete({ ...window.ask, maxTokens: 500 }),
      mock.base,
    );
    assert.equal(r.text, ANSWER);
    assert.equal(r.finishReason, "end_turn");
    const [req] = await mock.requests();
    assert.equal(req.path, "/v1/messages");
    const h = Object.fromEntries(req.headers);
    assert.equal(h["x-api-key"], "k");
    assert.ok(h["anthropic-version"]);
    assert.equal(h["anthropic-dangerous-direct-browser-access"], "true");
    assert.equal(JSON.parse(req.body).max_tokens, 500);
  });

  test("the default entry leaves Anthropic out and says where it is", async () => {
    const r = await run(() => {
      const s = window.steadyllm;
      const out = [];
      for (const make of [
        () => new s.Client({ endpoints: [{ baseUrl: "http://127.0.0.1:1", dialect: "anthropic" }], model: "claude" }),
        () => new s.StreamDecoder({ dialect: "anthropic" }),
      ]) {
        try {
          make();
          out.push("constructed");
        } catch (e) {
          out.push(window.describe(e));
        }
      }
      return out;
    });
    for (const e of r) {
      assert.equal(e.name, "InvalidRequestError");
      assert.match(e.message, /steadyllm\/anthropic/);
    }
  });

  test("multi-byte text split across reads arrives intact (one byte per write)", async () => {
    await mock.script([{ fault: "drip", ms_per_byte: 0 }]);
    const r = await run((base) => window.client([base]).chat.complete(window.ask), mock.base);
    assert.equal(r.text, ANSWER);
  });
});

describe("cancel", () => {
  test("the caller's signal aborts mid-stream with AbortError, any reason type, partial kept", async () => {
    for (const kind of ["string", "undefined", "object", "number", "error"]) {
      await mock.script([{ fault: "stall_after", events: 3 }]);
      const r = await run(
        async ([base, kind]) => {
          const c = window.client([base]);
          const ctl = new AbortController();
          const reason = { string: "stop!", undefined: undefined, object: { why: 1 }, number: 42, error: new RangeError("r") }[kind];
          const deltas = [];
          try {
            for await (const d of c.chat.stream(window.ask, { signal: ctl.signal })) {
              deltas.push(d);
              if (d.type === "content") kind === "undefined" ? ctl.abort() : ctl.abort(reason);
            }
            return { deltas };
          } catch (e) {
            // The client still works after an abort.
            const again = await c.chat.complete(window.ask).then(
              (x) => x.text.length,
              (e) => e.name,
            );
            return { deltas, error: window.describe(e), again };
          }
        },
        [mock.base, kind],
      );
      assert.equal(r.error?.name, "AbortError", kind);
      assert.ok(r.error.isSteady && r.error.isError);
      assert.equal(r.error.partial, "The");
      assert.equal(r.deltas.filter((d) => d.type === "content").length, 1, "no delta after the abort");
      if (kind === "string") assert.equal(r.error.abortReason, "stop!");
      if (kind === "number") assert.equal(r.error.abortReason, 42);
      if (kind === "object") assert.equal(r.error.abortReason, '{"why":1}');
      if (kind === "error") assert.equal(r.error.abortReasonName, "RangeError");
      if (kind === "undefined") assert.equal(r.error.abortReasonName, "AbortError"); // the DOMException
      assert.equal(typeof r.again, "number", `call after abort: ${r.again}`);
    }
  });

  test("an already-aborted signal fails before anything is sent", async () => {
    const r = await run(async (base) => {
      const ctl = new AbortController();
      ctl.abort("early");
      return window.collect(window.client([base]), window.ask, { signal: ctl.signal });
    }, mock.base);
    assert.equal(r.error.name, "AbortError");
    assert.equal(r.error.abortReason, "early");
    assert.equal((await mock.requests()).length, 0);
  });

  test("abort during a backoff wait ends the call at once", async () => {
    await mock.script({ steps: [], then: { fault: "status", code: 503, retry_after: "30" } });
    const r = await run(async (base) => {
      const c = window.client([base], { retries: { maxRetryAfterMs: 60000 } });
      const ctl = new AbortController();
      const deltas = [];
      try {
        for await (const d of c.chat.stream(window.ask, { signal: ctl.signal })) {
          deltas.push(d);
          if (d.type === "retry") ctl.abort("bored");
        }
      } catch (e) {
        return { deltas, error: window.describe(e) };
      }
    }, mock.base);
    assert.equal(r.deltas[0].type, "retry");
    assert.equal(r.deltas[0].reason, "retry_after");
    assert.equal(r.deltas[0].delayMs, 30000);
    assert.equal(r.error.name, "AbortError");
    assert.equal((await mock.requests()).length, 1);
  });

  test("breaking out of the loop cancels the call", async () => {
    await mock.script([{ fault: "stall_after", events: 3 }]);
    const r = await run(async (base) => {
      const c = window.client([base]);
      let n = 0;
      for await (const d of c.chat.stream(window.ask)) {
        if (d.type === "content") {
          n++;
          break;
        }
      }
      const next = await c.chat.complete(window.ask).then((x) => x.text.length, (e) => e.name);
      return { n, next };
    }, mock.base);
    assert.equal(r.n, 1);
    assert.equal(typeof r.next, "number");
  });
});

describe("request fields", () => {
  test("structured outputs, reasoning effort, strict tools, extra members, headers and query reach an OpenAI server", async () => {
    const format = { type: "json_schema", json_schema: { name: "answer", schema: { type: "object" }, strict: true } };
    const r = await run(
      ([base, format]) =>
        window
          .client([{ baseUrl: base, headers: { "Api-Key": "azure-key", "X-Title": "Café — ключ" }, query: { "api-version": "2024-10-21", note: "a b&c" } }])
          .chat.complete({
            ...window.ask,
            responseFormat: format,
            reasoningEffort: "low",
            tools: [{ name: "look", parameters: { type: "object" }, strict: true }],
            parallelToolCalls: false,
            // Anthropic's: not sent to an OpenAI endpoint.
            thinking: { budgetTokens: 2048 },
            // `seed` is not set, so an extra member may carry it.
            extraBody: { top_k: 40, seed: 5 },
          }),
      [mock.base, format],
    );
    assert.equal(r.text, ANSWER);
    const [req] = await mock.requests();
    // Percent-encoded as the core does (a space is %20, not +).
    assert.equal(req.path, "/v1/chat/completions?api-version=2024-10-21&note=a%20b%26c");
    const h = Object.fromEntries(req.headers);
    assert.equal(h["api-key"], "azure-key");
    // A value beyond ASCII arrives as UTF-8, as the core writes it (the mock reads UTF-8).
    assert.equal(h["x-title"], "Café — ключ");
    assert.equal(h.authorization, undefined);
    const body = JSON.parse(req.body);
    assert.deepEqual(body.response_format, format);
    assert.equal(body.reasoning_effort, "low");
    assert.deepEqual(body.tools, [{ type: "function", function: { name: "look", parameters: { type: "object" }, strict: true } }]);
    assert.equal(body.parallel_tool_calls, false);
    assert.equal(body.thinking, undefined);
    assert.equal(body.top_k, 40);
    assert.equal(body.seed, 5);
  });

  test("without tools, parallelToolCalls is not sent (OpenAI refuses it then)", async () => {
    await run((base) => window.client([base]).chat.complete({ ...window.ask, parallelToolCalls: true }), mock.base);
    const [req] = await mock.requests();
    assert.equal("parallel_tool_calls" in JSON.parse(req.body), false);
  });

  test("the Anthropic dialect: thinking, output_config, strict tools, no parallel tool use", async () => {
    const r = await run(
      (base) =>
        window.client([{ baseUrl: base.replace(/\/v1$/, ""), apiKey: "k", dialect: "anthropic", model: "claude" }]).chat.complete({
          ...window.ask,
          maxTokens: 4096,
          thinking: { budgetTokens: 2048 },
          responseFormat: { type: "json_schema", json_schema: { name: "answer", schema: { type: "object" }, strict: true } },
          tools: [{ name: "look", strict: true }],
          parallelToolCalls: false,
          // OpenAI's: not sent to Anthropic.
          reasoningEffort: "high",
        }),
      mock.base,
    );
    assert.equal(r.text, ANSWER);
    const [req] = await mock.requests();
    const body = JSON.parse(req.body);
    assert.deepEqual(body.thinking, { type: "enabled", budget_tokens: 2048 });
    assert.deepEqual(body.output_config, { format: { type: "json_schema", schema: { type: "object" } } });
    assert.deepEqual(body.tools, [{ name: "look", input_schema: { type: "object" }, strict: true }]);
    assert.deepEqual(body.tool_choice, { type: "auto", disable_parallel_tool_use: true });
    assert.equal(body.reasoning_effort, undefined);
    assert.equal(body.response_format, undefined);
  });

  test("refused before anything is sent: reserved headers, colliding extra members, Anthropic's limits", async () => {
    const r = await run(
      async ([base, key]) => {
        const s = window.steadyllm;
        const a = window.steadyllmAnthropic;
        const out = [];
        const tryNew = (m, o) => {
          try {
            new m.Client(o);
            out.push("constructed");
          } catch (e) {
            out.push(window.describe(e));
          }
        };
        for (const name of ["Authorization", "content-length", "Host", "Transfer-Encoding", "X-Steadyllm-Retry-Count", "Content-Type", "accept"]) {
          tryNew(s, { endpoints: [{ baseUrl: base, apiKey: key, headers: { [name]: "v" } }], model: "m" });
        }
        for (const name of ["x-api-key", "anthropic-version"]) {
          tryNew(a, { endpoints: [{ baseUrl: base, apiKey: key, dialect: "anthropic", headers: { [name]: "v" } }], model: "m" });
        }
        // Without a key, Authorization is the caller's (a gateway's token).
        tryNew(s, { endpoints: [{ baseUrl: base, headers: { Authorization: "Bearer gateway" } }], model: "m" });
        const c = window.client([base]);
        for (const req of [
          { ...window.ask, extraBody: { model: "other" } },
          { ...window.ask, extraBody: { stream: false } },
          { ...window.ask, temperature: 0.5, extraBody: { temperature: 1 } },
          { ...window.ask, extraBody: "top_k=1" },
          { ...window.ask, responseFormat: "json" },
        ]) {
          out.push((await window.collect(c, req)).error ?? "accepted");
        }
        const claude = window.client([{ baseUrl: base, apiKey: key, dialect: "anthropic", model: "claude" }]);
        for (const req of [
          // maxTokens defaults to 1024, which leaves no room for a budget of at least 1024.
          { ...window.ask, thinking: { budgetTokens: 2048 } },
          { ...window.ask, maxTokens: 4096, thinking: { budgetTokens: 1000 } },
          { ...window.ask, maxTokens: 4096, thinking: { budgetTokens: 4096 } },
          { ...window.ask, responseFormat: { type: "json_object" } },
        ]) {
          out.push((await window.collect(claude, req)).error ?? "accepted");
        }
        return out;
      },
      [mock.base, KEY],
    );
    assert.equal(r.length, 19);
    for (const [i, e] of r.entries()) {
      if (i === 9) {
        assert.equal(e, "constructed");
        continue;
      }
      assert.equal(e.name, "InvalidRequestError", `case ${i}: ${JSON.stringify(e)}`);
      assert.ok(!e.message.includes(KEY), e.message);
    }
    assert.match(r[0].message, /"Authorization" is not a valid name or is set by the client/);
    assert.match(r[10].message, /extraBody\.model is set by the request/);
    assert.match(r[15].message, /thinking\.budgetTokens/);
    assert.match(r[18].message, /json_object has no Anthropic equivalent/);
    assert.equal((await mock.requests()).length, 0, "nothing was sent");
  });
});

describe("timeouts", () => {
  test("no response head in time: FirstByteTimeoutError", async () => {
    await mock.script({ steps: [], then: { fault: "stall_before_headers" } });
    const r = await run(
      // With a 5 s total, a first-byte timeout that counted anything but its own 300 ms (the
      // 10 s connect allowance, say) would end as the total deadline instead.
      (base) =>
        window.collect(window.client([base], { timeouts: { firstByteMs: 300, totalMs: 5000 }, retries: { maxAttempts: 2 } })),
      mock.base,
    );
    assert.equal(r.error.name, "FirstByteTimeoutError");
    assert.ok(r.error.isTimeout);
    assert.equal(r.error.reason, "retries_exhausted");
    assert.equal(r.error.attempts, 2);
    assert.equal(r.deltas.filter((d) => d.type === "retry").length, 1);
  });

  test("head but no content (keep-alive comments only): FirstTokenTimeoutError", async () => {
    await mock.script({ steps: [], then: { fault: "stall_after", events: 0, keepalive_every_ms: 50 } });
    const r = await run(
      (base) =>
        window.collect(
          window.client([base], { timeouts: { firstTokenMs: 400, idleMs: 5000 }, retries: { maxAttempts: 1 } }),
        ),
      mock.base,
    );
    assert.equal(r.error.name, "FirstTokenTimeoutError");
    assert.equal(r.error.partial, "");
  });

  test("a stream that stalls: IdleTimeoutError with the partial text", async () => {
    await mock.script({ steps: [], then: { fault: "stall_after", events: 5 } });
    const r = await run(
      (base) => window.collect(window.client([base], { timeouts: { idleMs: 300 } })),
      mock.base,
    );
    assert.equal(r.error.name, "IdleTimeoutError");
    assert.equal(r.error.reason, "partial_output");
    assert.equal(r.error.partial, "The sky looks blue");
    assert.equal(r.text, "The sky looks blue");
    assert.equal((await mock.requests()).length, 1, "output was delivered: not retried by default");
  });

  test("the total deadline: TotalTimeoutError", async () => {
    await mock.script({ steps: [], then: { fault: "ok", delay_between_events_ms: 200 } });
    const r = await run(
      (base) => window.collect(window.client([base], { timeouts: { totalMs: 700, idleMs: 5000 } })),
      mock.base,
    );
    assert.equal(r.error.name, "TotalTimeoutError");
    assert.equal(r.error.reason, "deadline_exceeded");
    assert.ok(r.error.partial.length > 0 && ANSWER.startsWith(r.error.partial), r.error.partial);
  });

  test("restartOnPartial: no discard when no attempt follows; the error keeps the text", async () => {
    await mock.script({ steps: [], then: { fault: "error_event_after", events: 4 } });
    const r = await run(
      (base) => window.collect(window.client([base], { retries: { restartOnPartial: true, maxAttempts: 2 } })),
      mock.base,
    );
    assert.equal(r.deltas.filter((d) => d.type === "discard").length, 1, "one restart, one discard");
    assert.equal(r.error.name, "StreamError");
    assert.equal(r.error.partial, "The sky looks", "the last attempt's text");
  });

  test("restartOnPartial retries after a stall and says to discard what was shown", async () => {
    await mock.script([{ fault: "stall_after", events: 5 }, { fault: "ok" }]);
    const r = await run(
      (base) =>
        window.collect(window.client([base], { timeouts: { idleMs: 300 }, retries: { restartOnPartial: true } })),
      mock.base,
    );
    assert.equal(r.error, undefined);
    const i = r.deltas.findIndex((d) => d.type === "discard");
    assert.ok(i > 0, "a discard delta");
    const after = r.deltas.slice(i).filter((d) => d.type === "content").map((d) => d.text).join("");
    assert.equal(after, ANSWER);
  });
});

describe("retries and failover", () => {
  test("429 with Retry-After: a retry notice, the wait, then the answer", async () => {
    await mock.script([{ fault: "status", code: 429, retry_after: "1" }, { fault: "ok" }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    const retry = r.deltas.find((d) => d.type === "retry");
    assert.equal(retry.reason, "retry_after");
    assert.equal(retry.delayMs, 1000);
    assert.equal(retry.attempt, 2);
    assert.equal(retry.status, 429);
    assert.equal(retry.message, "server busy — retrying in 1 s");
    const reqs = await mock.requests();
    assert.equal(reqs.length, 2);
    assert.equal(Object.fromEntries(reqs[1].headers)["x-steadyllm-retry-count"], "1");
    assert.ok(reqs[1].at_ms - reqs[0].at_ms >= 1000, "waited as asked");
  });

  test("a Retry-After beyond the cap fails with RateLimitError", async () => {
    await mock.script({ steps: [], then: { fault: "status", code: 429, retry_after: "120" } });
    const r = await run((base) => window.collect(window.client([base], { retries: { maxRetryAfterMs: 5000 } })), mock.base);
    assert.equal(r.error.name, "RateLimitError");
    assert.equal(r.error.reason, "retry_after_too_long");
    assert.equal(r.error.status, 429);
  });

  test("failover from a dead endpoint to a live one", async () => {
    const dead = `http://127.0.0.1:${await deadPort()}/v1`;
    const r = await run(([dead, live]) => window.collect(window.client([dead, live])), [dead, mock.base]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    const f = r.deltas.find((d) => d.type === "failover");
    assert.deepEqual([f.from, f.to], [0, 1]);
    assert.equal((await mock.requests()).length, 1);
  });

  test("every endpoint dead: ConnectionError after the attempts", async () => {
    const dead = `http://127.0.0.1:${await deadPort()}/v1`;
    const r = await run((dead) => window.collect(window.client([dead], { retries: { maxAttempts: 3 } })), dead);
    assert.equal(r.error.name, "ConnectionError");
    assert.equal(r.error.attempts, 3);
  });

  test("401 is not retried: HttpError with the server's error object", async () => {
    await mock.script([{ fault: "status", code: 401 }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error.name, "HttpError");
    assert.equal(r.error.status, 401);
    assert.equal(r.error.reason, "not_retryable");
    assert.ok(r.error.serverError && typeof r.error.serverError.message === "string");
    assert.equal((await mock.requests()).length, 1);
  });

  test("error bodies of every shape reach serverError; insufficient_quota is not retried", async () => {
    const quota = JSON.stringify({ error: { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" } });
    await mock.script([{ fault: "status", code: 429, body: quota }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error.name, "RateLimitError");
    assert.equal(r.error.reason, "not_retryable");
    assert.equal(r.error.serverError.code, "insufficient_quota");
    assert.equal((await mock.requests()).length, 1, "not retried");
    for (const [body, want] of [
      ['{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', { message: "Overloaded", type: "overloaded_error" }],
      ['{"object":"error","message":"bad model","code":400}', { message: "bad model", code: "400" }],
      ['{"error":"plain text"}', { message: "plain text" }],
    ]) {
      await mock.reset();
      await mock.script([{ fault: "status", code: 400, body }]);
      const e = (await run((base) => window.collect(window.client([base])), mock.base)).error;
      assert.deepEqual(e.serverError, want, body);
      assert.match(e.message, new RegExp(want.message));
    }
  });

  test("one client shares breaker state across calls: a failing endpoint is skipped", async () => {
    await mock.script({ steps: [], then: { fault: "status", code: 503 } });
    const r = await run(
      async ([a, b]) => {
        const c = window.client([a, b], { breaker: { threshold: 2, cooldownMs: 60000 } });
        const first = await window.collect(c);
        const second = await window.collect(c);
        const health = c.health();
        const third = await window.collect(c);
        return { first, second, third, health };
      },
      [mock.base, mock2.base],
    );
    for (const k of ["first", "second", "third"]) assert.equal(r[k].text, ANSWER, k);
    assert.equal(r.health[0].coolingDown, true);
    assert.equal(r.health[1].available, true);
    // Two failures opened the breaker; the third call went straight to the fallback.
    assert.equal((await mock.requests()).length, 2);
    assert.equal((await mock2.requests()).length, 3);
    assert.equal(r.third.deltas.some((d) => d.type === "failover" || d.type === "retry"), false);
  });
});

describe("every form of answer, tool calls whole", () => {
  // The tools the mock's answer calls (escapes and non-ASCII in the arguments), and the calls
  // as every adapter must give them: ids from the mock (its request number), Anthropic's
  // block index.
  const CALLS = [
    { name: "get_weather", arguments: '{"city":"Paris","note":"a \\"quoted\\" é, long enough to split"}' },
    { name: "get_time", arguments: "{}" },
  ];
  const whole = (dialect, request) =>
    CALLS.map((c, i) =>
      dialect === "anthropic"
        ? { index: i + 1, id: `toolu_mock${request}_${i}`, name: c.name, arguments: c.arguments }
        : { index: i, id: `call_mock${request}_${i}`, name: c.name, arguments: c.arguments },
    );
  const endpoint = (dialect, base) =>
    dialect === "anthropic" ? { baseUrl: base.replace(/\/v1$/, ""), apiKey: "k", dialect, model: "claude" } : base;

  for (const dialect of ["openai", "anthropic"]) {
    test(`${dialect}: a whole JSON answer to a streamed request is the answer, after one attempt`, async () => {
      await mock.script([{ fault: "whole" }, { fault: "whole" }]);
      const r = await run(
        async ([ep]) => {
          const c = window.client([ep]);
          return { streamed: await window.collect(c), completed: await c.chat.complete(window.ask) };
        },
        [endpoint(dialect, mock.base)],
      );
      assert.equal(r.streamed.error, undefined);
      assert.equal(r.streamed.text, ANSWER);
      assert.equal(r.completed.text, ANSWER);
      assert.equal(r.completed.attempts, 1);
      assert.equal(r.completed.finishReason, dialect === "anthropic" ? "end_turn" : "stop");
      assert.ok(r.completed.usage && r.completed.usage.totalTokens > 0);
      const reqs = await mock.requests();
      assert.equal(reqs.length, 2, "one request per call: not retried");
      for (const q of reqs) assert.equal(JSON.parse(q.body).stream, true);
    });

    for (const fault of ["ok", "whole"]) {
      test(`${dialect}: tool calls come out whole (${fault === "ok" ? "streamed" : "a whole JSON answer"}), before the finish reason`, async () => {
        await mock.script({ steps: [{ fault, tool_calls: CALLS }, { fault, tool_calls: CALLS }], answer: "" });
        const r = await run(
          async ([ep]) => {
            const c = window.client([ep]);
            return { streamed: await window.collect(c), completed: await c.chat.complete(window.ask) };
          },
          [endpoint(dialect, mock.base)],
        );
        assert.equal(r.streamed.error, undefined);
        const done = r.streamed.deltas.filter((d) => d.type === "tool_call_done");
        assert.deepEqual(
          done.map(({ index, id, name, arguments: a }) => ({ index, id, name, arguments: a })),
          whole(dialect, 0),
        );
        const types = r.streamed.deltas.map((d) => d.type);
        assert.ok(types.lastIndexOf("tool_call_done") < types.indexOf("finish"), types.join(" "));
        if (fault === "ok") {
          // Streamed in fragments: more of them than calls.
          assert.ok(types.filter((t) => t === "tool_call").length > CALLS.length, types.join(" "));
        }
        assert.deepEqual(r.completed.toolCalls, whole(dialect, 1));
        assert.equal(r.completed.finishReason, dialect === "anthropic" ? "tool_use" : "tool_calls");
      });
    }
  }

  test("a pretty-printed whole answer (application/problem+json, lines of JSON) decodes the same", async () => {
    const body = JSON.stringify(
      {
        id: "c",
        object: "chat.completion",
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: "Line one\nand two",
              tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: '{"a":1}' } }],
            },
            finish_reason: "tool_calls",
          },
        ],
      },
      null,
      2,
    ).replace(/\n/g, "\r\n");
    await mock.script([{ fault: "page", code: 200, content_type: "application/problem+json", body }]);
    const r = await run((base) => window.client([base]).chat.complete(window.ask), mock.base);
    assert.equal(r.text, "Line one\nand two");
    assert.deepEqual(r.toolCalls, [{ index: 0, id: "call_1", name: "f", arguments: '{"a":1}' }]);
    assert.equal(r.attempts, 1);
  });

  test("a whole answer that is not valid JSON is a malformed stream, not the answer", async () => {
    await mock.script([{ fault: "page", code: 200, content_type: "application/json", body: '{"choices":[{"index":0,"message":{"content":"cut' }]);
    const r = await run((base) => window.collect(window.client([base], { retries: { maxAttempts: 1 } })), mock.base);
    assert.equal(r.error.name, "StreamError");
    assert.equal(r.error.kind, "malformed");
  });

  test("StreamDecoder gives whole tool calls too", async () => {
    const r = await run(() => {
      const d = new window.steadyllm.StreamDecoder();
      const enc = new TextEncoder();
      const out = d.push(
        enc.encode(
          'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\\"x\\""}}]}}]}\n\n' +
            'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n',
        ),
      );
      d.end();
      return out.filter((x) => x.type === "tool_call_done");
    });
    assert.deepEqual(r, [{ type: "tool_call_done", choice: 0, index: 0, arguments: '{"x":1}', id: "c1", name: "f" }]);
  });
});

describe("stream faults", () => {
  test("a truncated stream (no [DONE]): StreamError truncated, partial kept", async () => {
    await mock.script([{ fault: "truncate_after", events: 3 }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error.name, "StreamError");
    assert.equal(r.error.kind, "truncated");
    assert.equal(r.error.partial, "The sky");
  });

  test("an error event: StreamError server_error with the server's message", async () => {
    await mock.script([{ fault: "error_event_after", events: 3, message: "The engine overheated", code: "overheat" }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error.name, "StreamError");
    assert.equal(r.error.kind, "server_error");
    assert.equal(r.error.serverError.message, "The engine overheated");
    assert.equal(r.error.serverError.code, "overheat");
    assert.match(r.error.message, /overheated/);
    assert.equal(r.error.partial, "The sky");
  });

  test("a malformed event: StreamError malformed", async () => {
    await mock.script([{ fault: "malformed_after", events: 3 }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error.name, "StreamError");
    assert.equal(r.error.kind, "malformed");
    assert.equal(r.error.partial, "The sky");
  });

  test("a reset before any content is retried; the answer completes", async () => {
    await mock.script([{ fault: "reset_after", events: 0 }, { fault: "ok" }]);
    const r = await run((base) => window.collect(window.client([base])), mock.base);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.equal((await mock.requests()).length, 2);
  });
});

describe("concurrency", () => {
  test("batch runs with a bound and returns every result or error in order", async () => {
    await mock.script({ steps: [], then: { fault: "ok", delay_between_events_ms: 2 } });
    const r = await run(async (base) => {
      const c = window.client([base]);
      const reqs = [0, 1, 2, 3, 4, 5].map((i) => ({ messages: [{ role: "user", content: `question ${i}` }] }));
      reqs[3] = { messages: [{ role: "wizard", content: "x" }] };
      const out = await c.chat.batch(reqs, { concurrency: 2 });
      return out.map((o) => (o.status === "fulfilled" ? o.value.text : window.describe(o.reason)));
    }, mock.base);
    assert.equal(r.length, 6);
    for (const i of [0, 1, 2, 4, 5]) assert.equal(r[i], ANSWER, `result ${i}`);
    assert.equal(r[3].name, "InvalidRequestError");
    const bodies = (await mock.requests()).map((q) => JSON.parse(q.body).messages[0].content).sort();
    assert.deepEqual(bodies, ["question 0", "question 1", "question 2", "question 4", "question 5"]);
  });

  test("concurrent streams on one client do not mix their deltas", async () => {
    await mock.script({ steps: [], then: { fault: "ok", delay_between_events_ms: 1 } });
    const r = await run(async (base) => {
      const c = window.client([base]);
      const all = await Promise.all([0, 1, 2, 3].map(() => window.collect(c)));
      return all.map((x) => x.text);
    }, mock.base);
    for (const t of r) assert.equal(t, ANSWER);
  });
});

describe("exact resume over the Responses API (steadyllm/responses)", () => {
  // A Responses client from the `steadyllm/responses` entry; runs one stream and returns its
  // deltas, its text and its error, with the requests the mock recorded.
  const ask = async (script, extra = {}, request = {}) => {
    await mock.script(script);
    const r = await run(
      async ([base, key, extra, request]) => {
        const c = new window.steadyllmResponses.Client({
          endpoints: [{ baseUrl: base, apiKey: key }],
          model: "gpt-4o",
          api: "responses",
          retries: { baseDelayMs: 50, maxDelayMs: 200 },
          ...extra,
        });
        return window.collect(c, { ...window.ask, ...request });
      },
      [mock.base, KEY, extra, request],
    );
    const requests = await mock.requests();
    return { ...r, requests, methods: requests.map((q) => q.method), resumes: r.deltas.filter((d) => d.type === "resume") };
  };
  const posts = (r) => r.methods.filter((m) => m === "POST").length;

  test("the POST: a Responses body in background mode, at /v1/responses", async () => {
    const r = await ask([{ fault: "ok" }]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.deepEqual(r.methods, ["POST"]);
    const [q] = r.requests;
    assert.equal(q.path, "/v1/responses");
    assert.deepEqual(JSON.parse(q.body), { model: "gpt-4o", input: "Why is the sky blue?", stream: true, background: true, store: true });
    assert.deepEqual(r.resumes, []);
  });

  test("a reset mid-answer: one POST, the GET resume after the last event, the answer exactly once", async () => {
    const r = await ask([{ fault: "reset_after", events: 20 }, { fault: "ok" }]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.deepEqual(r.methods, ["POST", "GET"]);
    assert.equal(r.requests[1].path, "/v1/responses/resp_mock0?stream=true&starting_after=19");
    assert.equal(r.requests[1].body, "");
    const [post, get] = r.requests.map((q) => Object.fromEntries(q.headers));
    assert.equal(get.authorization, post.authorization);
    assert.equal(get["content-type"], undefined);
    assert.equal(get["x-steadyllm-retry-count"], "1");
    assert.deepEqual(
      r.resumes.map(({ after, id }) => ({ after, id })),
      [{ after: 19, id: "resp_mock0" }],
    );
    // The resume delta comes before the resumed text.
    const at = r.deltas.findIndex((d) => d.type === "resume");
    const before = r.deltas.slice(0, at).filter((d) => d.type === "content").map((d) => d.text).join("");
    assert.ok(before.length > 0 && ANSWER.startsWith(before) && before.length < ANSWER.length);
  });

  test("a stall caught by the idle timeout resumes", async () => {
    const r = await ask([{ fault: "stall_after", events: 20 }, { fault: "ok" }], { timeouts: { idleMs: 300 } });
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.equal(posts(r), 1);
    assert.deepEqual(r.methods, ["POST", "GET"]);
    assert.deepEqual(r.resumes.map((d) => d.after), [19]);
  });

  test("two drops in one answer: two resumes, one POST", async () => {
    const r = await ask([{ fault: "reset_after", events: 15 }, { fault: "reset_after", events: 10 }, { fault: "ok" }]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.deepEqual(r.methods, ["POST", "GET", "GET"]);
    // The second resume's stream started after 14: its 10 events are 15–24.
    assert.deepEqual(r.resumes.map((d) => d.after), [14, 24]);
    assert.equal(r.requests[2].path, "/v1/responses/resp_mock0?stream=true&starting_after=24");
  });

  test("a resume refused once with a 503 is tried again from the same point", async () => {
    const r = await ask([{ fault: "reset_after", events: 20 }, { fault: "status", code: 503 }, { fault: "ok" }]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.deepEqual(r.methods, ["POST", "GET", "GET"]);
    assert.deepEqual(r.resumes.map((d) => d.after), [19, 19]);
    assert.ok(r.deltas.some((d) => d.type === "retry" && d.status === 503));
  });

  test("a drop after response.created but before any text resumes after it", async () => {
    const r = await ask([{ fault: "reset_after", events: 1 }, { fault: "ok" }]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.deepEqual(r.methods, ["POST", "GET"]);
    assert.deepEqual(r.resumes.map((d) => d.after), [0]);
  });

  test("a drop before any event posts again: two POSTs, the answer once", async () => {
    const r = await ask([{ fault: "reset_after", events: 0 }, { fault: "ok" }]);
    assert.equal(r.error, undefined);
    assert.equal(r.text, ANSWER);
    assert.deepEqual(r.methods, ["POST", "POST"]);
    assert.deepEqual(r.resumes, []);
  });

  test("response.failed ends the call without a resume (answer_failed)", async () => {
    const r = await ask([{ fault: "response_failed", events: 10 }, { fault: "ok" }]);
    assert.deepEqual(r.methods, ["POST"]);
    assert.deepEqual(r.resumes, []);
    assert.ok(r.error, "the call failed");
    assert.equal(r.error.isSteady, true);
    assert.match(r.error.message, /the server ended the answer as failed/);
    assert.equal(r.error.serverError.code, "server_error");
    // What came before the verdict is kept, and is the answer's start.
    assert.ok(r.text.length > 0 && ANSWER.startsWith(r.text));
    assert.equal(r.error.partial, r.text);
  });

  test("response.incomplete ends the call without a resume (answer_incomplete), its text kept", async () => {
    const r = await ask([{ fault: "ok" }], {}, { maxTokens: 3 });
    assert.deepEqual(r.methods, ["POST"]);
    assert.equal(JSON.parse(r.requests[0].body).max_output_tokens, 3);
    assert.deepEqual(r.resumes, []);
    assert.equal(r.error.isSteady, true);
    assert.match(r.error.message, /the server ended the answer incomplete/);
    assert.equal(r.text, "The sky looks");
    assert.equal(r.error.partial, "The sky looks");
    assert.ok(r.deltas.some((d) => d.type === "finish" && d.reason === "max_output_tokens"));
  });

  test("background: false — no background in the body, and a drop keeps the partial text", async () => {
    const r = await ask([{ fault: "reset_after", events: 20 }, { fault: "ok" }], {}, { background: false });
    assert.deepEqual(r.methods, ["POST"]);
    const body = JSON.parse(r.requests[0].body);
    assert.equal(body.background, undefined);
    assert.equal(body.store, undefined);
    assert.equal(r.error.reason, "partial_output");
    assert.equal(r.error.kind, "network");
    assert.ok(r.text.length > 0 && ANSWER.startsWith(r.text) && r.text.length < ANSWER.length);
    assert.deepEqual(r.resumes, []);
  });

  test("the default entry points to steadyllm/responses", async () => {
    const r = await run((base) => {
      try {
        new window.steadyllm.Client({ endpoints: [{ baseUrl: base }], model: "m", api: "responses" });
        return null;
      } catch (e) {
        return window.describe(e);
      }
    }, mock.base);
    assert.equal(r.name, "InvalidRequestError");
    assert.match(r.message, /steadyllm\/responses/);
  });
});

describe("bad input never reaches a panic", () => {
  test("invalid options and requests are InvalidRequestError; secrets are not echoed", async () => {
    const r = await run(async ([base, key]) => {
      const s = window.steadyllm;
      const out = [];
      const tryNew = (o) => {
        try {
          new s.Client(o);
          out.push("constructed");
        } catch (e) {
          out.push(window.describe(e));
        }
      };
      tryNew(undefined);
      tryNew({ endpoints: [] });
      tryNew({ endpoints: [{ baseUrl: "ftp://x" }], model: "m" });
      tryNew({ endpoints: [{ baseUrl: "not a url" }], model: "m" });
      tryNew({ endpoints: [{ baseUrl: base, apiKey: key + "\r\nx-evil: 1" }], model: "m" });
      tryNew({ endpoints: [{ baseUrl: base, headers: { "x-a": "ok\nno" } }], model: "m" });
      tryNew({ endpoints: [{ baseUrl: base, headers: { "bad name": "v" } }], model: "m" });
      tryNew({ endpoints: [1, 2, 3, 4, 5].map(() => ({ baseUrl: base })), model: "m" });
      tryNew({ endpoints: [{ baseUrl: base }] });
      tryNew({ endpoints: [{ baseUrl: base }], model: "m", timeouts: { idleMs: -1 } });
      tryNew({ endpoints: [{ baseUrl: base }], model: "m", reasoningModels: "o3" });
      tryNew({ endpoints: [{ baseUrl: base }], model: "m", reasoningModels: ["o3", 3] });
      const c = window.client([base]);
      for (const req of [
        null,
        {},
        { messages: [] },
        { messages: "hi" },
        { messages: [{ content: "no role" }] },
        { messages: [{ role: "wizard", content: "x" }] },
        { messages: [{ role: "user", content: 42 }] },
        { messages: [{ role: "user", content: [{ type: "audio" }] }] },
        { messages: [{ role: "tool", content: "result without id" }] },
        { ...window.ask, temperature: NaN },
        { ...window.ask, temperature: Infinity },
        { ...window.ask, maxTokens: 1.5 },
        { ...window.ask, tools: [{ name: "f", parameters: "not an object" }] },
        { ...window.ask, toolChoice: "sometimes" },
      ]) {
        out.push((await window.collect(c, req)).error ?? "accepted");
      }
      // Tool arguments that are not JSON cannot be turned into Anthropic's object: refused
      // before anything is sent.
      const claude = window.client([{ baseUrl: base, apiKey: key, dialect: "anthropic", model: "claude" }]);
      const toolTurn = { messages: [{ role: "assistant", toolCalls: [{ id: "1", name: "f", arguments: "{not json" }] }, window.ask.messages[0]] };
      out.push((await window.collect(claude, toolTurn)).error ?? "accepted");
      return out;
    }, [mock.base, KEY]);
    for (const [i, e] of r.entries()) {
      if (i === 4) {
        // The key with CR/LF: refused without echoing it.
        assert.equal(e.name, "InvalidRequestError", JSON.stringify(e));
        assert.ok(!e.message.includes(KEY), e.message);
        continue;
      }
      assert.equal(e.name, "InvalidRequestError", `case ${i}: ${JSON.stringify(e)}`);
      assert.ok(e.isSteady && e.message.length > 0);
    }
    assert.equal(r.length, 27);
    assert.equal((await mock.requests()).length, 0, "nothing was sent");
  });

  test("an unexpected exception inside a call rejects with SteadyLlmError, not a raw error", async () => {
    const r = await run(async (base) => {
      const c = window.client([base]);
      const real = window.Headers;
      window.Headers = class {
        constructor() {
          throw new TypeError("boom");
        }
      };
      try {
        return await window.collect(c);
      } finally {
        window.Headers = real;
      }
    }, mock.base);
    assert.equal(r.error.name, "SteadyLlmError");
    assert.ok(r.error.isSteady);
    assert.match(r.error.message, /internal error: boom/);
  });

  test("an oversized event fails the attempt as malformed; the client stays usable", async () => {
    const big = "x".repeat(70 * 1024);
    await mock.script({ steps: [{ fault: "ok" }], answer: big });
    const r = await run(async (base) => {
      const c = window.client([base], { retries: { maxAttempts: 1 } });
      const first = await window.collect(c, { messages: [{ role: "user", content: "one word please" }] });
      return first;
    }, mock.base);
    // One 70 KiB word is one event larger than the 64 KiB parser capacity.
    assert.equal(r.error.name, "StreamError");
    assert.equal(r.error.kind, "malformed");
    await mock.reset();
    const ok = await run((base) => window.client([base]).chat.complete(window.ask).then((x) => x.text), mock.base);
    assert.equal(ok, ANSWER);
  });

  test("StreamDecoder over random bytes: deltas or StreamError, never a trap", async () => {
    const r = await run(() => {
      const s = window.steadyllm;
      let seed = 12345;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
      const pieces = ["data: ", '{"choices":[{"delta":{"content":"', "\\u00e9", "\\ud800", '"}}]}', "\n\n", "\r", ":", "event: error\n", "data: [DONE]\n\n", "\xff"];
      const enc = new TextEncoder();
      const outcomes = { ok: 0, stream: 0, other: [] };
      for (let i = 0; i < 3000; i++) {
        const m = i % 2 ? window.steadyllmAnthropic : s;
        const d = new m.StreamDecoder({ dialect: i % 2 ? "anthropic" : "openai" });
        try {
          for (let j = 0; j < 8; j++) {
            const bytes = rnd() < 64 ? Uint8Array.from({ length: rnd() }, rnd) : enc.encode(pieces[rnd() % pieces.length]);
            d.push(bytes);
          }
          try {
            d.end();
          } catch (e) {
            if (!(e instanceof m.StreamError)) throw e;
          }
          outcomes.ok++;
        } catch (e) {
          if (e instanceof m.StreamError) outcomes.stream++;
          else outcomes.other.push(String(e));
        }
      }
      // Still alive: decode a proper stream.
      const d = new s.StreamDecoder();
      const got = d.push(enc.encode('data: {"choices":[{"index":0,"delta":{"content":"h\\u00e9"}}]}\n\ndata: [DONE]\n\n'));
      d.end();
      return { outcomes, got };
    });
    assert.deepEqual(r.outcomes.other, []);
    assert.ok(r.outcomes.ok > 0 && r.outcomes.stream > 0, JSON.stringify(r.outcomes));
    assert.deepEqual(r.got, [{ type: "content", text: "hé", choice: 0 }]);
  });

  test("no page errors", () => {
    assert.deepEqual(errors.map(String), []);
  });
});
