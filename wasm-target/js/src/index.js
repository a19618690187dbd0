// steadyllm — the JavaScript face of the WebAssembly core (steadyllm-wasm).
// Types: index.d.ts. The interface between this file and the wasm module is private: options
// and requests go in field by field (numbers and strings), deltas come out as batches (see
// decodeBatch).

import initWasm, { ChatInput, Decoder, Engine } from "./steadyllm_wasm.js";

let ready = null;
let loaded = false;

/** Loads the WebAssembly module (once). */
export function init(source) {
  if (!ready) {
    const arg = source === undefined ? undefined : { module_or_path: source };
    ready = initWasm(arg).then(
      () => {
        loaded = true;
      },
      (e) => {
        ready = null;
        throw e;
      },
    );
  }
  return ready;
}

// ------------------------------------------------------------------------------------ errors

export class SteadyLlmError extends Error {
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.partial = details.partial ?? "";
    this.attempts = details.attempts ?? 0;
    this.reason = details.reason ?? "invalid";
    if (details.status !== undefined) this.status = details.status;
    if (details.serverError !== undefined) this.serverError = details.serverError;
  }
}
export class InvalidRequestError extends SteadyLlmError {}
export class AbortError extends SteadyLlmError {
  constructor(message, details = {}) {
    super(message, details);
    this.abortReason = details.abortReason;
  }
}
export class TimeoutError extends SteadyLlmError {}
export class FirstByteTimeoutError extends TimeoutError {}
export class FirstTokenTimeoutError extends TimeoutError {}
export class IdleTimeoutError extends TimeoutError {}
export class TotalTimeoutError extends TimeoutError {}
export class ConnectionError extends SteadyLlmError {}
export class HttpError extends SteadyLlmError {}
export class RateLimitError extends HttpError {}
export class StreamError extends SteadyLlmError {
  constructor(message, details = {}) {
    super(message, details);
    this.kind = details.kind ?? "malformed";
  }
}
export class UnavailableError extends SteadyLlmError {}

// Stable names that survive minifiers.
for (const [cls, name] of [
  [SteadyLlmError, "SteadyLlmError"],
  [InvalidRequestError, "InvalidRequestError"],
  [AbortError, "AbortError"],
  [TimeoutError, "TimeoutError"],
  [FirstByteTimeoutError, "FirstByteTimeoutError"],
  [FirstTokenTimeoutError, "FirstTokenTimeoutError"],
  [IdleTimeoutError, "IdleTimeoutError"],
  [TotalTimeoutError, "TotalTimeoutError"],
  [ConnectionError, "ConnectionError"],
  [HttpError, "HttpError"],
  [RateLimitError, "RateLimitError"],
  [StreamError, "StreamError"],
  [UnavailableError, "UnavailableError"],
]) {
  Object.defineProperty(cls.prototype, "name", { value: name, writable: true, configurable: true });
}

const invalid = (message) => new InvalidRequestError(message, { reason: "invalid" });

function abortError(reason, partial, attempts) {
  return new AbortError("the call was aborted", {
    reason: "aborted",
    abortReason: reason,
    partial,
    attempts,
    cause: reason,
  });
}

const STREAM_KINDS = { network: 1, truncated: 1, malformed: 1, server_error: 1 };

// The wasm side rejects with { reason, failure (a code of FAILURES), status, attempts,
// serverError, retryAfterMs, message (invalid input only) }.
function toError(e, partial) {
  if (e instanceof SteadyLlmError) return e;
  if (e === null || typeof e !== "object" || typeof e.reason !== "string") {
    // Not from the engine (a wasm trap would land here): never lose it, never crash.
    return new SteadyLlmError(`internal error: ${e && e.message ? e.message : String(e)}`, {
      reason: "invalid",
      partial,
      cause: e,
    });
  }
  const failure = FAILURES[e.failure] ?? null;
  let message = callMessage(e, failure);
  if (e.serverError && e.serverError.message) message += `: ${e.serverError.message}`;
  const d = {
    reason: e.reason,
    partial,
    attempts: e.attempts,
    status: e.status,
    serverError: e.serverError,
  };
  switch (e.reason) {
    case "invalid":
      return new InvalidRequestError(message, d);
    case "deadline_exceeded":
      return new TotalTimeoutError(message, d);
    case "no_endpoint_available":
    case "budget_exhausted":
      return new UnavailableError(message, d);
    case "retry_after_too_long":
      return new RateLimitError(message, d);
  }
  switch (failure) {
    case "first_byte":
      return new FirstByteTimeoutError(message, d);
    case "first_token":
      return new FirstTokenTimeoutError(message, d);
    case "idle":
      return new IdleTimeoutError(message, d);
    case "connect":
      return new ConnectionError(message, d);
    case "status":
      return e.status === 429 ? new RateLimitError(message, d) : new HttpError(message, d);
  }
  if (STREAM_KINDS[failure]) return new StreamError(message, { ...d, kind: failure });
  return new SteadyLlmError(message, d);
}

// ------------------------------------------------------------------------------ the batches

// Reads one batch (see wasm-target/src/batch.rs) into delta objects.
function decodeBatch(w, t, out) {
  const n = w.length;
  let i = 0;
  while (i < n) {
    switch (w[i]) {
      case 1:
        out.push({ type: "content", text: t.slice(w[i + 2], w[i + 3]), choice: w[i + 1] });
        i += 4;
        break;
      case 2:
        out.push({ type: "reasoning", text: t.slice(w[i + 2], w[i + 3]), choice: w[i + 1] });
        i += 4;
        break;
      case 3:
        out.push({ type: "refusal", text: t.slice(w[i + 2], w[i + 3]), choice: w[i + 1] });
        i += 4;
        break;
      case 4: {
        const d = { type: "tool_call", choice: w[i + 1], index: w[i + 2], arguments: t.slice(w[i + 7], w[i + 8]) };
        if (w[i + 3] !== NONE) d.id = t.slice(w[i + 3], w[i + 4]);
        if (w[i + 5] !== NONE) d.name = t.slice(w[i + 5], w[i + 6]);
        out.push(d);
        i += 9;
        break;
      }
      case 5:
        out.push({ type: "finish", choice: w[i + 1], reason: t.slice(w[i + 2], w[i + 3]) });
        i += 4;
        break;
      case 6:
        out.push({ type: "usage", promptTokens: w[i + 1], completionTokens: w[i + 2], totalTokens: w[i + 3] });
        i += 4;
        break;
      case 7: {
        const d = {
          type: "retry",
          attempt: w[i + 1],
          delayMs: w[i + 2],
          reason: RETRY_REASONS[w[i + 3]] ?? "backoff",
          message: "",
        };
        const failure = FAILURES[w[i + 4]];
        if (w[i + 5]) d.status = w[i + 5];
        d.message = retryMessage(d, failure);
        out.push(d);
        i += 6;
        break;
      }
      case 8:
        out.push({
          type: "failover",
          from: w[i + 1],
          to: w[i + 2],
          message: `failing over from endpoint ${w[i + 1]} to endpoint ${w[i + 2]}`,
        });
        i += 3;
        break;
      case 9:
        out.push({ type: "discard", message: `restarting the answer: discard the ${w[i + 1]} bytes shown` });
        i += 2;
        break;
      case 10: // role: not surfaced
        i += 4;
        break;
      default:
        // Unknown record: the two sides disagree; stop rather than misread.
        return;
    }
  }
}
const NONE = 0xffffffff;
const RETRY_REASONS = ["backoff", "retry_after", "rate_limited"];
// Failure codes of wasm-target/src/batch.rs, by name (the error objects use the names).
const FAILURES = [null, "connect", "first_byte", "first_token", "idle", "status", "network", "truncated", "malformed", "server_error"];
const FAILURE_TEXT = {
  // fetch says no more than "Failed to fetch" for all of these.
  connect: "connection failed (network down, refused, DNS, TLS, or blocked by CORS)",
  first_byte: "no response head in time",
  first_token: "no first token in time",
  idle: "stream stalled",
  network: "stream reset",
  truncated: "stream truncated",
  malformed: "malformed stream",
  server_error: "server error in stream",
};
const BUSY = { 429: 1, 503: 1, 529: 1 };

function failureText(failure, status) {
  if (failure === "status") return `HTTP ${status}`;
  return FAILURE_TEXT[failure] ?? "failed";
}

/** `850 ms`, `2 s`, `1.5 s`. */
function duration(ms) {
  if (ms < 1000) return `${ms} ms`;
  return `${Math.round(ms / 100) / 10} s`;
}

function retryMessage(d, failure) {
  if (d.reason === "rate_limited") return `rate limit reached — continuing in ${duration(d.delayMs)}`;
  const what = failure === "status" && BUSY[d.status] ? "server busy" : failureText(failure, d.status);
  return `${what} — retrying in ${duration(d.delayMs)}`;
}

function callMessage(e, failure) {
  const last = failure ? failureText(failure, e.status) : null;
  const n = e.attempts;
  switch (e.reason) {
    case "deadline_exceeded":
      return `deadline exceeded after ${n} attempt${n === 1 ? "" : "s"}${last ? `; last: ${last}` : ""}`;
    case "retries_exhausted":
      return `gave up after ${n} attempt${n === 1 ? "" : "s"}; last: ${last}`;
    case "budget_exhausted":
      return `retry budget exhausted (likely an outage); last: ${last}`;
    case "not_retryable":
      return `${last} (not retryable)`;
    case "partial_output":
      return `${last} after part of the answer was delivered`;
    case "retry_after_too_long":
      return `server asked to retry after ${duration(e.retryAfterMs ?? 0)}, longer than allowed`;
    case "no_endpoint_available":
      return "no endpoint available: all are cooling down after repeated failures";
    default:
      return e.message ?? e.reason;
  }
}

// ----------------------------------------------------------------------------- checking input

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isStr = (v) => typeof v === "string";

function count(v, what, min = 0) {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || Math.floor(v) !== v || v > Number.MAX_SAFE_INTEGER) {
    throw invalid(`${what} must be an integer ≥ ${min}`);
  }
  return v;
}

// Positions of the engine's numbers (wasm-target/src/input.rs, mod cfg); UNSET keeps a default.
const UNSET = 0xffffffff;
const CFG = {
  maxAttempts: 0,
  baseDelayMs: 1,
  maxDelayMs: 2,
  maxRetryAfterMs: 3,
  restartOnPartial: 4,
  budgetPermille: 5,
  threshold: 6,
  cooldownMs: 7,
  firstByteMs: 8,
  firstTokenMs: 9,
  idleMs: 10,
  totalMs: 11,
};
const MAX_MS = 0xfffffffe;

function ms(v, what, min = 0) {
  const n = count(v, what, min);
  if (n > MAX_MS) throw invalid(`${what} is too large`);
  return n;
}

// Checks the options; returns what the engine is made from.
function checkOptions(o) {
  if (!isObj(o)) throw invalid("new Client(options): options must be an object");
  const eps = o.endpoints;
  if (!Array.isArray(eps) || eps.length < 1 || eps.length > 4) {
    throw invalid("options.endpoints must list 1 to 4 endpoints");
  }
  if (o.model !== undefined && !isStr(o.model)) throw invalid("options.model must be a string");
  const model = o.model ?? "";
  const numbers = new Uint32Array(12).fill(UNSET);
  const endpoints = eps.map((e, i) => {
    if (!isObj(e) || !isStr(e.baseUrl)) throw invalid(`endpoints[${i}].baseUrl must be a string`);
    let url;
    try {
      url = new URL(e.baseUrl);
    } catch {
      throw invalid(`endpoints[${i}].baseUrl is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw invalid(`endpoints[${i}].baseUrl must be http:// or https://`);
    }
    for (const k of ["apiKey", "model"]) {
      if (e[k] !== undefined && e[k] !== null && !isStr(e[k])) throw invalid(`endpoints[${i}].${k} must be a string`);
    }
    if (e.dialect !== undefined && e.dialect !== "openai" && e.dialect !== "anthropic") {
      throw invalid(`endpoints[${i}].dialect must be "openai" or "anthropic"`);
    }
    let headers = "";
    if (e.headers !== undefined) {
      if (!isObj(e.headers)) throw invalid(`endpoints[${i}].headers must be an object`);
      headers = Object.entries(e.headers)
        .map(([k, v]) => {
          // Values may be secrets: never quote them.
          if (!isStr(v) || /[\0-\x08\x0a-\x1f\x7f]/.test(v)) {
            throw invalid(`endpoints[${i}].headers.${k}: the value must be a string without control characters`);
          }
          if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) throw invalid(`endpoints[${i}].headers: "${k}" is not a valid name`);
          return `${k}\n${v}`;
        })
        .join("\n");
    }
    const m = isStr(e.model) ? e.model : undefined;
    if (m === undefined && model === "") {
      throw invalid(`endpoints[${i}] has no model: set options.model or the endpoint's model`);
    }
    return { baseUrl: e.baseUrl, apiKey: isStr(e.apiKey) ? e.apiKey : undefined, model: m, anthropic: e.dialect === "anthropic", headers };
  });
  const t = o.timeouts;
  if (t !== undefined) {
    if (!isObj(t)) throw invalid("options.timeouts must be an object");
    for (const k of ["firstByteMs", "firstTokenMs", "idleMs", "totalMs"]) {
      if (t[k] !== undefined) numbers[CFG[k]] = ms(t[k], `timeouts.${k}`, 1);
    }
  }
  const r = o.retries;
  if (r !== undefined) {
    if (!isObj(r)) throw invalid("options.retries must be an object");
    if (r.maxAttempts !== undefined) numbers[CFG.maxAttempts] = ms(r.maxAttempts, "retries.maxAttempts", 1);
    for (const k of ["baseDelayMs", "maxDelayMs", "maxRetryAfterMs"]) {
      if (r[k] !== undefined) numbers[CFG[k]] = ms(r[k], `retries.${k}`);
    }
    if (r.restartOnPartial !== undefined) numbers[CFG.restartOnPartial] = r.restartOnPartial ? 1 : 0;
    if (r.budgetRatio !== undefined) {
      if (typeof r.budgetRatio !== "number" || !(r.budgetRatio >= 0 && r.budgetRatio <= 1000)) {
        throw invalid("retries.budgetRatio must be a number ≥ 0");
      }
      numbers[CFG.budgetPermille] = Math.round(r.budgetRatio * 1000);
    }
  }
  const b = o.breaker;
  if (b !== undefined) {
    if (!isObj(b)) throw invalid("options.breaker must be an object");
    if (b.threshold !== undefined) numbers[CFG.threshold] = ms(b.threshold, "breaker.threshold", 1);
    if (b.cooldownMs !== undefined) numbers[CFG.cooldownMs] = ms(b.cooldownMs, "breaker.cooldownMs");
  }
  return { numbers, model, endpoints };
}

const ROLES = { system: 0, developer: 1, user: 2, assistant: 3, tool: 4 };

function checkMessage(m, i) {
  if (!isObj(m) || !isStr(m.role)) throw invalid(`messages[${i}] needs a role`);
  if (!(m.role in ROLES)) throw invalid(`messages[${i}].role must be system, developer, user, assistant or tool`);
  const c = m.content;
  if (c !== undefined && c !== null && !isStr(c)) {
    if (!Array.isArray(c)) throw invalid(`messages[${i}].content must be a string, an array of parts, or null`);
    c.forEach((p, j) => {
      const ok =
        (isObj(p) && p.type === "text" && isStr(p.text)) ||
        (isObj(p) && p.type === "image_url" && isStr(p.imageUrl) && (p.detail === undefined || isStr(p.detail)));
      if (!ok) throw invalid(`messages[${i}].content[${j}] must be { type: "text", text } or { type: "image_url", imageUrl }`);
    });
  }
  for (const k of ["name", "toolCallId"]) {
    if (m[k] !== undefined && !isStr(m[k])) throw invalid(`messages[${i}].${k} must be a string`);
  }
  if (m.role === "tool" && !isStr(m.toolCallId)) throw invalid(`messages[${i}]: a tool message needs toolCallId`);
  if (m.toolCalls !== undefined) {
    if (!Array.isArray(m.toolCalls)) throw invalid(`messages[${i}].toolCalls must be an array`);
    m.toolCalls.forEach((t, j) => {
      if (!isObj(t) || !isStr(t.id) || !isStr(t.name) || !isStr(t.arguments)) {
        throw invalid(`messages[${i}].toolCalls[${j}] needs string id, name and arguments`);
      }
    });
  }
}

// Checks a request (before anything is loaded or sent).
function checkRequest(r) {
  if (!isObj(r) || !Array.isArray(r.messages) || r.messages.length === 0) {
    throw invalid("request.messages must be a non-empty array");
  }
  r.messages.forEach(checkMessage);
  if (r.model !== undefined && !isStr(r.model)) throw invalid("request.model must be a string");
  if (r.maxTokens !== undefined) ms(r.maxTokens, "maxTokens", 1);
  if (r.maxCompletionTokens !== undefined) ms(r.maxCompletionTokens, "maxCompletionTokens", 1);
  for (const k of ["temperature", "topP"]) {
    if (r[k] !== undefined && (typeof r[k] !== "number" || !Number.isFinite(r[k]) || Math.abs(r[k]) >= 1e6)) {
      throw invalid(`${k} must be a finite number`);
    }
  }
  if (r.stop !== undefined && (!Array.isArray(r.stop) || !r.stop.every(isStr))) throw invalid("stop must be an array of strings");
  if (r.seed !== undefined && !Number.isSafeInteger(r.seed)) throw invalid("seed must be a safe integer");
  if (r.user !== undefined && !isStr(r.user)) throw invalid("user must be a string");
  if (r.tools !== undefined) {
    if (!Array.isArray(r.tools)) throw invalid("tools must be an array");
    r.tools.forEach((t, i) => {
      if (!isObj(t) || !isStr(t.name) || t.name === "") throw invalid(`tools[${i}] needs a name`);
      if (t.description !== undefined && !isStr(t.description)) throw invalid(`tools[${i}].description must be a string`);
      if (t.parameters !== undefined && !isObj(t.parameters)) throw invalid(`tools[${i}].parameters must be a JSON Schema object`);
    });
  }
  const c = r.toolChoice;
  if (c !== undefined && c !== "auto" && c !== "none" && c !== "required" && !(isObj(c) && isStr(c.name))) {
    throw invalid('toolChoice must be "auto", "none", "required" or { name }');
  }
}

// The checked request as the engine's ChatInput.
function toInput(r) {
  const q = new ChatInput(r.model ?? "");
  for (const m of r.messages) {
    const c = m.content;
    q.message(ROLES[m.role], isStr(c) ? c : undefined, m.name, m.toolCallId);
    if (Array.isArray(c)) {
      for (const p of c) {
        if (p.type === "text") q.text_part(p.text);
        else q.image_part(p.imageUrl, p.detail);
      }
    }
    for (const t of m.toolCalls ?? []) q.tool_call(t.id, t.name, t.arguments);
  }
  q.numbers(r.maxTokens ?? 0, r.maxCompletionTokens ?? 0, r.temperature ?? NaN, r.topP ?? NaN, r.seed ?? NaN);
  for (const s of r.stop ?? []) q.stop(s);
  if (r.user !== undefined) q.user(r.user);
  for (const t of r.tools ?? []) {
    let params;
    if (t.parameters !== undefined) {
      try {
        params = JSON.stringify(t.parameters);
      } catch (e) {
        q.free();
        throw invalid(`tool ${t.name}: parameters cannot be serialised: ${e && e.message}`);
      }
    }
    q.tool(t.name, t.description, params);
  }
  const c = r.toolChoice;
  if (c !== undefined) {
    const kind = { auto: 0, none: 1, required: 2 }[c];
    q.tool_choice(kind ?? 3, kind === undefined ? c.name : undefined);
  }
  return q;
}

// ---------------------------------------------------------------------------------- the call

function seed32() {
  const a = new Uint32Array(2);
  globalThis.crypto.getRandomValues(a);
  return a;
}

// Runs one call; yields deltas; returns { attempts, endpoint }.
async function* runCall(client, request, options) {
  const signal = options && options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid("options.signal must be an AbortSignal");
  checkRequest(request);
  if (signal && signal.aborted) throw abortError(signal.reason, "", 0);
  await init();
  if (signal && signal.aborted) throw abortError(signal.reason, "", 0);
  const engine = client._engine();
  // Checked again: the caller may have changed the request while the module loaded.
  checkRequest(request);
  const input = toInput(request);
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  if (signal) signal.addEventListener("abort", onAbort, { once: true });
  const queue = [];
  let head = 0;
  let settled = null;
  let wake = null;
  const poke = () => {
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  const sink = (words, text) => {
    decodeBatch(words, text, queue);
    poke();
  };
  let partial = "";
  let attempts = 0;
  let call;
  try {
    call = engine.chat(input, sink, ctl.signal);
  } catch (e) {
    throw toError(e, "");
  }
  call
    .then(
      (v) => (settled = { ok: true, v }),
      (e) => (settled = { ok: false, e }),
    )
    .then(poke);
  try {
    for (;;) {
      if (signal && signal.aborted) throw abortError(signal.reason, partial, attempts);
      if (head < queue.length) {
        const d = queue[head];
        queue[head++] = undefined;
        if (head > 1024 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        if (d.type === "content") partial += d.text;
        else if (d.type === "discard") partial = "";
        else if (d.type === "retry") attempts = d.attempt - 1;
        yield d;
        continue;
      }
      if (settled) {
        if (settled.ok) return settled.v;
        if (settled.e && settled.e.reason === "aborted") {
          throw abortError(signal ? signal.reason : undefined, partial, settled.e.attempts);
        }
        throw toError(settled.e, partial);
      }
      await new Promise((r) => (wake = r));
    }
  } finally {
    ctl.abort();
    if (signal) signal.removeEventListener("abort", onAbort);
  }
}

function emptyCompletion() {
  return {
    text: "",
    reasoning: "",
    refusal: "",
    toolCalls: [],
    finishReason: null,
    usage: null,
    attempts: 0,
    endpoint: 0,
  };
}

async function complete(client, request, options) {
  const it = runCall(client, request, options);
  let c = emptyCompletion();
  const calls = new Map();
  for (;;) {
    const r = await it.next();
    if (r.done) {
      c.attempts = r.value.attempts;
      c.endpoint = r.value.endpoint;
      c.toolCalls = [...calls.values()].sort((a, b) => a.index - b.index);
      return c;
    }
    const d = r.value;
    switch (d.type) {
      case "content":
        if (d.choice === 0) c.text += d.text;
        break;
      case "reasoning":
        if (d.choice === 0) c.reasoning += d.text;
        break;
      case "refusal":
        if (d.choice === 0) c.refusal += d.text;
        break;
      case "tool_call": {
        if (d.choice !== 0) break;
        let t = calls.get(d.index);
        if (!t) calls.set(d.index, (t = { index: d.index, id: "", name: "", arguments: "" }));
        if (d.id) t.id = d.id;
        if (d.name) t.name += d.name;
        t.arguments += d.arguments;
        break;
      }
      case "finish":
        if (d.choice === 0) c.finishReason = d.reason;
        break;
      case "usage":
        c.usage = { promptTokens: d.promptTokens, completionTokens: d.completionTokens, totalTokens: d.totalTokens };
        break;
      case "discard":
        c = emptyCompletion();
        calls.clear();
        break;
    }
  }
}

export class Client {
  #options;
  #engine = null;

  constructor(options) {
    this.#options = checkOptions(options);
    if (loaded) this._engine();
    const self = this;
    this.chat = Object.freeze({
      stream(request, options) {
        return runCall(self, request, options);
      },
      complete(request, options) {
        return complete(self, request, options);
      },
      async batch(requests, options = {}) {
        if (!Array.isArray(requests)) throw invalid("batch(requests): requests must be an array");
        const limit = options.concurrency === undefined ? 4 : count(options.concurrency, "concurrency", 1);
        const out = new Array(requests.length);
        let next = 0;
        const worker = async () => {
          while (next < requests.length) {
            const i = next++;
            try {
              out[i] = { status: "fulfilled", value: await complete(self, requests[i], { signal: options.signal }) };
            } catch (e) {
              out[i] = { status: "rejected", reason: e instanceof SteadyLlmError ? e : toError(e, "") };
            }
          }
        };
        await Promise.all(Array.from({ length: Math.min(limit, requests.length) }, worker));
        return out;
      },
    });
  }

  /** @internal */
  _engine() {
    if (!this.#engine) {
      const s = seed32();
      const o = this.#options;
      let engine;
      try {
        engine = new Engine(o.numbers, o.model, s[0], s[1]);
        o.endpoints.forEach((e, i) => {
          try {
            engine.add_endpoint(e.baseUrl, e.apiKey, e.model, e.anthropic, e.headers);
          } catch (err) {
            throw new Error(`endpoints[${i}]: ${err && err.message}`);
          }
        });
      } catch (e) {
        engine?.free();
        throw invalid(e && e.message ? e.message : String(e));
      }
      this.#engine = engine;
    }
    return this.#engine;
  }

  health() {
    const eps = this.#options.endpoints;
    const h = this.#engine ? this.#engine.health() : eps.map(() => 1);
    return eps.map((e, i) => ({ baseUrl: e.baseUrl, available: h[i] === 1, coolingDown: h[i] === 2 }));
  }
}

// ------------------------------------------------------------------------- stream decoder

const DECODER_FAULTS = [null, "malformed", "server_error"];

export class StreamDecoder {
  #d;
  #out = [];
  #sink = (w, t) => decodeBatch(w, t, this.#out);

  constructor(options = {}) {
    if (!loaded) throw invalid("StreamDecoder: call `await init()` first");
    this.#d = new Decoder(options.dialect === "anthropic");
  }

  push(chunk) {
    if (!(chunk instanceof Uint8Array)) throw invalid("StreamDecoder.push takes a Uint8Array");
    const out = (this.#out = []);
    const code = this.#d.push(chunk, this.#sink);
    if (code === 1 || code === 2) {
      throw new StreamError(`stream decoder: ${DECODER_FAULTS[code].replace("_", " ")} event`, {
        reason: "invalid",
        kind: DECODER_FAULTS[code],
      });
    }
    return out;
  }

  end() {
    if (!this.#d.end()) {
      throw new StreamError("stream ended without its end marker", { reason: "invalid", kind: "truncated" });
    }
  }
}
