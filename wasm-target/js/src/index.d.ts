/**
 * steadyllm — a resilient streaming client for OpenAI-compatible (and Anthropic) chat APIs.
 *
 * The wire protocol, SSE parsing, decoding and the resilience engine (tiered timeouts, retries
 * with jittered backoff, Retry-After, failover, circuit breakers, a retry budget) run in
 * WebAssembly: the same Rust core as steadyllm's microcontroller adapter.
 */

/** Which API an endpoint speaks. */
export type Dialect = "openai" | "anthropic";

/** Which of OpenAI's APIs an `"openai"` endpoint is called with. */
export type Api = "chat" | "responses";

/** One server to send requests to. The first endpoint is the primary; the others are fallbacks. */
export interface EndpointConfig {
  /** Base URL up to the API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`. */
  baseUrl: string;
  /**
   * API key (sent as `Authorization: Bearer …`, or `x-api-key` for Anthropic). Never logged.
   * A key holding a control character (a tab included) is refused.
   */
  apiKey?: string;
  /** Model to ask this endpoint for (overrides the request's `model`). */
  model?: string;
  /**
   * API shape; default `"openai"`. `"anthropic"` (Anthropic's Messages API) needs the
   * `steadyllm/anthropic` entry; the default entry refuses it with an InvalidRequestError.
   */
  dialect?: Dialect;
  /**
   * Which OpenAI API (default: the client's `api`, else `"chat"`, `/chat/completions`).
   * `"responses"`: OpenAI's Responses API (`/v1/responses`, or `/responses` after a base URL
   * ending in `/v1`), streamed in background mode so that a broken answer is resumed exactly
   * where it broke (see {@link ResumeDelta}); it needs the `steadyllm/responses` entry (the
   * other entries refuse it with an {@link InvalidRequestError}) and the `"openai"` dialect.
   */
  api?: Api;
  /**
   * Extra request headers, e.g. Azure OpenAI's `{ "api-key": KEY }` (values are never logged
   * or quoted in errors). Validated: token names, no CR/LF/NUL in values; values are sent as
   * UTF-8. A name the client sets itself — `content-type`, `accept`, the key's header
   * (`authorization` or `x-api-key` when `apiKey` is set), `anthropic-version`,
   * `x-steadyllm-retry-count` — or one the browser manages or that would change the framing
   * (`host`, `content-length`, `transfer-encoding`, `te`, `expect`, `upgrade`, `connection`,
   * `user-agent`, `accept-encoding`) is refused with an {@link InvalidRequestError}.
   */
  headers?: Record<string, string>;
  /**
   * Query parameters added to every request in the order given, percent-encoded (all but
   * `A-Z a-z 0-9 - . _ ~`, as the Rust core does), e.g. Azure OpenAI's
   * `{ "api-version": "2024-10-21" }`.
   */
  query?: Record<string, string>;
}

/**
 * Timeouts in milliseconds. Unset fields follow the request: a small prompt gets first byte
 * 30 s, first token 45 s, idle 30 s, total 120 s; longer prompts, images and large `maxTokens`
 * get more. Setting any field fixes the whole table (unset fields take the small-prompt value).
 */
export interface Timeouts {
  /** Request sent → response head (in a browser this includes connecting). */
  firstByteMs?: number;
  /** Request sent → first content. */
  firstTokenMs?: number;
  /** Longest gap between two pieces of the body. */
  idleMs?: number;
  /** The whole call: every attempt and every wait. */
  totalMs?: number;
}

/** Retry policy. */
export interface RetryOptions {
  /** Attempts per call, the first included (default 6; 1 disables retries). */
  maxAttempts?: number;
  /** First backoff step (default 500 ms). */
  baseDelayMs?: number;
  /** Longest backoff (default 8000 ms). */
  maxDelayMs?: number;
  /** Longest `Retry-After` to honour (default 60 000 ms); longer waits fail over or fail. */
  maxRetryAfterMs?: number;
  /** Retry even after content was delivered; a `discard` delta tells you to drop it (default false). */
  restartOnPartial?: boolean;
  /** Share of extra load retries may add, 0–1 (default 0.15). */
  budgetRatio?: number;
}

/** Circuit breaker per endpoint. */
export interface BreakerOptions {
  /** Failures among an endpoint's last 16 attempts that open its breaker (default 14). */
  threshold?: number;
  /** How long an open breaker keeps an endpoint out (default 30 000 ms). */
  cooldownMs?: number;
}

export interface ClientOptions {
  /** Primary first, then fallbacks (1 to 4). */
  endpoints: EndpointConfig[];
  timeouts?: Timeouts;
  retries?: RetryOptions;
  breaker?: BreakerOptions;
  /** Default model when an endpoint names none. */
  model?: string;
  /** The endpoints' `api` when they name none (default `"chat"`). */
  api?: Api;
  /**
   * Model name prefixes that mark a reasoning model (`["o3", "gpt-5", "deepseek-reasoner"]`):
   * its calls get the reasoning timeouts (minutes before the first token) even when the
   * request names no `reasoningEffort` or `thinking`.
   */
  reasoningModels?: string[];
}

export type Role = "system" | "developer" | "user" | "assistant" | "tool";

export type ContentPart =
  | { type: "text"; text: string }
  | { type: "image_url"; imageUrl: string; detail?: "low" | "high" | "auto" };

export interface ToolCallRequest {
  id: string;
  name: string;
  /** JSON text of the arguments. */
  arguments: string;
}

export interface Message {
  role: Role;
  content?: string | ContentPart[] | null;
  name?: string;
  /** For `role: "tool"`: the call this answers. */
  toolCallId?: string;
  /** For `role: "assistant"`: the calls it made. */
  toolCalls?: ToolCallRequest[];
}

export interface Tool {
  /** 1–64 of `a-z A-Z 0-9 _ -` (OpenAI's and Anthropic's rule). */
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters?: object;
  /**
   * Strict schema adherence: the arguments always follow `parameters` (OpenAI
   * `function.strict`, Anthropic `strict`; the schema must meet the provider's rules for
   * strict schemas, e.g. `additionalProperties: false`).
   */
  strict?: boolean;
}

/**
 * OpenAI's `response_format`, sent as given once its `type` and a `json_schema`'s `name` and
 * `schema` are checked: plain text, JSON mode, or structured outputs (a JSON schema the
 * answer follows). To Anthropic (`steadyllm/anthropic`) a `json_schema`
 * goes as `output_config.format` (`name` and `strict` are not sent); `json_object` has no
 * Anthropic equivalent and is refused with an {@link InvalidRequestError}.
 */
export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | {
      type: "json_schema";
      json_schema: {
        /** 1–64 of `a-z A-Z 0-9 _ -`. */
        name: string;
        /** The JSON Schema of the answer. */
        schema: object;
        /** The answer always follows the schema (which must meet OpenAI's strict rules). */
        strict?: boolean;
      };
    };

export type ToolChoice = "auto" | "none" | "required" | { name: string };

export interface ChatRequest {
  messages: Message[];
  /** Defaults to the client's `model`; endpoints may override it. */
  model?: string;
  /** An integer from 1 to 2^32 - 1 (as `maxCompletionTokens`). */
  maxTokens?: number;
  maxCompletionTokens?: number;
  /** Below 10^12 in magnitude (as `topP`; the Rust core's limit). */
  temperature?: number;
  topP?: number;
  stop?: string[];
  /** A safe integer (beyond 2^53 - 1 a number is not the integer it prints as). */
  seed?: number;
  user?: string;
  tools?: Tool[];
  toolChoice?: ToolChoice;
  /**
   * `false` sends `stream_options.include_obfuscation: false`: OpenAI then leaves out the
   * `obfuscation` padding (1–16 random characters, some 10 % of every chunk). Fewer bytes, but
   * the padding is what keeps someone who sees the encrypted traffic from reading each
   * token's length off the TLS record sizes, a side channel that can leak the answer. Leave
   * it on (the default) unless that observer is no concern. OpenAI-compatible APIs only.
   */
  includeObfuscation?: boolean;
  /** The shape of the answer (see {@link ResponseFormat}). */
  responseFormat?: ResponseFormat;
  /**
   * How hard a reasoning model thinks (OpenAI `reasoning_effort`; the server checks the
   * value, so newer ones such as `"none"` or `"xhigh"` pass too). Not sent to Anthropic: use
   * `thinking` there.
   */
  reasoningEffort?: "minimal" | "low" | "medium" | "high" | (string & {});
  /**
   * Whether the model may call several tools in one turn; sent only with `tools`. OpenAI
   * `parallel_tool_calls`; to Anthropic `false` is `tool_choice.disable_parallel_tool_use`.
   */
  parallelToolCalls?: boolean;
  /**
   * Anthropic extended thinking (`steadyllm/anthropic`, Anthropic endpoints only; OpenAI
   * endpoints ignore it): `budgetTokens` at least 1024 and below `maxTokens` (so set
   * `maxTokens`: the default of 1024 leaves no room), else an {@link InvalidRequestError}.
   */
  thinking?: { budgetTokens: number };
  /**
   * More top-level members of the JSON body, for what has no field here (`top_k`,
   * `service_tier`, a gateway's options). A member the request already has (`model`,
   * `stream`, or a field that is set) is refused with an {@link InvalidRequestError}.
   */
  extraBody?: Record<string, unknown>;
  /**
   * `api: "responses"` only: `false` creates the response without background mode (no
   * `"background": true, "store": true`): the server keeps nothing, so a stream that breaks
   * after content fails with the partial text (or restarts with `restartOnPartial`) as on
   * `/chat/completions`. Default: background mode, resumed exactly after a drop. (`stop` has
   * no Responses equivalent and is refused there.)
   */
  background?: boolean;
}

export interface CallOptions {
  /** Cancels the call at once; it rejects with {@link AbortError} (`reason` holds the signal's reason). */
  signal?: AbortSignal;
}

/** A piece of answer text. */
export interface ContentDelta { type: "content"; text: string; choice: number }
/** A piece of reasoning text (`reasoning_content`, Anthropic thinking). */
export interface ReasoningDelta { type: "reasoning"; text: string; choice: number }
/** A piece of a refusal. */
export interface RefusalDelta { type: "refusal"; text: string; choice: number }
/**
 * A fragment of a tool call; `arguments` fragments with the same `index` concatenate. The
 * whole call follows as a {@link ToolCallDoneDelta}.
 */
export interface ToolCallDelta {
  type: "tool_call";
  choice: number;
  index: number;
  id?: string;
  name?: string;
  arguments: string;
}
/**
 * A whole tool call: its fragments joined by the core (the same rules on every adapter: per
 * `choice` and `index`, the first id and name, the arguments concatenated; another id at the
 * same index is another call). It comes before the finish reason that ends the call.
 */
export interface ToolCallDoneDelta {
  type: "tool_call_done";
  choice: number;
  /** The call's position (Anthropic: its content block's index). */
  index: number;
  id: string;
  name: string;
  /** The arguments JSON, as the model wrote it. */
  arguments: string;
}
/** Why a choice ended (`stop`, `length`, `tool_calls`, `end_turn`, …). */
export interface FinishDelta { type: "finish"; choice: number; reason: string }
/** Token counts. */
export interface UsageDelta {
  type: "usage";
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}
/** The client waits before another attempt ("server busy — retrying in 2 s"). */
export interface RetryDelta {
  type: "retry";
  /** The attempt that comes next. */
  attempt: number;
  delayMs: number;
  /** `backoff`: after a failure; `retry_after`: the server asked; `rate_limited`: rate-limit headers. */
  reason: "backoff" | "retry_after" | "rate_limited";
  /** HTTP status of the failed attempt, when it had one. */
  status?: number;
  /** A readable line for a UI ("server busy — retrying in 2 s"). */
  message: string;
}
/** The next attempt goes to another endpoint. */
export interface FailoverDelta { type: "failover"; from: number; to: number; message: string }
/** Only with `restartOnPartial`: the answer restarts; drop the text shown so far. */
export interface DiscardDelta { type: "discard"; message: string }
/**
 * `api: "responses"`: the stream broke and the next attempt resumes the answer on the same
 * endpoint after event `after` (`GET …/responses/{id}?stream=true&starting_after={after}`):
 * keep the text shown, nothing comes twice and nothing is regenerated. Comes as the resume
 * starts (after the wait a {@link RetryDelta} announced, if any). `response.failed` or
 * `response.incomplete` are the server's verdict and are never resumed: the call rejects with
 * a {@link SteadyLlmError} ("the server ended the answer as failed" / "… incomplete").
 */
export interface ResumeDelta {
  type: "resume";
  /** The `sequence_number` of the last event delivered. */
  after: number;
  /** The response's id. */
  id: string;
  /** A readable line for a UI ("resuming the answer after event 41"). */
  message: string;
}

export type Delta =
  | ContentDelta
  | ReasoningDelta
  | RefusalDelta
  | ToolCallDelta
  | ToolCallDoneDelta
  | FinishDelta
  | UsageDelta
  | RetryDelta
  | FailoverDelta
  | DiscardDelta
  | ResumeDelta;

export interface Usage { promptTokens: number; completionTokens: number; totalTokens: number }

/** A whole tool call of choice 0 (see {@link ToolCallDoneDelta}), in the order the calls began. */
export interface CompletedToolCall { index: number; id: string; name: string; arguments: string }

/** A whole answer. */
export interface Completion {
  text: string;
  reasoning: string;
  refusal: string;
  toolCalls: CompletedToolCall[];
  finishReason: string | null;
  usage: Usage | null;
  /** Attempts the call took. */
  attempts: number;
  /** Index of the endpoint that answered. */
  endpoint: number;
}

export type BatchResult =
  | { status: "fulfilled"; value: Completion }
  | { status: "rejected"; reason: SteadyLlmError };

export interface BatchOptions extends CallOptions {
  /** Calls in flight at once (default 4). */
  concurrency?: number;
}

/** The server's error object. */
export interface ServerError { message: string; type?: string; code?: string; param?: string }

/** Why the engine stopped. */
export type StopReason =
  | "retries_exhausted"
  | "budget_exhausted"
  | "not_retryable"
  | "partial_output"
  | "deadline_exceeded"
  | "retry_after_too_long"
  | "no_endpoint_available"
  | "aborted"
  | "invalid";

/** Base class of every error a call rejects with. */
export class SteadyLlmError extends Error {
  /** Content text delivered before the failure (empty if none). */
  readonly partial: string;
  /** Attempts made. */
  readonly attempts: number;
  /** Why the engine stopped. */
  readonly reason: StopReason;
  /** HTTP status of the last attempt, when it had one. */
  readonly status?: number;
  /** The server's error object, when it sent one. */
  readonly serverError?: ServerError;
}
/** The request or client options are invalid (thrown before anything is sent). */
export class InvalidRequestError extends SteadyLlmError {
  readonly name: "InvalidRequestError";
}
/** The caller's signal aborted the call. */
export class AbortError extends SteadyLlmError {
  readonly name: "AbortError";
  /** The signal's reason, whatever its type. */
  readonly abortReason: unknown;
}
/** Base class of the timeouts. */
export class TimeoutError extends SteadyLlmError {}
/** No response head in time. */
export class FirstByteTimeoutError extends TimeoutError {
  readonly name: "FirstByteTimeoutError";
}
/** No first content in time. */
export class FirstTokenTimeoutError extends TimeoutError {
  readonly name: "FirstTokenTimeoutError";
}
/** The stream stalled: no data for longer than the idle timeout. */
export class IdleTimeoutError extends TimeoutError {
  readonly name: "IdleTimeoutError";
}
/** The total deadline passed. */
export class TotalTimeoutError extends TimeoutError {
  readonly name: "TotalTimeoutError";
}
/** The request could not be sent (network down, refused, CORS, DNS). */
export class ConnectionError extends SteadyLlmError {
  readonly name: "ConnectionError";
}
/** A non-2xx status that was not (or no longer) retried. */
export class HttpError extends SteadyLlmError {
  readonly status: number;
}
/** 429, or a `Retry-After` longer than allowed. */
export class RateLimitError extends HttpError {
  readonly name: "RateLimitError";
}
/** The stream broke: reset, truncated (no end marker), malformed, or an error event. */
export class StreamError extends SteadyLlmError {
  readonly name: "StreamError";
  readonly kind: "network" | "truncated" | "malformed" | "server_error";
}
/** The retry budget is spent (an outage), or every endpoint is rate-limited past the deadline. */
export class UnavailableError extends SteadyLlmError {
  readonly name: "UnavailableError";
}

/** What a finished stream returns (the generator's return value). */
export interface StreamSummary {
  /** Attempts the call took. */
  attempts: number;
  /** Index of the endpoint that answered. */
  endpoint: number;
}

export interface Chat {
  /**
   * Streams the answer's deltas as they arrive. Breaking out of the loop cancels the call.
   * A failover to another endpoint starts the next attempt at once: a `failover` delta, no
   * `retry` delta.
   */
  stream(request: ChatRequest, options?: CallOptions): AsyncGenerator<Delta, StreamSummary, undefined>;
  /** The whole answer. */
  complete(request: ChatRequest, options?: CallOptions): Promise<Completion>;
  /** Many calls with at most `concurrency` in flight; results in the order of `requests`. */
  batch(requests: ChatRequest[], options?: BatchOptions): Promise<BatchResult[]>;
}

/** Per-endpoint health as the client sees it. */
export interface EndpointHealth {
  baseUrl: string;
  /** An attempt may go there now. */
  available: boolean;
  /** Its breaker is open. */
  coolingDown: boolean;
}

/**
 * A client for a list of endpoints. Calls made through one client share its circuit breakers,
 * rate-limit pauses and retry budget.
 */
export class Client {
  constructor(options: ClientOptions);
  readonly chat: Chat;
  /** Health of each endpoint, in the order given. */
  health(): EndpointHealth[];
}

/**
 * Loads the WebAssembly module. Optional: the first call does it. Pass a URL, `Response`,
 * `BufferSource` or `WebAssembly.Module` to load it from somewhere other than next to this file.
 */
export function init(source?: RequestInfo | URL | Response | BufferSource | WebAssembly.Module): Promise<void>;

/**
 * The SSE parser and decoder alone, for a body you read yourself. Call `await init()` first.
 * Deltas are those of {@link Chat.stream} without the engine's notices.
 */
export class StreamDecoder {
  /** `dialect: "anthropic"` needs the `steadyllm/anthropic` entry. */
  constructor(options?: { dialect?: Dialect });
  /** Decodes a piece of the body; throws {@link StreamError} on a malformed or error event. */
  push(chunk: Uint8Array): Delta[];
  /** Ends the body; throws {@link StreamError} (`kind: "truncated"`) without the end marker. */
  end(): void;
}
