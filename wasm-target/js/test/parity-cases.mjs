// The parity cases (test/parity.test.mjs): neutral descriptions of requests and error bodies
// that go through both the browser wrapper (index.js) and the core (the `conformance` CLI's
// `request` and `error-object` modes). Deterministic: a generator that puts every limit just
// below, at and above its edge, plus hand-written cases; the same list feeds both sides.
//
// A request case: { name, options, request } (the wrapper's own shapes: `new Client(options)`
// with one endpoint, `chat.stream(request)`), optionally `wrapperOnly: CLASS` with a `why`: a
// value the core's types hold exactly but a JavaScript number does not, which the wrapper
// refuses (class CLASS) and the core writes.

export const KEY = "sk-parity-test-key";
const F32_1E12 = Math.fround(1e12); // 999999995904, the core's sampling limit (|v| below it)
const F32_STEP = 65536; // the spacing of f32 values there

const endpoint = (dialect) =>
  dialect === "anthropic"
    ? { baseUrl: "https://api.anthropic.com", apiKey: KEY, dialect: "anthropic" }
    : dialect === "responses"
      ? { baseUrl: "https://api.openai.com/v1", apiKey: KEY, api: "responses" }
      : { baseUrl: "https://api.openai.com/v1", apiKey: KEY };

const user = (content) => ({ role: "user", content });
const hi = [user("Why is the sky blue?")];
const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false };
const weather = { name: "get_weather", description: "Weather now", parameters: { type: "object", properties: { city: { type: "string" } } } };

// Requests tried on both dialects (fields one dialect ignores are part of the check).
function requests() {
  const r = [];
  const add = (name, request) => r.push([name, request]);
  add("plain", { messages: hi });
  add("conversation with a tool round", {
    messages: [
      { role: "system", content: "You are terse." },
      { role: "developer", content: "Answer in French." },
      user('Weather in "Paris"?\n'),
      { role: "assistant", content: null, toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
      { role: "tool", toolCallId: "call_1", content: "12°C" },
      { role: "assistant", content: "It is 12°C." },
      user("Thanks"),
    ],
  });
  add("assistant text and two tool calls", {
    messages: [user("both"), { role: "assistant", content: "Calling.", toolCalls: [{ id: "a", name: "f", arguments: "{}" }, { id: "b", name: "g", arguments: ' {"x":[1,2,{"y":null}]} ' }] }],
  });
  for (const [n, args] of [["empty", ""], ["spaces", "  \n\t"], ["form feed", "\f"], ["nested", '{"a":{"b":[true,false,1.5e3]}}']]) {
    add(`tool call arguments: ${n}`, { messages: [user("x"), { role: "assistant", toolCalls: [{ id: "c", name: "f", arguments: args }] }] });
  }
  for (const [n, args] of [["array", "[1,2]"], ["string", '"x"'], ["number", "42"], ["null", "null"], ["not JSON", "{oops"], ["two values", "{} {}"], ["no-break space", "\u00a0"]]) {
    add(`tool call arguments: ${n} (Anthropic needs an object)`, { messages: [user("x"), { role: "assistant", toolCalls: [{ id: "c", name: "f", arguments: args }] }] });
  }
  add("a tool message without toolCallId", { messages: [user("x"), { role: "tool", content: "r" }] });
  add("message names", { messages: [{ role: "user", name: "alice", content: "hi" }, { role: "assistant", name: "bot", content: "yo" }] });
  add("images: https, data URL, detail", {
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "What is in these?" },
          { type: "image_url", imageUrl: "https://example.com/a.png" },
          { type: "image_url", imageUrl: "data:image/png;base64,iVBORw0KGgo=", detail: "low" },
          { type: "image_url", imageUrl: "data:image/jpeg,notbase64", detail: "high" },
          { type: "text", text: "Be brief." },
        ],
      },
    ],
  });
  add("a system message in parts, with an image", {
    messages: [{ role: "system", content: [{ type: "text", text: "a" }, { type: "image_url", imageUrl: "https://x/y.png" }, { type: "text", text: "b" }] }, user("q")],
  });
  add("empty content and null content", { messages: [user(""), { role: "assistant", content: null }, user([])] });
  add("strings: escapes, controls, astral", { messages: [user('q"\\/\b\f\n\r\t\u0000\u001f\u007f é — 😀 \u2028\u2029')], user: "u\u0001" });
  add("sampling and stop", { messages: hi, temperature: 0.7, topP: 0.95, stop: ["\n\n", "END"], seed: 42, user: "user-1" });
  add("sampling: values that need rounding", { messages: hi, temperature: 0.123456789, topP: 1 / 3 });
  add("empty stop list", { messages: hi, stop: [] });
  add("maxCompletionTokens", { messages: hi, maxCompletionTokens: 500 });
  add("both limits", { messages: hi, maxTokens: 100, maxCompletionTokens: 500 });
  add("no obfuscation", { messages: hi, includeObfuscation: false });
  add("obfuscation on", { messages: hi, includeObfuscation: true });
  for (const choice of [undefined, "auto", "none", "required", { name: "get_weather" }]) {
    for (const parallel of [undefined, true, false]) {
      add(`tools, toolChoice ${JSON.stringify(choice)}, parallelToolCalls ${parallel}`, {
        messages: hi,
        tools: [weather, { name: "now" }, { name: "strict_one", parameters: schema, strict: true }, { name: "not_strict", strict: false }],
        toolChoice: choice,
        parallelToolCalls: parallel,
      });
    }
  }
  add("toolChoice without tools", { messages: hi, toolChoice: "none" });
  add("parallelToolCalls without tools", { messages: hi, parallelToolCalls: false });
  add("empty tools list", { messages: hi, tools: [] });
  add("responseFormat text", { messages: hi, responseFormat: { type: "text" } });
  add("responseFormat json_object", { messages: hi, responseFormat: { type: "json_object" } });
  add("responseFormat json_schema strict", { messages: hi, responseFormat: { type: "json_schema", json_schema: { name: "place", schema, strict: true } } });
  add("responseFormat json_schema", { messages: hi, responseFormat: { type: "json_schema", json_schema: { name: "place", schema } } });
  add("responseFormat json_schema without a schema", { messages: hi, responseFormat: { type: "json_schema", json_schema: { name: "place" } } });
  for (const name of ["", "a", "A-z_09", "n".repeat(64), "n".repeat(65), "has space", "dot.ted", "ünï", "tab\t"]) {
    add(`schema name ${JSON.stringify(name)} (${name.length})`, { messages: hi, responseFormat: { type: "json_schema", json_schema: { name, schema } } });
  }
  for (const effort of ["minimal", "low", "medium", "high", "xhigh", "none"]) add(`reasoningEffort ${effort}`, { messages: hi, reasoningEffort: effort });
  add("thinking", { messages: hi, maxTokens: 4096, thinking: { budgetTokens: 2048 } });
  add("extraBody members", { messages: hi, extraBody: { top_k: 40, service_tier: "flex", 'we"ird\nkey': { a: [1, null] } } });
  add("extraBody: reasoning_effort while the field is unset", { messages: hi, extraBody: { reasoning_effort: "xhigh" } });
  for (const key of ["model", "messages", "stream", "stream_options", "max_tokens", "system", "temperature", "tools", "metadata"]) {
    add(`extraBody.${key} (collides when written)`, { messages: [{ role: "system", content: "s" }, user("x")], extraBody: { [key]: 1 } });
  }
  add("extraBody.temperature with temperature set", { messages: hi, temperature: 0.5, extraBody: { temperature: 1 } });
  add("extraBody.tool_choice with a tool choice", { messages: hi, tools: [weather], toolChoice: "auto", extraBody: { tool_choice: "x" } });
  // Shapes the core's types cannot hold: the wrapper refuses them.
  add("no messages", { messages: [] });
  add("an unknown role", { messages: [{ role: "bogus", content: "x" }] });
  add("content a number", { messages: [user(5)] });
  add("an unknown part", { messages: [user([{ type: "audio", data: "x" }])] });
  add("a detail not a string", { messages: [user([{ type: "image_url", imageUrl: "https://x/i.png", detail: 1 }])] });
  add("toolCalls not an array", { messages: [{ role: "assistant", toolCalls: {} }] });
  add("a tool call without arguments", { messages: [{ role: "assistant", toolCalls: [{ id: "a", name: "f" }] }] });
  add("stop not strings", { messages: hi, stop: ["a", 1] });
  add("an unknown toolChoice", { messages: hi, tools: [weather], toolChoice: "any" });
  add("a tool without a name", { messages: hi, tools: [{ description: "x" }] });
  for (const name of ["", "a", "get_weather-2", "n".repeat(64), "n".repeat(65), "dot.ted", "has space", "ünï"]) {
    add(`a tool named ${JSON.stringify(name)} (${name.length})`, { messages: hi, tools: [{ name }] });
  }
  add("only system messages", { messages: [{ role: "system", content: "s" }, { role: "developer", content: "d" }] });
  add("tool parameters not an object", { messages: hi, tools: [{ name: "f", parameters: [] }] });
  add("temperature a string", { messages: hi, temperature: "0.5" });
  add("maxTokens a string", { messages: hi, maxTokens: "5" });
  add("thinking not an object", { messages: hi, maxTokens: 4096, thinking: 2048 });
  add("responseFormat an unknown type", { messages: hi, responseFormat: { type: "yaml" } });
  add("extraBody an array", { messages: hi, extraBody: [1] });
  add("request model", { messages: hi, model: "gpt-4o-mini" });
  add("empty request model (the client's)", { messages: hi, model: "" });
  add("everything", {
    messages: [{ role: "system", content: "s" }, user([{ type: "text", text: "t" }, { type: "image_url", imageUrl: "https://x/i.png", detail: "auto" }])],
    model: "m2",
    maxTokens: 3000,
    temperature: 1,
    topP: 0.5,
    stop: ["x"],
    seed: -7,
    user: "u",
    tools: [weather],
    toolChoice: { name: "get_weather" },
    parallelToolCalls: false,
    responseFormat: { type: "json_schema", json_schema: { name: "n", schema, strict: true } },
    reasoningEffort: "low",
    thinking: { budgetTokens: 1024 },
    includeObfuscation: false,
    extraBody: { top_k: 3 },
  });
  return r;
}

// Every numeric limit just below, at and above its edge.
function limits() {
  const r = [];
  for (const k of ["temperature", "topP"]) {
    for (const v of [0, -0, 2, -1, 1e6 - 1, 1e6, 1e6 + 1, F32_1E12 - F32_STEP, F32_1E12 - 1, F32_1E12, 1e12, F32_1E12 + F32_STEP, 1e13, -(F32_1E12 - F32_STEP), -F32_1E12, -1e12, 1e-7, 5e-7, Number.MIN_VALUE]) {
      r.push([`${k} ${v}`, { messages: hi, [k]: v }]);
    }
  }
  for (const k of ["maxTokens", "maxCompletionTokens"]) {
    for (const v of [-1, 0, 1, 2, 1.5, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32]) r.push([`${k} ${v}`, { messages: hi, [k]: v }]);
  }
  for (const v of [0, -1, 1.5, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 63, -(2 ** 63) - 4096]) r.push([`seed ${v}`, { messages: hi, seed: v }]);
  // Thinking: at least 1024 and below max_tokens (1024 when none is set); OpenAI ignores it.
  for (const max of [undefined, 1025, 2000, 2 ** 32 - 1]) {
    for (const b of [0, 1023, 1024, 1025, 1999, 2000, 2001, 2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 1500.5]) {
      r.push([`thinking ${b} with maxTokens ${max}`, { messages: hi, maxTokens: max, thinking: { budgetTokens: b } }]);
    }
  }
  r.push(["thinking with maxCompletionTokens only", { messages: hi, maxCompletionTokens: 3000, thinking: { budgetTokens: 2999 } }]);
  return r;
}

// Endpoints: base URLs, keys, headers and query parameters (each on both dialects).
function endpoints() {
  const e = [];
  const add = (name, ep) => e.push([name, ep]);
  for (const u of [
    "https://api.example.com",
    "https://api.example.com/",
    "https://api.example.com/v1/",
    "http://127.0.0.1:8080/v1",
    "http://127.0.0.1:80/v1",
    "https://h:443/x/y",
    "https://h:8443",
    "HTTPS://Example.COM/v1",
    "http://[::1]:9000/api/v1",
    "http://h//v1//",
    "https://h/openai/deployments/gpt-4o",
    "https://h/anthropic/v1",
    "ftp://h/v1",
    "https://",
    "http://h:0",
    "http://h:65535",
    "http://h:65536",
    "http://h:",
    "http://h:00",
    "http://h:0080/v1",
    "http://[::1]:/v1",
    "http://[::1]:0",
    "http://u:p@h/v1",
    "http://h/v1?x=1",
    "http://h/v1#f",
    "http://h o/v1",
    "http://[::g]/",
    "not a url",
    "http://h/v1?",
    "http://h/v1#",
    "http://h/a/../v1",
    "http://h/./v1",
    "http://h/.well-known/v1",
    "http://h/v1.2/x..y",
    "http://h/a b",
    "http://h/%7Ev1",
    "http://h\\v1",
    " http://h/v1",
    "http://h/v1 ",
    "http://h/v1\t",
    "http://ünï.example/v1",
    "http://h_1.example/v1",
    "http://[::1]",
  ]) {
    add(`baseUrl ${u}`, { baseUrl: u });
  }
  for (const [n, k] of [
    ["plain", "sk-abc_DEF.123"],
    ["with a space", "sk abc"],
    ["with a tab", "sk-\tabc"],
    ["ending in a tab", "sk-abc\t"],
    ["with CR LF", "sk-abc\r\nX-Evil: 1"],
    ["with NUL", "sk-\u0000abc"],
    ["with DEL", "sk-\u007fabc"],
    ["with ESC", "sk-\u001babc"],
    ["Latin-1", "sk-\u00e9"],
    ["Cyrillic", "ключ"],
    ["astral", "sk-😀"],
    ["empty", ""],
  ]) {
    add(`apiKey ${n}`, { apiKey: k });
  }
  add("no apiKey", { apiKey: undefined });
  add("endpoint model", { model: "ep-model" });
  add("headers", { headers: { "api-key": "azure", "X-Trace": "a b", "x-tab": "a\tb" } });
  add("header values: blanks around", { headers: { "x-a": "  a b\t", "x-b": "\tc" } });
  add("header values: non-ASCII", { headers: { "x-title": "Café", "x-ru": "ключ", "x-emoji": "😀" } });
  add("header names differing in case", { headers: { "X-A": "1", "x-a": "2" } });
  add("query", { query: { "api-version": "2024-10-21", "a b": "c&d=e", "t~i.l-d_e": "*!'()+/?", "é": "ü" } });
  add("query and headers (Azure)", { headers: { "api-key": "azure" }, query: { "api-version": "2024-10-21" } });
  for (const name of ["content-type", "Content-Length", "host", "user-agent", "accept", "accept-encoding", "connection", "transfer-encoding", "x-steadyllm-retry-count", "te", "expect", "upgrade", "authorization", "x-api-key", "anthropic-version", "bad name", "bad:name", "", "é"]) {
    add(`header named ${JSON.stringify(name)}`, { headers: { [name]: "v" } });
  }
  for (const [n, v] of [["CR", "a\rb"], ["LF", "a\nb"], ["NUL", "a\u0000b"], ["DEL", "a\u007fb"], ["ESC", "a\u001bb"], ["empty", ""]]) {
    add(`header value with ${n}`, { headers: { "x-v": v } });
  }
  return e;
}

/** The request cases, deterministic. */
export function requestCases() {
  const cases = [];
  const dialects = ["openai", "anthropic", "responses"];
  for (const dialect of dialects) {
    const options = () => ({ model: dialect === "anthropic" ? "claude-sonnet-4-5" : "gpt-4o", endpoints: [endpoint(dialect)] });
    for (const [name, request] of [...requests(), ...limits()]) {
      cases.push({ name: `${dialect}: ${name}`, options: options(), request });
    }
    for (const [name, ep] of endpoints()) {
      const o = options();
      o.endpoints[0] = { ...o.endpoints[0], ...ep };
      if (ep.apiKey === undefined) delete o.endpoints[0].apiKey;
      cases.push({ name: `${dialect}: ${name}`, options: o, request: { messages: hi, tools: [weather] } });
    }
    // Seeds beyond 2^53 - 1: exact in the core's i64, not in a JavaScript number (2^62 prints
    // as 4611686018427388000; these few print exactly, so the core gets the same value).
    for (const v of [2 ** 53, 2 ** 53 + 2, -(2 ** 53)]) {
      cases.push({
        name: `${dialect}: seed ${v}`,
        options: options(),
        request: { messages: hi, seed: v },
        wrapperOnly: "seed",
        why: "a JavaScript number beyond 2^53 - 1 is not the integer it prints as",
      });
    }
  }
  // OpenAI's Responses API: background mode off, `api` given by the client, a value neither
  // knows, the dialect it does not go with; and the GET that resumes an answer, on endpoints
  // with and without a `/v1`, query parameters and headers, and ids to percent-encode.
  const rs = () => ({ model: "gpt-4o", endpoints: [endpoint("responses")] });
  cases.push(
    { name: "responses: background false", options: rs(), request: { messages: hi, background: false } },
    { name: "responses: background not a boolean", options: rs(), request: { messages: hi, background: "no" } },
    { name: "responses: api from the client", options: { model: "gpt-4o", api: "responses", endpoints: [endpoint("openai")] }, request: { messages: hi } },
    { name: "responses: the endpoint's api chat over the client's", options: { model: "gpt-4o", api: "responses", endpoints: [{ ...endpoint("openai"), api: "chat" }] }, request: { messages: hi } },
    { name: "responses: api unknown", options: { model: "gpt-4o", endpoints: [{ ...endpoint("openai"), api: "completions" }] }, request: { messages: hi } },
    { name: "responses: api responses on an Anthropic endpoint", options: { model: "claude", endpoints: [{ ...endpoint("anthropic"), api: "responses" }] }, request: { messages: hi } },
  );
  for (const [ep, id, after] of [
    [{}, "resp_abc123", 0],
    [{}, "resp_abc123", 41],
    [{ baseUrl: "https://h/proxy" }, "resp_1", 7],
    [{ baseUrl: "http://127.0.0.1:8080/v1/" }, "resp 1/ä?&#", 4294967295],
    [{ query: { "api-version": "2025-04-01-preview", "a b": "c&d" } }, "resp_q", 3],
    [{ headers: { "x-team": "blue", "OpenAI-Organization": "org-1" } }, "resp_h", 12],
    [{ apiKey: undefined }, "resp_nokey", 1],
  ]) {
    const o = rs();
    o.endpoints[0] = { ...o.endpoints[0], ...ep };
    if ("apiKey" in ep && ep.apiKey === undefined) delete o.endpoints[0].apiKey;
    cases.push({ name: `responses: resume ${JSON.stringify(ep)} ${id} after ${after}`, options: o, request: { messages: hi }, resume: { id, after } });
  }
  // The header only a browser needs, which the wrapper sets itself for Anthropic.
  cases.push({
    name: "anthropic: header named anthropic-dangerous-direct-browser-access",
    options: { model: "claude-sonnet-4-5", endpoints: [{ ...endpoint("anthropic"), headers: { "anthropic-dangerous-direct-browser-access": "true" } }] },
    request: { messages: hi },
    wrapperOnly: "header",
    why: "the wrapper sets it itself (a browser's request needs it); the core sends none",
  });
  return cases;
}

/** Error bodies: every shape the readers know, and every JSON type in every member. */
export function errorBodies() {
  const bodies = [];
  const values = { string: '"s"', empty: '""', number: "429", negative: "-1", fraction: "1.5", exponent: "1e2", zero: "0", true: "true", false: "false", null: "null", object: '{"m":"x"}', array: '["x"]' };
  for (const member of ["message", "type", "code", "param"]) {
    for (const [, v] of Object.entries(values)) {
      bodies.push(`{"error":{"message":"m","type":"t","code":"c","param":"p","${member}":${v}}}`.replace(`"${member}":"${member[0]}",`, ""));
      bodies.push(`{"type":"error","error":{"${member}":${v}}}`);
      bodies.push(`{"object":"error","${member}":${v}}`);
      bodies.push(`{"${member}":${v},"message":"bare"}`);
    }
  }
  for (const [, v] of Object.entries(values)) bodies.push(`{"error":${v}}`, `{"error":${v},"message":"outer"}`);
  bodies.push(
    '{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}',
    '{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}',
    '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    '{"object":"error","message":"The model does not exist","type":"NotFoundError","param":null,"code":404}',
    '{"error":"model not found"}',
    '{"error":{}}',
    '{"error":{"message":"a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00"}}',
    '{"error":{"mess\\u0061ge":"escaped key"}}',
    '{"error":{"message":"first"},"error":{"message":"second"}}',
    '{"error":{"message":"m","message":"later"}}',
    '{"error":{"message":"kept"},"message":"outer"}',
    '{"detail":"Not Found"}',
    "{}",
    "[]",
    '"error"',
    "42",
    "null",
    "",
    "   ",
    "<html><body>502 Bad Gateway</body></html>",
    "upstream connect error",
    '{"error":{"message":"m"}} trailing',
    '{"error":{"message":"m"}',
    '{"error":{"message":"m",}}',
    ' \n{"error":{"message":"whitespace around"}}\n ',
    '{"error":{"message":"deep","extra":[[[[{"a":[1,2,{"b":null}]}]]]]}}',
    '{"error":{"code":12345678901234567890}}',
    '{"error":{"code":-0}}',
    '{"error":{"type":"t"}}',
    '{"message":null}',
    '{"message":5}',
    '{"type":"error"}',
  );
  return bodies;
}
