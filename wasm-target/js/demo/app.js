// The steadyllm demo chat: streams an answer, stops it on request, and shows every retry,
// failover and restart the client makes on the way.
//
// Query parameters (set by `npm run demo`):
//   mock=http://127.0.0.1:PORT   the mock server from the tests crate; the default base URL and
//                                the target of the chaos switch
//   pace=MS                      pause between the mock's events in the scripts this page sets
//                                (default 40), so the answer visibly streams
import * as steadyllm from "../dist/index.js";

const { Client, AbortError, init } = steadyllm;

const $ = (id) => document.getElementById(id);
const ui = {
  transcript: $("transcript"),
  empty: $("empty"),
  status: $("status"),
  form: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  baseUrl: $("baseUrl"),
  fallbackUrl: $("fallbackUrl"),
  apiKey: $("apiKey"),
  model: $("model"),
  chaos: $("chaos"),
  mockInfo: $("mockInfo"),
  turn: $("turn"),
};

const params = new URLSearchParams(location.search);
const MOCK = originOf(params.get("mock"));
const PACE = clampInt(params.get("pace"), 40, 0, 2000);

// Against the mock, short timeouts make the chaos visible within seconds. Against a real API
// the package's defaults (which grow with the request) apply.
const MOCK_TIMEOUTS = { firstByteMs: 2000, firstTokenMs: 4000, idleMs: 4000, totalMs: 60000 };
const RETRIES = { baseDelayMs: 400, maxDelayMs: 4000, restartOnPartial: true };

/** What the mock does when the chaos switch is off: a normal answer, paced. */
const CALM = { steps: [], then: { fault: "ok", delay_between_events_ms: PACE } };
/** Chaos: no response head (the first-byte timeout fires), busy (429, Retry-After 1 s), a
 * connection reset after a few words (the answer restarts), then a normal answer. */
const CHAOS = {
  steps: [
    { fault: "stall_before_headers", ms: 30000 },
    { fault: "status", code: 429, retry_after: "1" },
    { fault: "reset_after", events: 5, delay_between_events_ms: PACE },
  ],
  then: { fault: "ok", delay_between_events_ms: PACE },
};

/** The conversation so far: only turns that completed are sent again. */
const history = [];
let running = null; // { controller } while a call is in flight
let cachedClient = null;
let cachedKey = "";

function originOf(s) {
  if (!s) return null;
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : null;
  } catch {
    return null;
  }
}

function clampInt(s, dflt, min, max) {
  const n = Number.parseInt(s ?? "", 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : dflt;
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

/** The base URL points at the mock server (so the chaos switch can act on it). */
function atMock() {
  return MOCK !== null && originOf(ui.baseUrl.value.trim()) === MOCK;
}

function refreshChaos() {
  const usable = atMock();
  ui.chaos.disabled = !usable || running !== null;
  if (!usable) ui.chaos.checked = false;
}

async function mockScript(script) {
  const r = await fetch(`${MOCK}/__control/script`, { method: "POST", body: JSON.stringify(script) });
  if (!r.ok) throw new Error(`the mock refused the script: HTTP ${r.status}`);
}

/** One client per settings: calls through it share breakers, rate-limit pauses and budget. */
function client() {
  const baseUrl = ui.baseUrl.value.trim();
  const fallback = ui.fallbackUrl.value.trim();
  const apiKey = ui.apiKey.value;
  const model = ui.model.value.trim();
  const endpoints = [{ baseUrl, apiKey }];
  if (fallback) endpoints.push({ baseUrl: fallback, apiKey });
  const options = { endpoints, model, retries: RETRIES };
  if (atMock()) options.timeouts = MOCK_TIMEOUTS;
  const key = JSON.stringify(options);
  if (key !== cachedKey) {
    cachedClient = new Client(options); // throws InvalidRequestError on bad settings
    cachedKey = key;
  }
  return cachedClient;
}

function addTurn(prompt) {
  ui.empty.hidden = true;
  const node = ui.turn.content.firstElementChild.cloneNode(true);
  node.querySelector(".user .text").textContent = prompt;
  ui.transcript.append(node);
  const a = node.querySelector(".assistant");
  const text = a.querySelector(".text");
  const out = document.createTextNode("");
  text.append(out);
  return {
    el: a,
    out,
    notices: a.querySelector(".notices"),
    error: a.querySelector(".error"),
    meta: a.querySelector(".meta"),
    setState: (s) => (a.dataset.state = s),
    scroll: () => (ui.transcript.scrollTop = ui.transcript.scrollHeight),
  };
}

function notice(turn, kind, message) {
  const li = document.createElement("li");
  li.className = `notice ${kind}`;
  li.textContent = message;
  turn.notices.append(li);
}

function busy(on) {
  ui.send.disabled = on;
  ui.stop.disabled = !on;
  for (const el of [ui.baseUrl, ui.fallbackUrl, ui.apiKey, ui.model]) el.disabled = on;
  refreshChaos();
}

async function send(prompt) {
  const turn = addTurn(prompt);
  const controller = new AbortController();
  running = { controller };
  busy(true);
  turn.scroll();
  const messages = [...history, { role: "user", content: prompt }];
  let text = "";
  let stale = false; // a `discard` came: `text` is replaced when new content arrives
  let finish = null;
  let usage = null;
  // The attempt under way. `stream` does not report the count at its end, so follow the
  // notices: a retry names the next attempt; a failover starts the next one at once.
  let attempt = 1;
  try {
    const c = client();
    if (ui.chaos.checked && atMock()) {
      await mockScript(CHAOS);
      notice(turn, "info", "chaos on: the mock server will misbehave before it answers");
    }
    setStatus("waiting", "waiting for the server…");
    for await (const d of c.chat.stream({ messages }, { signal: controller.signal })) {
      switch (d.type) {
        case "content":
          if (stale) {
            // The restarted answer begins: replace the broken one.
            stale = false;
            text = "";
            turn.out.data = "";
            turn.el.classList.remove("stale");
          }
          if (text === "") {
            turn.setState("streaming");
            setStatus("streaming", attempt > 1 ? `streaming (attempt ${attempt})…` : "streaming…");
          }
          text += d.text;
          turn.out.appendData(d.text);
          turn.scroll();
          break;
        case "retry":
          attempt = d.attempt;
          notice(turn, "retry", d.message);
          setStatus("retrying", d.message);
          break;
        case "failover":
          attempt += 1;
          notice(turn, "failover", d.message);
          setStatus("retrying", d.message);
          break;
        case "discard":
          // The answer broke off and will start over: the text shown so far goes once the new
          // answer begins (until then it stays, dimmed, and it stays if no new answer comes).
          stale = text !== "";
          if (stale) turn.el.classList.add("stale");
          turn.setState("waiting");
          notice(turn, "discard", "answer interrupted — it will start over");
          break;
        case "finish":
          finish = d.reason;
          break;
        case "usage":
          usage = d;
          break;
        // reasoning, refusal and tool-call fragments: not shown by this demo
      }
    }
    turn.setState("done");
    const parts = [`${attempt} attempt${attempt === 1 ? "" : "s"}`];
    if (finish) parts.push(`finish: ${finish}`);
    if (usage) parts.push(`${usage.totalTokens} tokens`);
    turn.meta.textContent = parts.join(" · ");
    setStatus("done", `done · ${parts.join(" · ")}`);
    history.push({ role: "user", content: prompt }, { role: "assistant", content: text });
  } catch (e) {
    // The partial text stays on screen either way.
    if (e instanceof AbortError) {
      turn.setState("stopped");
      turn.meta.textContent = "stopped";
      setStatus("stopped", "stopped");
    } else {
      turn.setState("error");
      turn.error.hidden = false;
      turn.error.textContent = describe(e);
      setStatus("error", describe(e));
    }
  } finally {
    turn.el.classList.remove("stale");
    running = null;
    busy(false);
    ui.prompt.focus();
  }
}

function describe(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `Error: ${String(e)}`;
}

ui.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const prompt = ui.prompt.value.trim();
  if (!prompt || running) return;
  ui.prompt.value = "";
  send(prompt);
});

ui.prompt.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => {
  running?.controller.abort(new DOMException("stopped by the user", "AbortError"));
});

ui.baseUrl.addEventListener("input", refreshChaos);

ui.chaos.addEventListener("change", async () => {
  if (ui.chaos.checked) {
    setStatus("idle", "chaos on: the next message meets a stall, a 429 and a reset before it is answered");
    return; // armed at every send
  }
  try {
    await mockScript(CALM);
    setStatus("idle", "chaos off");
  } catch (e) {
    setStatus("error", `cannot reach the mock server: ${describe(e)}`);
  }
});

async function main() {
  if (MOCK) {
    ui.baseUrl.value = `${MOCK}/v1`;
    ui.apiKey.value = "sk-demo-not-a-real-key";
    ui.mockInfo.textContent = `Mock server: ${MOCK} (answers are paced ${PACE} ms per word; timeouts are short so chaos resolves quickly).`;
  } else {
    ui.mockInfo.textContent = "No mock server given (open this page with ?mock=http://127.0.0.1:PORT, or run `npm run demo`). Enter a base URL, key and model.";
  }
  refreshChaos();
  await init();
  let note = "ready";
  if (MOCK) {
    try {
      await mockScript(CALM); // a known state after a reload
    } catch (e) {
      note = `ready, but the mock server did not answer (${describe(e)})`;
    }
  }
  ui.send.disabled = false;
  setStatus("idle", note);
  ui.prompt.focus();
  window.steadyllm = steadyllm; // for the console; its presence also tells tests the page is ready
}

main().catch((e) => setStatus("error", `cannot start: ${describe(e)}`));
