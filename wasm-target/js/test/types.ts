// Type tests for the public API (src/index.d.ts): `tsc -p test/tsconfig.json` must pass. This
// file is only type-checked, never run. Every `@ts-expect-error` line is a misuse the types
// must reject; if one of them stops being an error, tsc fails with "Unused '@ts-expect-error'".
import {
  AbortError,
  Client,
  ConnectionError,
  FirstByteTimeoutError,
  FirstTokenTimeoutError,
  HttpError,
  IdleTimeoutError,
  InvalidRequestError,
  RateLimitError,
  SteadyLlmError,
  StreamDecoder,
  StreamError,
  TimeoutError,
  TotalTimeoutError,
  UnavailableError,
  init,
} from "../src/index.js";
import type {
  Api,
  BatchOptions,
  BatchResult,
  CallOptions,
  Chat,
  ChatRequest,
  ClientOptions,
  Completion,
  CompletedToolCall,
  ContentDelta,
  Delta,
  Dialect,
  EndpointConfig,
  EndpointHealth,
  FailoverDelta,
  Message,
  ResponseFormat,
  ResumeDelta,
  RetryDelta,
  Role,
  ServerError,
  StopReason,
  Timeouts,
  Tool,
  ToolCallDelta,
  ToolCallDoneDelta,
  Usage,
} from "../src/index.js";

/** Compile-time equality of two types. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_: T = true as T): void {}

// ------------------------------------------------------------------------------ the client

const options: ClientOptions = {
  endpoints: [
    { baseUrl: "https://api.openai.com/v1", apiKey: "sk-…", model: "gpt-4o-mini" },
    { baseUrl: "https://api.anthropic.com/v1", apiKey: "sk-ant-…", model: "claude", dialect: "anthropic" },
    { baseUrl: "http://127.0.0.1:8080/v1", headers: { "x-team": "demo" } },
    // Azure OpenAI: the key in a header, the API version in the query.
    {
      baseUrl: "https://res.openai.azure.com/openai/deployments/gpt-4o",
      headers: { "api-key": "…" },
      query: { "api-version": "2024-10-21" },
    },
  ],
  timeouts: { firstByteMs: 2000, firstTokenMs: 4000, idleMs: 3000, totalMs: 60_000 },
  retries: {
    maxAttempts: 4,
    baseDelayMs: 250,
    maxDelayMs: 4000,
    maxRetryAfterMs: 10_000,
    restartOnPartial: true,
    budgetRatio: 0.2,
  },
  breaker: { threshold: 8, cooldownMs: 10_000 },
  model: "gpt-4o",
};
const client = new Client(options);
new Client({ endpoints: [{ baseUrl: "http://127.0.0.1:8080/v1" }], model: "m" });
new Client({ endpoints: [{ baseUrl: "http://127.0.0.1:8080/v1" }], model: "o3-mini", reasoningModels: ["o3", "gpt-5"] });

const chat: Chat = client.chat;
const health: EndpointHealth[] = client.health();
const h0: boolean = health[0]!.available && !health[0]!.coolingDown;
const dialect: Dialect = "openai";

// @ts-expect-error endpoints are required
new Client({ model: "gpt-4o" });
// @ts-expect-error no options at all
new Client();
// @ts-expect-error endpoints is a list
new Client({ endpoints: { baseUrl: "http://x/v1" } });
// @ts-expect-error an endpoint needs a baseUrl
new Client({ endpoints: [{ apiKey: "k" }] });
// @ts-expect-error unknown dialect
new Client({ endpoints: [{ baseUrl: "http://x/v1", dialect: "gemini" }] });
// OpenAI's Responses API, per client or per endpoint; background mode per request.
const api: Api = "responses";
new Client({ endpoints: [{ baseUrl: "http://x/v1", api: "chat" }], api, model: "m" });
const noBackground: ChatRequest = { messages: [{ role: "user", content: "hi" }], background: false };
void noBackground;
// @ts-expect-error unknown api
new Client({ endpoints: [{ baseUrl: "http://x/v1", api: "completions" }] });
// @ts-expect-error timeouts are milliseconds as numbers
new Client({ endpoints: [{ baseUrl: "http://x/v1" }], timeouts: { firstByteMs: "2s" } });
// @ts-expect-error misspelt timeout
new Client({ endpoints: [{ baseUrl: "http://x/v1" }], timeouts: { firstByte: 2000 } });
// @ts-expect-error restartOnPartial is a boolean
new Client({ endpoints: [{ baseUrl: "http://x/v1" }], retries: { restartOnPartial: "yes" } });
// @ts-expect-error header values are strings
new Client({ endpoints: [{ baseUrl: "http://x/v1", headers: { "x-n": 1 } }] });
// @ts-expect-error query values are strings
new Client({ endpoints: [{ baseUrl: "http://x/v1", query: { "api-version": 2024 } }] });
// @ts-expect-error chat is read-only
client.chat = chat;

// ---------------------------------------------------------------------------- the requests

const messages: Message[] = [
  { role: "system", content: "Be brief." },
  { role: "developer", content: "Answer in English." },
  {
    role: "user",
    content: [
      { type: "text", text: "What is in this picture?" },
      { type: "image_url", imageUrl: "data:image/png;base64,AAAA", detail: "low" },
    ],
  },
  { role: "assistant", content: null, toolCalls: [{ id: "call_1", name: "look", arguments: "{}" }] },
  { role: "tool", toolCallId: "call_1", content: "a cat" },
];
const tools: Tool[] = [{ name: "look", description: "Looks", parameters: { type: "object", properties: {} }, strict: true }];
const format: ResponseFormat = {
  type: "json_schema",
  json_schema: { name: "answer", schema: { type: "object", properties: {} }, strict: true },
};
const request: ChatRequest = {
  messages,
  model: "gpt-4o",
  maxTokens: 500,
  temperature: 0.2,
  topP: 0.9,
  stop: ["\n\n"],
  seed: 7,
  user: "u-1",
  tools,
  toolChoice: { name: "look" },
  parallelToolCalls: false,
  responseFormat: format,
  reasoningEffort: "low",
  thinking: { budgetTokens: 2048 },
  extraBody: { top_k: 40, service_tier: "flex" },
};
client.chat.complete({ messages, responseFormat: { type: "json_object" }, reasoningEffort: "xhigh" });
const roles: Role[] = ["system", "developer", "user", "assistant", "tool"];

// @ts-expect-error not a role
const badRole: Message = { role: "bot", content: "hi" };
// @ts-expect-error messages are required
client.chat.complete({ model: "gpt-4o" });
// @ts-expect-error messages is a list of messages, not a string
client.chat.complete({ messages: "hi" });
// @ts-expect-error content parts need a known type
const badPart: Message = { role: "user", content: [{ type: "audio", data: "…" }] };
// @ts-expect-error image detail is low, high or auto
const badDetail: Message = { role: "user", content: [{ type: "image_url", imageUrl: "x", detail: "max" }] };
// @ts-expect-error temperature is a number
client.chat.complete({ messages, temperature: "0.5" });
// @ts-expect-error unknown tool choice
client.chat.complete({ messages, toolChoice: "any" });
// @ts-expect-error a json_schema format carries its schema
client.chat.complete({ messages, responseFormat: { type: "json_schema" } });
// @ts-expect-error unknown response format
client.chat.complete({ messages, responseFormat: { type: "yaml" } });
// @ts-expect-error parallelToolCalls is a boolean
client.chat.complete({ messages, parallelToolCalls: "no" });
// @ts-expect-error the thinking budget is in budgetTokens
client.chat.complete({ messages, thinking: { budget_tokens: 2048 } });
// @ts-expect-error strict is a boolean
const badTool: Tool = { name: "f", strict: "yes" };
// @ts-expect-error the signal is an AbortSignal, not an AbortController
client.chat.complete({ messages }, { signal: new AbortController() });
// @ts-expect-error concurrency is a number
client.chat.batch([request], { concurrency: "4" });
// @ts-expect-error batch takes a list of requests
client.chat.batch(request);

// ------------------------------------------------------------------------------- streaming

async function streaming(): Promise<string> {
  const controller = new AbortController();
  const callOptions: CallOptions = { signal: controller.signal };
  let text = "";
  const calls = new Map<number, { name: string; arguments: string }>();
  for await (const delta of client.chat.stream({ messages: [{ role: "user", content: "Hi" }] }, callOptions)) {
    assertType<Equal<typeof delta, Delta>>();
    // @ts-expect-error not every delta has text: narrow by `type` first
    text += delta.text;
    // @ts-expect-error "text" is not a delta type
    if (delta.type === "text") continue;

    switch (delta.type) {
      case "content":
      case "reasoning":
      case "refusal": {
        const t: string = delta.text;
        const c: number = delta.choice;
        if (delta.type === "content") text += t + String(c);
        break;
      }
      case "tool_call": {
        assertType<Equal<typeof delta, ToolCallDelta>>();
        const id: string | undefined = delta.id;
        // @ts-expect-error id may be missing
        const sureId: string = delta.id;
        const entry = calls.get(delta.index) ?? { name: "", arguments: "" };
        entry.name += delta.name ?? "";
        entry.arguments += delta.arguments;
        calls.set(delta.index, entry);
        void id;
        break;
      }
      case "tool_call_done": {
        assertType<Equal<typeof delta, ToolCallDoneDelta>>();
        const whole: CompletedToolCall = { index: delta.index, id: delta.id, name: delta.name, arguments: delta.arguments };
        void whole;
        break;
      }
      case "finish": {
        const reason: string = delta.reason;
        void reason;
        break;
      }
      case "usage": {
        const n: number = delta.promptTokens + delta.completionTokens + delta.totalTokens;
        void n;
        break;
      }
      case "retry": {
        assertType<Equal<typeof delta, RetryDelta>>();
        const line: string = `${delta.message} (attempt ${delta.attempt}, ${delta.delayMs} ms)`;
        const why: "backoff" | "retry_after" | "rate_limited" = delta.reason;
        const status: number | undefined = delta.status;
        // @ts-expect-error a retry has no text
        delta.text;
        void line, why, status;
        break;
      }
      case "failover": {
        assertType<Equal<typeof delta, FailoverDelta>>();
        const line: string = `${delta.message}: ${delta.from} → ${delta.to}`;
        void line;
        break;
      }
      case "discard":
        text = delta.message ? "" : text;
        break;
      case "resume": {
        assertType<Equal<typeof delta, ResumeDelta>>();
        const line: string = `${delta.message}: ${delta.id} after ${delta.after}`;
        void line;
        break;
      }
      default: {
        // Every delta type is handled above.
        const none: never = delta;
        void none;
      }
    }
    if (delta.type === "content") {
      assertType<Equal<typeof delta, ContentDelta>>();
    }
    // @ts-expect-error a `type` outside the union is no Delta
    const fake: Delta = { type: "heartbeat" };
    void fake;
  }
  // Breaking out early is allowed (it cancels the call).
  for await (const d of client.chat.stream(request)) if (d.type === "content") break;
  return text;
}

// ---------------------------------------------------------------------------- complete

async function completing(): Promise<void> {
  const c: Completion = await client.chat.complete(request, { signal: AbortSignal.timeout(30_000) });
  const text: string = c.text + c.reasoning + c.refusal;
  const finish: string | null = c.finishReason;
  const usage: Usage | null = c.usage;
  const calls: CompletedToolCall[] = c.toolCalls;
  const n: number = c.attempts + c.endpoint + (usage?.totalTokens ?? 0) + calls.length;
  // @ts-expect-error usage may be null
  const tokens: number = c.usage.totalTokens;
  // @ts-expect-error complete returns a promise, not the completion
  const notAwaited: Completion = client.chat.complete(request);
  // @ts-expect-error stream is not a promise of text
  const s: string = await client.chat.stream(request);
  void text, finish, n, tokens, notAwaited, s;
}

// ------------------------------------------------------------------------------- batch

async function batching(): Promise<string[]> {
  const opts: BatchOptions = { concurrency: 2, signal: new AbortController().signal };
  const results: BatchResult[] = await client.chat.batch([request, request], opts);
  return results.map((r) => {
    // @ts-expect-error narrow on status before reading the value
    r.value.text;
    if (r.status === "fulfilled") {
      const c: Completion = r.value;
      return c.text;
    }
    const e: SteadyLlmError = r.reason;
    // @ts-expect-error a rejected result has no value
    r.value;
    return `${e.name}: ${e.message} (${e.partial.length} chars kept)`;
  });
}

// ------------------------------------------------------------------------------ errors

function describe(e: unknown): string {
  if (!(e instanceof SteadyLlmError)) return String(e);
  const base: string = `${e.name} ${e.message} ${e.partial} ${e.attempts}`;
  const reason: StopReason = e.reason;
  const status: number | undefined = e.status;
  const server: ServerError | undefined = e.serverError;
  const serverMessage: string | undefined = e.serverError?.message;
  // @ts-expect-error the fields are read-only
  e.partial = "";
  // @ts-expect-error not a stop reason
  const badReason: StopReason = "timeout";
  if (e instanceof AbortError) {
    const why: unknown = e.abortReason;
    // @ts-expect-error the abort reason can be anything: narrow it first
    const whyText: string = e.abortReason;
    return `stopped (${String(why)}) ${whyText}`;
  }
  if (e instanceof TimeoutError) {
    if (e instanceof FirstByteTimeoutError) return "no response head";
    if (e instanceof FirstTokenTimeoutError) return "no first token";
    if (e instanceof IdleTimeoutError) return "stalled";
    if (e instanceof TotalTimeoutError) return "too slow overall";
  }
  if (e instanceof HttpError) {
    const s: number = e.status; // always set on an HttpError
    if (e instanceof RateLimitError) return `rate limited (${s})`;
    return `HTTP ${s}`;
  }
  if (e instanceof StreamError) {
    const kind: "network" | "truncated" | "malformed" | "server_error" = e.kind;
    // @ts-expect-error not a stream error kind
    if (e.kind === "timeout") return "";
    return kind;
  }
  // @ts-expect-error a plain SteadyLlmError has no kind
  e.kind;
  if (e instanceof ConnectionError || e instanceof UnavailableError || e instanceof InvalidRequestError) {
    return e.name;
  }
  void status, server, serverMessage, badReason;
  return `${base} ${reason}`;
}

const isError: Error = new StreamError("x");
const subclass: SteadyLlmError = new RateLimitError("x");
const timeoutBase: TimeoutError = new IdleTimeoutError("x");
// @ts-expect-error a plain Error lacks the call's details
const notSteady: SteadyLlmError = new Error("x");
// (The subclasses without fields of their own are structurally equal to SteadyLlmError, so
// `const t: TimeoutError = new AbortError("x")` compiles; tell them apart with instanceof.)

// ------------------------------------------------------------------ init and StreamDecoder

async function decoding(body: ReadableStream<Uint8Array>): Promise<string> {
  await init();
  await init(new URL("./steadyllm_wasm_bg.wasm", "https://cdn.example/steadyllm/"));
  await init(fetch("/steadyllm_wasm_bg.wasm").then((r) => r));
  await init(await fetch("/steadyllm_wasm_bg.wasm"));
  await init(new Uint8Array(8));
  // (WebAssembly.Module is an empty interface in lib.dom, so `init` accepts any non-null value;
  // only its arity and result are checked.)
  // @ts-expect-error one source at most
  await init("/a.wasm", "/b.wasm");
  // @ts-expect-error init returns a promise of nothing
  const nothing: string = await init();

  const decoder = new StreamDecoder({ dialect: "anthropic" });
  new StreamDecoder();
  // @ts-expect-error unknown dialect
  new StreamDecoder({ dialect: "ollama" });
  let text = "";
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const deltas: Delta[] = decoder.push(value);
    for (const d of deltas) if (d.type === "content") text += d.text;
  }
  decoder.end();
  // @ts-expect-error push takes bytes, not text
  decoder.push("data: {}\n\n");
  void nothing;
  return text;
}

// Keep every binding "used".
export const used = [
  h0,
  dialect,
  roles,
  badRole,
  badPart,
  badDetail,
  streaming,
  completing,
  batching,
  describe,
  decoding,
  isError,
  subclass,
  timeoutBase,
  notSteady,
  options satisfies ClientOptions,
  ((t: Timeouts, e: EndpointConfig) => [t, e])({}, { baseUrl: "" }),
];
