// steadyllm — the JavaScript face of the WebAssembly core (steadyllm-wasm). Built three times
// (scripts/build.mjs): `__ANTHROPIC__` is true for `steadyllm/anthropic`, whose module decodes
// Anthropic's events too, `__RESPONSES__` for `steadyllm/responses`, whose module speaks
// OpenAI's Responses API and resumes a broken answer exactly; both false for the default entry.
// Types: index.d.ts. The module is sans-IO: it decides (attempt, sleep, give up) and decodes;
// this file does the IO — fetch, timers, abort — and builds the request bodies. What crosses
// is numbers and bytes; results come back as batches of records (see decodeBatch).

let ready = null;
let loaded = false;
let memory = null;
// The module's exports: a C ABI of numbers and addresses in its memory
// (wasm-target/src/abi.rs). Engine and Chat below are those functions and nothing more.
let x = null;

// Engines live as long as their Client, which has no close(): freed when it is collected.
const engines = new FinalizationRegistry((p) => x.engine_free(p));

class Engine {
  // Undefined when the module refuses the settings (the wrapper checked them first).
  // dialects: bit i, endpoint i is Anthropic; bit 4 + i, OpenAI's Responses API.
  static create(numbers, endpoints, dialects, seedLo, seedHi) {
    const p = x.engine_create(...numbers, endpoints, dialects, seedLo, seedHi);
    if (!p) return;
    const e = new Engine();
    e.p = p;
    engines.register(e, p);
    return e;
  }
  health(now) {
    return x.engine_health(this.p, now) >>> 0;
  }
}

class Chat {
  constructor(engine, now, promptBytes, maxTokens, kind) {
    this.p = x.chat_new(engine.p, now, promptBytes, maxTokens, kind | 0);
  }
  next(engine, now) {
    x.chat_next(this.p, engine.p, now);
  }
  // Bytes in: into the chat's input buffer, then its length to the call that reads them.
  put(bytes) {
    new Uint8Array(memory.buffer, x.chat_input(this.p, bytes.length) >>> 0, bytes.length).set(bytes);
    return bytes.length;
  }
  head(status, headers) {
    x.chat_head(this.p, status, this.put(headers));
  }
  feed(bytes) {
    return x.chat_feed(this.p, this.put(bytes));
  }
  // The attempt timer's deadlines (performance.now() ms): as the request goes out, and before
  // each read of the body.
  sent(now) {
    return x.chat_sent(this.p, now);
  }
  wait(now) {
    return x.chat_wait(this.p, now);
  }
  end(engine, now, how) {
    x.chat_end(this.p, engine.p, now, how);
  }
  size() {
    return x.chat_size(this.p);
  }
  words() {
    return x.chat_words(this.p) >>> 0;
  }
  free() {
    x.chat_free(this.p);
    this.p = 0;
  }
}

// The module, compiled: from next to this file, or from what the caller passed to init().
async function compile(source) {
  if (source instanceof WebAssembly.Module) return source;
  // The pattern bundlers recognise (they copy the file along).
  let s = (await source) ?? new URL("steadyllm_wasm_bg.wasm", import.meta.url);
  if (typeof s === "string" || s instanceof URL || s instanceof Request) s = await fetch(s);
  if (s instanceof Response) {
    if (!s.ok) throw new Error(`steadyllm: fetching the WebAssembly module failed: HTTP ${s.status}`);
    s = await s.arrayBuffer();
  }
  return WebAssembly.compile(s);
}

/** Loads the WebAssembly module (once). */
export function init(source) {
  if (!ready) {
    ready = compile(source).then(
      async (module) => {
        // The module imports nothing.
        x = (await WebAssembly.instantiate(module, {})).exports;
        memory = x.memory;
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

// A failed call's done record, as decodeBatch reads it: { reason, failure (a code of
// FAILURES), status, attempts, retryAfterMs }, plus the server's error object.
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

// Reads one batch (see wasm-target/src/batch.rs): deltas and notices go to `out`, a server
// error object to `st.server`; returns the step record (kinds 12–14) if there is one.
function decodeBatch(w, t, out, st) {
  const str = (a, b) => (a === NONE ? undefined : t.slice(a, b));
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
      case 4: // a fragment
      case 15: {
        // a whole call (the core's assembler joined its fragments)
        const d = { type: w[i] === 4 ? "tool_call" : "tool_call_done", choice: w[i + 1], index: w[i + 2], arguments: t.slice(w[i + 7], w[i + 8]) };
        const [id, name] = [str(w[i + 3], w[i + 4]), str(w[i + 5], w[i + 6])];
        if (id !== undefined) d.id = id;
        if (name !== undefined) d.name = name;
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
      case 11: {
        const e = { message: str(w[i + 2], w[i + 3]) };
        const [type, code, param] = [str(w[i + 4], w[i + 5]), str(w[i + 6], w[i + 7]), str(w[i + 8], w[i + 9])];
        if (type !== undefined) e.type = type;
        if (code !== undefined) e.code = code;
        if (param !== undefined) e.param = param;
        if (st) st.server = e;
        i += 10;
        break;
      }
      case 12: {
        const e = { reason: REASONS[w[i + 4]], attempts: w[i + 2], endpoint: w[i + 3], failure: w[i + 5] };
        if (w[i + 6]) e.status = w[i + 6];
        if (w[i + 7]) e.retryAfterMs = w[i + 7];
        return e;
      }
      case 13:
        return {
          attempt: w[i + 1],
          endpoint: w[i + 2],
          retry: w[i + 3],
          firstByte: w[i + 4],
          firstToken: w[i + 5],
          idle: w[i + 6],
          deadline: w[i + 7],
        };
      case 14:
        return { sleep: w[i + 1] };
      default:
        // 16: the next attempt resumes the answer (Responses; only that entry's module
        // writes it).
        if (__RESPONSES__ && w[i] === 16) {
          out.push({ type: "resume", after: w[i + 1], id: t.slice(w[i + 2], w[i + 3]), message: `resuming the answer after event ${w[i + 1]}` });
          i += 4;
          break;
        }
        // Unknown record: the two sides disagree; stop rather than misread.
        return;
    }
  }
}

// The batch an export left in `o` (a Chat): see decodeBatch. Its n record words are followed
// by where its UTF-8 text lies in the module's memory and how long it is.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
function take(o, out, st) {
  const n = o.size();
  if (n === 0) return;
  const w = new Uint32Array(memory.buffer, o.words(), n + 2);
  return decodeBatch(w.subarray(0, n), utf8.decode(new Uint8Array(memory.buffer, w[n], w[n + 1])), out, st);
}
const NONE = 0xffffffff;
const RETRY_REASONS = ["backoff", "retry_after", "rate_limited"];
// Reason codes of done records (batch.rs, mod reason).
const REASONS = [
  "ok",
  "deadline_exceeded",
  "retries_exhausted",
  "budget_exhausted",
  "not_retryable",
  "partial_output",
  "retry_after_too_long",
  "no_endpoint_available",
];
// Failure codes of wasm-target/src/batch.rs, by name (the error objects use the names).
const FAILURES = [null, "connect", "first_byte", "first_token", "idle", "status", "network", "truncated", "malformed", "server_error", "answer_failed", "answer_incomplete"];
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
  answer_failed: "the server ended the answer as failed",
  answer_incomplete: "the server ended the answer incomplete",
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
      return "no endpoint available: all rate-limited past the deadline";
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

// The engine's numbers in the order of wasm-target/src/input.rs (mod cfg): where each option
// lives and its least value. UNSET keeps the engine's default.
const UNSET = 0xffffffff;
const NUMBERS = [
  ["retries", "maxAttempts", 1],
  ["retries", "baseDelayMs", 0],
  ["retries", "maxDelayMs", 0],
  ["retries", "maxRetryAfterMs", 0],
  ["retries", "restartOnPartial"],
  ["retries", "budgetRatio"],
  ["breaker", "threshold", 1],
  ["breaker", "cooldownMs", 0],
  ["timeouts", "firstByteMs", 1],
  ["timeouts", "firstTokenMs", 1],
  ["timeouts", "idleMs", 1],
  ["timeouts", "totalMs", 1],
];
const MAX_MS = 0xfffffffe;

function ms(v, what, min = 0) {
  const n = count(v, what, min);
  if (n > MAX_MS) throw invalid(`${what} is too large`);
  return n;
}

// A header value as the core writes it, UTF-8, for fetch, which sends each character below
// 256 as that byte (and refuses others).
function bytes(v) {
  let s = "";
  for (const b of utf8Encoder.encode(v)) s += String.fromCharCode(b);
  return s;
}

// Percent-encoding as the core does it: all but A-Z a-z 0-9 - . _ ~.
const pct = (v) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());

// Checks the options; returns what the engine is made from.
function checkOptions(o) {
  if (!isObj(o)) throw invalid("new Client(options): options must be an object");
  const eps = o.endpoints;
  if (!Array.isArray(eps) || eps.length < 1 || eps.length > 4) {
    throw invalid("options.endpoints must list 1 to 4 endpoints");
  }
  if (o.model !== undefined && !isStr(o.model)) throw invalid("options.model must be a string");
  const model = o.model ?? "";
  const reasoning = o.reasoningModels ?? [];
  if (!Array.isArray(reasoning) || !reasoning.every(isStr)) throw invalid("options.reasoningModels must list strings");
  const endpoints = eps.map((e, i) => {
    if (!isObj(e) || !isStr(e.baseUrl)) throw invalid(`endpoints[${i}].baseUrl must be a string`);
    let url;
    try {
      url = new URL(e.baseUrl);
    } catch {
      throw invalid(`endpoints[${i}].baseUrl is not a URL`);
    }
    // The core's rules on the string as written (URL quietly fixes what the core refuses:
    // blanks, a bare ? or #, backslashes, . and .. segments (the core refuses any segment
    // starting with a dot), an empty or 0 port); no query, fragment or credentials.
    const raw = /^https?:\/\/(.*)$/i.exec(e.baseUrl)?.[1];
    if (raw === undefined) throw invalid(`endpoints[${i}].baseUrl must be http:// or https://`);
    if (/[^\x21-\x7e]|[?#@\\]|\/\.|^(\[[^\]]*\]|[^/:]*):0*(\/|$)/.test(raw)) throw invalid(`endpoints[${i}].baseUrl is not a URL the core takes`);
    for (const k of ["apiKey", "model"]) {
      if (e[k] !== undefined && e[k] !== null && !isStr(e[k])) throw invalid(`endpoints[${i}].${k} must be a string`);
    }
    if (e.dialect !== undefined && e.dialect !== "openai" && e.dialect !== "anthropic") {
      throw invalid(`endpoints[${i}].dialect must be "openai" or "anthropic"`);
    }
    // The default module leaves Anthropic's events out (3 KB gzip); `steadyllm/anthropic` has them.
    if (e.dialect === "anthropic" && !__ANTHROPIC__) {
      throw invalid(`endpoints[${i}]: the Anthropic dialect is in "steadyllm/anthropic"`);
    }
    const anthropic = e.dialect === "anthropic";
    // OpenAI's Responses API (the endpoint's, else the client's api): its own entry.
    const api = e.api ?? o.api ?? "chat";
    if (api !== "chat" && api !== "responses") throw invalid('api must be "chat" or "responses"');
    const responses = api === "responses";
    if (responses && (!__RESPONSES__ || anthropic)) {
      throw invalid(`endpoints[${i}]: api "responses" is OpenAI's, in "steadyllm/responses"`);
    }
    // The request headers, fixed per endpoint (the retry count is added per attempt).
    const headers = [
      ["content-type", "application/json"],
      ["accept", "text/event-stream"],
    ];
    if (isStr(e.apiKey)) {
      // Never quoted: it is a secret.
      if (/[\0-\x1f\x7f]/.test(e.apiKey)) throw invalid(`endpoints[${i}].apiKey holds CR, LF or a control character`);
      const key = bytes(e.apiKey);
      headers.push(anthropic ? ["x-api-key", key] : ["authorization", `Bearer ${key}`]);
    }
    if (anthropic) {
      // Anthropic refuses cross-origin calls from pages without this acknowledgement.
      headers.push(["anthropic-version", "2023-06-01"], ["anthropic-dangerous-direct-browser-access", "true"]);
    }
    const own = headers.map((h) => h[0]);
    if (e.headers !== undefined) {
      if (!isObj(e.headers)) throw invalid(`endpoints[${i}].headers must be an object`);
      for (const [k, v] of Object.entries(e.headers)) {
        // Values may be secrets: never quote them.
        if (!isStr(v) || /[\0-\x08\x0a-\x1f\x7f]/.test(v)) {
          throw invalid(`endpoints[${i}].headers.${k}: the value must be a string without control characters`);
        }
        // Refused, not dropped: a name set here (content type, accept, the key's header,
        // anthropic-version…), the retry count, and those the browser sets itself or that
        // would change the request's framing (the core's list). A name given twice in
        // different cases is sent twice, as the core does (fetch joins the two values).
        const n = k.toLowerCase();
        if (
          !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(n) ||
          own.includes(n) ||
          /^(host|content-length|transfer-encoding|te|expect|upgrade|connection|user-agent|accept-encoding|x-steadyllm-retry-count)$/.test(n)
        ) {
          throw invalid(`endpoints[${i}].headers: "${k}" is not a valid name or is set by the client`);
        }
        headers.push([n, bytes(v)]);
      }
    }
    // Query parameters (Azure's api-version), percent-encoded as the core does (pct).
    let query = "";
    try {
      if (e.query !== undefined && !isObj(e.query)) throw 0;
      for (const [k, v] of Object.entries(e.query ?? {})) {
        if (!isStr(v)) throw 0;
        query += `${query && "&"}${pct(k)}=${pct(v)}`;
      }
    } catch {
      // (not a string, or a lone surrogate encodeURIComponent refuses)
      throw invalid(`endpoints[${i}].query must map names to strings`);
    }
    try {
      new Headers(headers);
    } catch {
      // Characters fetch refuses (beyond Latin-1): the message must not quote the value.
      throw invalid(`endpoints[${i}]: the API key or a header value holds characters fetch cannot send`);
    }
    const m = isStr(e.model) ? e.model : undefined;
    if (m === undefined && model === "") {
      throw invalid(`endpoints[${i}] has no model: set options.model or the endpoint's model`);
    }
    const prefix = url.pathname.replace(/\/+$/, "");
    const v1 = prefix.endsWith("/v1") ? "" : "/v1";
    const path = responses ? v1 + "/responses" : !anthropic ? "/chat/completions" : v1 + "/messages";
    const at = url.origin + prefix + path;
    return { baseUrl: e.baseUrl, url: at + (query && "?" + query), at, query, model: m, anthropic, responses, headers };
  });
  for (const g of ["timeouts", "retries", "breaker"]) {
    if (o[g] !== undefined && !isObj(o[g])) throw invalid(`options.${g} must be an object`);
  }
  const numbers = new Uint32Array(
    NUMBERS.map(([g, k, min]) => {
      const v = o[g]?.[k];
      if (v === undefined) return UNSET;
      if (k === "restartOnPartial") return v ? 1 : 0;
      if (k !== "budgetRatio") return ms(v, `${g}.${k}`, min);
      if (typeof v !== "number" || !(v >= 0 && v <= 1000)) throw invalid("retries.budgetRatio must be a number ≥ 0");
      return Math.round(v * 1000);
    }),
  );
  return { numbers, model, endpoints, reasoning };
}


function checkMessage(m, i) {
  if (!isObj(m) || !isStr(m.role)) throw invalid(`messages[${i}] needs a role`);
  if (!/^(system|developer|user|assistant|tool)$/.test(m.role)) throw invalid(`messages[${i}].role must be system, developer, user, assistant or tool`);
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

const F32_1E12 = Math.fround(1e12);
// A tool's or a schema's name, as OpenAI and Anthropic take it (the core checks it too).
const NAME = /^[\w-]{1,64}$/;

// Checks a request (before anything is loaded or sent).
function checkRequest(r) {
  if (!isObj(r) || !Array.isArray(r.messages) || r.messages.length === 0) {
    throw invalid("request.messages must be a non-empty array");
  }
  r.messages.forEach(checkMessage);
  if (r.model !== undefined && !isStr(r.model)) throw invalid("request.model must be a string");
  for (const k of ["maxTokens", "maxCompletionTokens"]) {
    if (r[k] !== undefined && count(r[k], k, 1) > 0xffffffff) throw invalid(`${k} is too large`);
  }
  // The core's limit: below 10¹² in magnitude once rounded to f32 (what it sends).
  for (const k of ["temperature", "topP"]) {
    if (r[k] !== undefined && !(typeof r[k] === "number" && Math.abs(Math.fround(r[k])) < F32_1E12)) throw invalid(`${k} must be a number below 1e12`);
  }
  if (r.stop !== undefined && (!Array.isArray(r.stop) || !r.stop.every(isStr))) throw invalid("stop must be an array of strings");
  if (r.seed !== undefined && !Number.isSafeInteger(r.seed)) throw invalid("seed must be a safe integer");
  if (r.user !== undefined && !isStr(r.user)) throw invalid("user must be a string");
  if (r.background !== undefined && typeof r.background !== "boolean") throw invalid("background must be a boolean");
  // The budget's range depends on the dialect (anthropicBody); its type does not.
  const b = r.thinking === undefined ? 0 : r.thinking?.budgetTokens;
  if (!(Number.isInteger(b) && b >= 0 && b <= 0xffffffff)) throw invalid("thinking.budgetTokens must be an integer ≥ 1024 and below maxTokens");
  if (r.tools !== undefined) {
    if (!Array.isArray(r.tools)) throw invalid("tools must be an array");
    r.tools.forEach((t, i) => {
      if (!isObj(t) || !isStr(t.name)) throw invalid(`tools[${i}] needs a name`);
      if (!NAME.test(t.name)) throw invalid(`tools[${i}].name must be 1 to 64 of a-z, A-Z, 0-9, _ and -`);
      if (t.description !== undefined && !isStr(t.description)) throw invalid(`tools[${i}].description must be a string`);
      if (t.parameters !== undefined && !isObj(t.parameters)) throw invalid(`tools[${i}].parameters must be a JSON Schema object`);
    });
  }
  const c = r.toolChoice;
  if (c !== undefined && c !== "auto" && c !== "none" && c !== "required" && !(isObj(c) && isStr(c.name))) {
    throw invalid('toolChoice must be "auto", "none", "required" or { name }');
  }
  // The newer fields are sent as given (the server checks their values), but for these
  // shapes: the body is built from them.
  for (const k of ["responseFormat", "extraBody"]) {
    if (r[k] !== undefined && !isObj(r[k])) throw invalid(`${k} must be an object`);
  }
  if (r.responseFormat && !/^(text|json_object|json_schema)$/.test(r.responseFormat.type)) throw invalid('responseFormat.type must be "text", "json_object" or "json_schema"');
  const s = r.responseFormat?.type === "json_schema" && r.responseFormat.json_schema;
  if (s !== false && !(isObj(s) && s.schema !== undefined)) throw invalid("responseFormat.json_schema needs a schema");
  if (s && !(isStr(s.name) && NAME.test(s.name))) throw invalid("responseFormat.json_schema.name must be 1 to 64 of a-z, A-Z, 0-9, _ and -");
}

// ------------------------------------------------------------------------ request bodies

const textParts = (c) => (c == null ? [] : isStr(c) ? [c] : c.filter((p) => p.type === "text").map((p) => p.text));

function openAiBody(r, model) {
  const b = {
    model,
    messages: r.messages.map((m) => {
      const c = m.content;
      const o = {
        role: m.role,
        content:
          c == null || isStr(c)
            ? (c ?? null)
            : c.map((p) =>
                p.type === "text"
                  ? { type: "text", text: p.text }
                  : { type: "image_url", image_url: p.detail === undefined ? { url: p.imageUrl } : { url: p.imageUrl, detail: p.detail } },
              ),
      };
      if (m.name !== undefined) o.name = m.name;
      if (m.role === "tool") o.tool_call_id = m.toolCallId;
      if (m.toolCalls?.length) {
        o.tool_calls = m.toolCalls.map((t) => ({ id: t.id, type: "function", function: { name: t.name, arguments: t.arguments } }));
      }
      return o;
    }),
    max_tokens: r.maxTokens,
    max_completion_tokens: r.maxCompletionTokens,
    temperature: r.temperature,
    top_p: r.topP,
    stop: r.stop?.length ? r.stop : undefined,
    seed: r.seed,
    user: r.user,
    response_format: r.responseFormat,
    reasoning_effort: r.reasoningEffort,
    stream: true,
    // includeObfuscation: false drops OpenAI's padding (see index.d.ts); true is OpenAI's
    // default, not sent (as the core does).
    stream_options: { include_usage: true, include_obfuscation: r.includeObfuscation === false ? false : undefined },
  };
  if (r.tools?.length) {
    b.tools = r.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters, strict: t.strict || undefined } }));
    // Only with tools: OpenAI refuses it without them.
    b.parallel_tool_calls = r.parallelToolCalls;
  }
  const c = r.toolChoice;
  if (c !== undefined) b.tool_choice = isStr(c) ? c : { type: "function", function: { name: c.name } };
  return b;
}

// Anthropic's Messages API: system and developer messages become `system`, tool results
// user turns, tool calls `tool_use` blocks, images `image` blocks.
function anthropicBody(r, model) {
  const blocks = (c) =>
    isStr(c)
      ? [{ type: "text", text: c }]
      : c.map((p) => {
          if (p.type === "text") return { type: "text", text: p.text };
          const d = /^data:([^,]*);base64,/.exec(p.imageUrl);
          const source = d
            ? { type: "base64", media_type: d[1], data: p.imageUrl.slice(d[0].length) }
            : { type: "url", url: p.imageUrl };
          return { type: "image", source };
        });
  const content = (c) => (c == null ? "" : isStr(c) ? c : blocks(c));
  const sys = (m) => m.role === "system" || m.role === "developer";
  const system = r.messages.filter(sys).flatMap((m) => textParts(m.content).map((text) => ({ type: "text", text })));
  const choice = r.toolChoice;
  const max = r.maxTokens ?? r.maxCompletionTokens ?? 1024;
  const f = r.responseFormat;
  if (f?.type === "json_object") throw invalid("responseFormat json_object has no Anthropic equivalent: use json_schema");
  const schema = f?.json_schema?.schema;
  // Anthropic extended thinking (the OpenAI dialect ignores it).
  const think = r.thinking;
  if (think !== undefined && !(isObj(think) && Number.isInteger(think.budgetTokens) && think.budgetTokens >= 1024 && think.budgetTokens < max)) {
    throw invalid("thinking.budgetTokens must be an integer ≥ 1024 and below maxTokens");
  }
  // parallelToolCalls: false is Anthropic's disable_parallel_tool_use on the tool choice.
  const serial = r.tools?.length && r.parallelToolCalls === false;
  const tc =
    choice === undefined
      ? serial
        ? { type: "auto" }
        : undefined
      : isStr(choice)
        ? { type: choice === "required" ? "any" : choice }
        : { type: "tool", name: choice.name };
  if (serial && tc.type !== "none") tc.disable_parallel_tool_use = true;
  const turns = r.messages.filter((m) => !sys(m));
  if (!turns.length) throw invalid("messages: Anthropic needs one besides system and developer messages");
  return {
    model,
    max_tokens: max,
    system: system.length ? system : undefined,
    messages: turns.map((m) => {
        if (m.role === "tool") {
          return { role: "user", content: [{ type: "tool_result", tool_use_id: m.toolCallId, content: content(m.content) }] };
        }
        const role = m.role === "assistant" ? "assistant" : "user";
        if (!m.toolCalls?.length) return { role, content: content(m.content) };
        const out = m.content == null ? [] : blocks(m.content);
        for (const t of m.toolCalls) {
          let input;
          try {
            input = JSON.parse(/^[\t\n\f\r ]*$/.test(t.arguments) ? "{}" : t.arguments);
          } catch {}
          if (!isObj(input)) throw invalid(`tool call ${t.id}: arguments must be a JSON object (Anthropic needs one)`);
          out.push({ type: "tool_use", id: t.id, name: t.name, input });
        }
        return { role, content: out };
      }),
    temperature: r.temperature,
    top_p: r.topP,
    stop_sequences: r.stop?.length ? r.stop : undefined,
    metadata: r.user === undefined ? undefined : { user_id: r.user },
    tools: r.tools?.length
      ? r.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters ?? { type: "object" }, strict: t.strict || undefined }))
      : undefined,
    tool_choice: tc,
    output_config: schema && { format: { type: "json_schema", schema } },
    thinking: think && { type: "enabled", budget_tokens: think.budgetTokens },
    stream: true,
  };
}

// OpenAI's Responses API, as the core writes it (core/src/dialect/responses.rs): a leading
// system or developer text as `instructions`, a lone user text as the `input` string, else
// message, function_call and function_call_output items; streamed in background mode (the
// answer kept by the server, so a broken stream resumes) unless `background: false`.
function responsesBody(r, model) {
  if (r.stop?.length) throw invalid("stop: the Responses API has none");
  const parts = (c, mine) =>
    c == null
      ? ""
      : isStr(c)
        ? c
        : c.flatMap((p) =>
            p.type === "text"
              ? [{ type: mine ? "output_text" : "input_text", text: p.text }]
              : mine
                ? []
                : [{ type: "input_image", image_url: p.imageUrl, detail: p.detail ?? "auto" }],
          );
  let ms = r.messages;
  const b = { model };
  if (/^(system|developer)$/.test(ms[0].role) && isStr(ms[0].content)) {
    b.instructions = ms[0].content;
    ms = ms.slice(1);
  }
  const [one] = ms;
  b.input =
    ms.length === 1 && one.role === "user" && !one.toolCalls?.length && isStr(one.content)
      ? one.content
      : ms.flatMap((m) => {
          if (m.role === "tool") return [{ type: "function_call_output", call_id: m.toolCallId, output: parts(m.content) }];
          const out = m.content != null || !m.toolCalls?.length ? [{ role: m.role, content: parts(m.content, m.role === "assistant") }] : [];
          for (const t of m.toolCalls ?? []) out.push({ type: "function_call", call_id: t.id, name: t.name, arguments: t.arguments });
          return out;
        });
  b.max_output_tokens = r.maxTokens ?? r.maxCompletionTokens;
  b.temperature = r.temperature;
  b.top_p = r.topP;
  b.user = r.user;
  if (r.tools?.length) {
    b.tools = r.tools.map((t) => ({ type: "function", name: t.name, description: t.description, parameters: t.parameters ?? { type: "object", properties: {} }, strict: !!t.strict }));
    b.parallel_tool_calls = r.parallelToolCalls;
  }
  const c = r.toolChoice;
  if (c !== undefined) b.tool_choice = isStr(c) ? c : { type: "function", name: c.name };
  const f = r.responseFormat;
  const s = f?.json_schema;
  if (f) b.text = { format: f.type === "json_schema" ? { type: f.type, name: s.name, schema: s.schema, strict: s.strict ? true : undefined } : { type: f.type } };
  if (r.reasoningEffort !== undefined) b.reasoning = { effort: r.reasoningEffort };
  b.stream = true;
  if (r.includeObfuscation === false) b.stream_options = { include_obfuscation: false };
  if (r.background !== false) b.background = b.store = true;
  return b;
}

// The body for each endpoint (its dialect and model), made before anything is sent.
function bodies(r, eps, model) {
  return eps.map((ep) => {
    const m = ep.model ?? (r.model || model);
    try {
      const b = __RESPONSES__ && ep.responses ? responsesBody(r, m) : __ANTHROPIC__ && ep.anthropic ? anthropicBody(r, m) : openAiBody(r, m);
      // extraBody: members the builder has no field for; one it writes itself is refused.
      for (const k in r.extraBody) {
        if (b[k] !== undefined) throw invalid(`extraBody.${k} is set by the request`);
        b[k] = r.extraBody[k];
      }
      return JSON.stringify(b);
    } catch (e) {
      throw e instanceof SteadyLlmError ? e : invalid(`the request cannot be serialised: ${e && e.message}`);
    }
  });
}


// ---------------------------------------------------------------------------------- the call

const now = () => Math.floor(performance.now());
const utf8Encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

// Settles with [0, value] when p fulfils, [1] at `until` (performance.now() ms), [2] when
// `signal` aborts, [3] when p rejects; cleans up its timer and listener.
function wait(p, until, signal) {
  return new Promise((resolve) => {
    let timer;
    const done = (k, v) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve([k, v]);
    };
    const onAbort = () => done(2);
    if (signal.aborted) return done(2);
    signal.addEventListener("abort", onAbort);
    // setTimeout fires at once beyond 2^31-1 ms: longer waits end only by p or the signal.
    const ms = until - now();
    if (ms < 2147483647) timer = setTimeout(done, Math.max(0, ms), 1);
    p?.then(
      (v) => done(0, v),
      () => done(3),
    );
  });
}

// The URL that resumes response `r.id` after event `r.after` (as the core's write_resume_head).
const resumeUrl = (ep, r) => `${ep.at}/${pct(r.id)}?stream=true&starting_after=${r.after}${ep.query && "&" + ep.query}`;

// How an attempt ended (lib.rs, mod end) and the flags of Chat.feed (mod flag).
// An error body's error object: OpenAI's {"error":{…}} or {"error":"text"}, Anthropic's
// {"type":"error","error":{…}}, or the bare {"message":…} of vLLM and others.
function errorObject(body) {
  let j;
  try {
    j = JSON.parse(body);
  } catch {
    return;
  }
  let e = j?.error;
  if (isStr(e)) return { message: e };
  if (!isObj(e)) {
    if (!isObj(j) || !("message" in j)) return;
    e = j;
  }
  // Members as the core reads them: a string, or a number as its text; else absent.
  const o = { message: "" };
  for (const k of ["message", "type", "code", "param"]) {
    if (isStr(e[k]) || typeof e[k] === "number") o[k] = String(e[k]);
  }
  return o;
}

const END_BODY = 0,
  END_CONNECT = 1,
  END_TIMEOUT = 2,
  END_NETWORK = 6,
  END_QUOTA = 16;
const F_RECORDS = 1,
  F_OVER = 4,
  F_MALFORMED = 8,
  F_SERVER_ERROR = 16;

// One attempt: fetch, then the body chunk by chunk through the module. Yields what it
// decodes; returns true when the call was aborted. Each wait lasts until the deadline the
// module's attempt timer gives; the module names a timeout by its phase.
async function* attempt(engine, chat, ep, body, s, signal, st) {
  const ctl = new AbortController();
  let reader;
  try {
    const headers = new Headers(ep.headers);
    headers.append("x-steadyllm-retry-count", String(s.retry));
    let url = ep.url;
    let init = { method: "POST", headers, body, signal: ctl.signal };
    if (__RESPONSES__ && st.resume) {
      const r = st.resume;
      // A resume (Responses, background mode): the events after the last one delivered, of
      // the response the module names — GET, no body, as the core's write_resume_head.
      st.resume = undefined;
      headers.delete("content-type");
      url = resumeUrl(ep, r);
      init = { headers, signal: ctl.signal };
    }
    // In a browser, connecting is part of waiting for the response head: fetch tells nothing
    // in between, so the first-byte timeout covers both (the connect timeout is unused).
    const by = chat.sent(now());
    const req = fetch(url, init);
    let [k, v] = await wait(req, by, signal);
    if (k) {
      if (k === 2) return true;
      chat.end(engine, now(), k === 1 ? END_TIMEOUT : END_CONNECT);
      return false;
    }
    let lines = "";
    v.headers.forEach((value, name) => (lines += `${name}: ${value}\n`));
    chat.head(v.status, utf8Encoder.encode(lines));
    // An error body is read here (up to 64 KiB, in time) and parsed with JSON.parse; a 2xx
    // body goes through the module. So does a whole JSON answer where a stream was asked for
    // (a gateway that ignores `stream: true`; a type naming JSON, as the core judges heads),
    // read whole first.
    const ok = v.status >= 200 && v.status < 300;
    const whole = ok && /json/i.test(v.headers.get("content-type"));
    const text = ok && !whole ? null : new TextDecoder();
    let error = "";
    reader = v.body?.getReader();
    let how = END_BODY;
    while (reader) {
      [k, v] = await wait(reader.read(), chat.wait(now()), signal);
      if (k) {
        if (k === 2) return true;
        how = k === 3 ? END_NETWORK : END_TIMEOUT;
        break;
      }
      if (v.done) break;
      if (text) {
        error += text.decode(v.value, { stream: true });
        if (error.length > 65536) break;
        continue;
      }
      const f = chat.feed(v.value);
      if (f & F_RECORDS) yield* deliver(chat, st);
      if (f & F_OVER) break;
    }
    if (whole && how === END_BODY) {
      // One event, the body's lines its data lines, then the end marker: the module decodes
      // it as the whole answer.
      const f = chat.feed(utf8Encoder.encode(`data: ${error.split(/\r\n?|\n/).join("\ndata: ")}\n\ndata: [DONE]\n\n`));
      if (f & F_RECORDS) yield* deliver(chat, st);
    }
    const e = ok ? undefined : errorObject(error);
    if (e) {
      st.server = e;
      if (e.code === "insufficient_quota" || e.type === "insufficient_quota") how |= END_QUOTA;
    }
    chat.end(engine, now(), how);
    return false;
  } finally {
    // Ends the fetch and its body, whatever stopped the attempt. The reader is cancelled
    // first (closing the body quietly): aborting a body still locked to a reader made
    // Chromium report an unhandled AbortError.
    reader?.cancel().catch(() => {});
    ctl.abort();
  }
}

// Yields a batch's deltas and notices, keeping the call's partial text; stops at once when
// the caller aborts while holding one.
function* deliver(o, st) {
  const out = [];
  const step = take(o, out, st);
  for (const d of out) {
    if (st.signal?.aborted) throw abortError(st.signal.reason, st.partial, st.attempts);
    if (d.type === "content") st.partial += d.text;
    else if (d.type === "discard") st.partial = "";
    else if (__RESPONSES__ && d.type === "resume") st.resume = d;
    yield d;
  }
  return step;
}

// Runs one call; yields deltas; returns { attempts, endpoint }.
async function* runCall(client, request, options) {
  const signal = options && options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid("options.signal must be an AbortSignal");
  checkRequest(request);
  if (signal?.aborted) throw abortError(signal.reason, "", 0);
  await init();
  if (signal?.aborted) throw abortError(signal.reason, "", 0);
  const { engine, endpoints, model, reasoning } = client._setup();
  // Checked again: the caller may have changed the request while the module loaded.
  checkRequest(request);
  const sent = bodies(request, endpoints, model);
  let prompt = 0;
  let images = false;
  for (const m of request.messages) {
    // UTF-8 bytes, as the core counts them (an encode per message, once per call).
    for (const t of textParts(m.content)) prompt += utf8Encoder.encode(t).length;
    for (const t of m.toolCalls ?? []) prompt += utf8Encoder.encode(t.arguments).length;
    if (Array.isArray(m.content)) images ||= m.content.some((p) => p.type === "image_url");
  }
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  const st = { partial: "", server: undefined, signal, attempts: 0 };
  // Kind: bit 0 images, bit 1 a reasoning request (a reasoning effort or thinking, or a model
  // options.reasoningModels marks), which gets minutes before its first token.
  const marked = (m) => m && reasoning.some((p) => m.startsWith(p));
  const think = request.reasoningEffort !== undefined || request.thinking !== undefined || marked(request.model) || endpoints.some((e) => marked(e.model));
  // Bit 2: not in background mode (a Responses answer that cannot be resumed).
  const kind = images | (think ? 2 : 0) | (__RESPONSES__ && request.background === false ? 4 : 0);
  const chat = new Chat(engine, now(), Math.min(prompt, 0xffffffff), request.maxTokens ?? request.maxCompletionTokens ?? 0, kind);
  try {
    for (;;) {
      const t0 = now();
      chat.next(engine, t0);
      const s = yield* deliver(chat, st);
      if (s === undefined) throw toError(null, st.partial);
      let stopped = false;
      if (s.sleep !== undefined) {
        stopped = (await wait(null, t0 + s.sleep, ctl.signal))[0] === 2;
      } else if (s.attempt !== undefined) {
        st.attempts = s.attempt;
        const ep = endpoints[s.endpoint];
        stopped = yield* attempt(engine, chat, ep, sent[s.endpoint], s, ctl.signal, st);
      } else if (s.reason === "ok") {
        return { attempts: s.attempts, endpoint: s.endpoint };
      } else {
        throw toError({ ...s, serverError: st.server }, st.partial);
      }
      if (stopped) throw abortError(signal?.reason, st.partial, st.attempts);
    }
  } catch (e) {
    // Anything unexpected (a browser API throwing, a trap in the module) still rejects with
    // a SteadyLlmError that keeps the text delivered so far.
    throw toError(e, st.partial);
  } finally {
    ctl.abort();
    signal?.removeEventListener("abort", onAbort);
    chat.free();
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
  for (;;) {
    const r = await it.next();
    if (r.done) {
      c.attempts = r.value.attempts;
      c.endpoint = r.value.endpoint;
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
      case "tool_call_done":
        // Whole: the core joined the fragments.
        if (d.choice === 0) c.toolCalls.push({ index: d.index, id: d.id, name: d.name, arguments: d.arguments });
        break;
      case "finish":
        if (d.choice === 0) c.finishReason = d.reason;
        break;
      case "usage":
        c.usage = { promptTokens: d.promptTokens, completionTokens: d.completionTokens, totalTokens: d.totalTokens };
        break;
      case "discard":
        c = emptyCompletion();
        break;
    }
  }
}

export class Client {
  #options;
  #engine = null;

  constructor(options) {
    this.#options = checkOptions(options);
    if (loaded) this._setup();
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

  /** @internal The engine (made once the module is loaded) and the checked options. */
  _setup() {
    if (!this.#engine) {
      const s = new Uint32Array(2);
      globalThis.crypto.getRandomValues(s);
      const o = this.#options;
      const mask = o.endpoints.reduce((m, e, i) => m | (e.anthropic ? 1 << i : 0) | (e.responses ? 16 << i : 0), 0);
      const engine = Engine.create(o.numbers, o.endpoints.length, mask, s[0], s[1]);
      // The options were checked; the module checks them again.
      if (!engine) throw invalid("options out of range");
      this.#engine = engine;
    }
    const o = this.#options;
    return { engine: this.#engine, endpoints: o.endpoints, model: o.model, reasoning: o.reasoning };
  }

  health() {
    const eps = this.#options.endpoints;
    // Two bits per endpoint: 1 available, 2 cooling down (see Engine::health).
    const h = this.#engine ? this.#engine.health(now()) : 0x55;
    return eps.map((e, i) => {
      const v = (h >> (2 * i)) & 3;
      return { baseUrl: e.baseUrl, available: v === 1, coolingDown: v === 2 };
    });
  }
}

// ------------------------------------------------------------------------- stream decoder

const DECODER_FAULTS = [null, "malformed", "server_error"];

export class StreamDecoder {
  #engine;
  #chat;
  #done = false;
  #failed = 0;

  constructor(options = {}) {
    if (!loaded) throw invalid("StreamDecoder: call `await init()` first");
    if (options.dialect === "anthropic" && !__ANTHROPIC__) {
      throw invalid('StreamDecoder: the Anthropic dialect is in "steadyllm/anthropic"');
    }
    // A call held at its first attempt with a 200 head: `feed` decodes, `head` starts over.
    this.#engine = Engine.create(new Uint32Array(NUMBERS.length).fill(UNSET), 1, options.dialect === "anthropic" ? 1 : 0, 0, 0);
    this.#chat = new Chat(this.#engine, 0, 0, 0, false);
    this.#chat.next(this.#engine, 0);
    this.#chat.head(200, EMPTY);
  }

  push(chunk) {
    if (!(chunk instanceof Uint8Array)) throw invalid("StreamDecoder.push takes a Uint8Array");
    const out = [];
    if (!this.#failed && !this.#done) {
      const f = this.#chat.feed(chunk);
      if (f & F_RECORDS) take(this.#chat, out, null);
      this.#failed = f & F_MALFORMED ? 1 : f & F_SERVER_ERROR ? 2 : 0;
      this.#done = (f & F_OVER) !== 0;
    }
    if (this.#failed) {
      const kind = DECODER_FAULTS[this.#failed];
      throw new StreamError(`stream decoder: ${kind.replace("_", " ")} event`, { reason: "invalid", kind });
    }
    return out;
  }

  end() {
    const complete = this.#done && !this.#failed;
    this.#done = false;
    this.#failed = 0;
    this.#chat.head(200, EMPTY);
    if (!complete) {
      throw new StreamError("stream ended without its end marker", { reason: "invalid", kind: "truncated" });
    }
  }
}
