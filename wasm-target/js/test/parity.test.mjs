// Parity between the browser wrapper and the core, over the same neutral descriptions
// (test/parity-cases.mjs): what index.js builds itself — request bodies, URL and headers,
// validation, the error object of an error body, the batch layout it reads — against the core
// behind the `conformance` CLI (`request`, `error-object`) and the layout description
// wasm-target/batch-layout.json (which batch.rs's tests check the writer against).
//
// How they are compared:
// - bodies as JSON values (not bytes: the core writes numbers its own way), except that
//   `temperature` and `top_p` agree when they are the same f32 to six decimals (the core's
//   fields are f32, written to six decimals; JavaScript writes the double it was given);
// - the method and the path with its query, byte for byte;
// - the headers the wrapper sets as a set of (name, value) against the core's head, leaving
//   out the ones fetch sets itself (host, content-length, accept-encoding, user-agent) and
//   the one only a browser needs (anthropic-dangerous-direct-browser-access); values as HTTP
//   reads them (without surrounding blanks); the API key replaced by a placeholder on both
//   sides;
// - refusals by a stable class: the core's typed error, and for the wrapper the field its
//   message names (the messages are the wrapper's own). A description the core's types
//   cannot hold ("unrepresentable": a wrong JSON type, an unknown role) must be refused by the
//   wrapper for the same field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { PKG, ROOT } from "./harness.mjs";
import { errorBodies, requestCases } from "./parity-cases.mjs";

const KEY_PLACEHOLDER = "<api-key>";
const INTERNALS = ["checkOptions", "checkRequest", "bodies", "resumeUrl", "errorObject", "decodeBatch", "NONE", "REASONS", "FAILURES", "RETRY_REASONS"];

// index.js's own functions (not exported by the package), built as the package's Anthropic
// and Responses entries are (both dialects on), with an export line added: no wasm module is
// loaded.
async function internals() {
  const src = readFileSync(join(PKG, "src", "index.js"), "utf8");
  const out = await build({
    stdin: { contents: `${src}\nexport { ${INTERNALS.join(", ")} };\n`, resolveDir: join(PKG, "src"), sourcefile: "index.js" },
    bundle: true,
    format: "esm",
    write: false,
    define: { __ANTHROPIC__: "true", __RESPONSES__: "true" },
    logLevel: "error",
  });
  const dir = mkdtempSync(join(tmpdir(), "steadyllm-parity-"));
  const file = join(dir, "index.internals.mjs");
  writeFileSync(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function conformance(mode, lines) {
  execFileSync("cargo", ["build", "--release", "-q", "-p", "steadyllm-tests", "--bin", "conformance"], { cwd: ROOT, stdio: "inherit" });
  const bin = join(process.env.CARGO_TARGET_DIR || join(ROOT, "target"), "release", "conformance");
  const out = execFileSync(bin, [mode], { input: lines.map((l) => l + "\n").join(""), encoding: "utf8", maxBuffer: 64 << 20 });
  const answers = out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  assert.equal(answers.length, lines.length, `conformance ${mode}: one answer per case`);
  return answers;
}

// The field a wrapper refusal names, in the core's class names.
const CLASSES = [
  [/baseUrl (is not a URL|must be http|must not hold)/, "base_url"],
  [/apiKey holds/, "api_key"],
  [/\.headers(\.| must)|: "[^"]*" is not a valid name/, "header"],
  [/^(temperature|topP) /, "sampling"],
  [/^(maxTokens|maxCompletionTokens) /, "max_tokens"],
  [/^seed /, "seed"],
  [/arguments must be a JSON object/, "tool_arguments"],
  [/a tool message needs toolCallId/, "tool_call_id"],
  [/^request\.messages must be a non-empty|^messages: Anthropic needs one/, "no_messages"],
  [/^tools\[\d+\]\.name must be/, "tool_name"],
  [/json_schema\.name/, "schema_name"],
  [/^thinking\./, "thinking"],
  [/json_object has no Anthropic|^stop: the Responses API has none/, "json_object"],
  [/^extraBody\.\S+ is set by the request/, "extra_body"],
];
function classOf(e) {
  if (!e || e.name !== "InvalidRequestError") return `threw ${e && e.name}: ${e && e.message}`;
  for (const [re, c] of CLASSES) if (re.test(e.message)) return c;
  return "type";
}

const redact = (v, key) => (key ? v.split(key).join(KEY_PLACEHOLDER) : v);

// What the wrapper would send for a description: checkOptions and checkRequest as a Client
// and chat.stream run them, the body of `bodies`, and the head `attempt` gives fetch (the
// endpoint's headers plus the retry count, through the Headers class that normalises them).
function wrapper(w, c) {
  try {
    const o = w.checkOptions(c.options);
    w.checkRequest(c.request);
    const [body] = w.bodies(c.request, o.endpoints, o.model);
    const ep = o.endpoints[0];
    const headers = new Headers(ep.headers);
    headers.append("x-steadyllm-retry-count", "0");
    // A resume (Responses): `attempt`'s GET — the same headers but the body's type, no body.
    if (c.resume) headers.delete("content-type");
    const url = c.resume ? w.resumeUrl(ep, c.resume) : ep.url;
    const seen = [];
    // (fetch sends each character as a byte: the bytes read as UTF-8, as the core's head)
    const utf8 = (v) => new TextDecoder().decode(Uint8Array.from(v, (ch) => ch.charCodeAt(0)));
    headers.forEach((v, n) => seen.push([n, redact(utf8(v), c.options.endpoints[0].apiKey)]));
    return { ok: true, method: c.resume ? "GET" : "POST", path: url.slice(new URL(url).origin.length), headers: seen, body: c.resume ? null : JSON.parse(body) };
  } catch (e) {
    return { ok: false, error: classOf(e) };
  }
}

const FETCH_SETS = new Set(["host", "content-length", "accept-encoding", "user-agent"]);
const BROWSER_ONLY = new Set(["anthropic-dangerous-direct-browser-access"]);
// Values as HTTP reads them: without blanks around, and the lines of one name joined with
// ", " in order (fetch's Headers joins them; the core writes one line each).
function headerSet(hs, drop) {
  const joined = new Map();
  for (const [n, v] of hs) {
    if (drop.has(n)) continue;
    const t = v.replace(/^[ \t]+|[ \t]+$/g, "");
    joined.set(n, joined.has(n) ? `${joined.get(n)}, ${t}` : t);
  }
  return [...joined].map(([n, v]) => `${n}: ${v}`).sort();
}

// Same f32, written to six decimals.
const sameSampling = (js, core) => typeof js === "number" && typeof core === "number" && Math.abs(Math.fround(js) - core) <= 5e-7 + Math.abs(core) * 2 ** -24;

// A number the server sent as an error's member, as text: the core keeps the text as
// sent, the wrapper has the JavaScript number (JSON.parse), written in its shortest form
// ("1e2" is "100", "-0" is "0"): the same number.
const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
const sameNumber = (js, core) => typeof js === "string" && NUMBER.test(core) && js === String(Number(core));

// The first place two JSON values differ ("" when they are equal).
function diff(a, b, path = "") {
  if (/^error\.(message|type|code|param)$/.test(path) && sameNumber(a, b)) return "";
  if (typeof a === "number" && typeof b === "number" && /\.(temperature|top_p)$/.test(path)) {
    return sameSampling(a, b) ? "" : `${path}: ${a} vs ${b}`;
  }
  if (a === b) return "";
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) {
    return `${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    if (!(k in a) || !(k in b)) return `${path}.${k}: ${k in a ? "only in the wrapper" : "only in the core"}`;
    const d = diff(a[k], b[k], `${path}.${k}`);
    if (d) return d;
  }
  if (Array.isArray(a) && a.length !== b.length) return `${path}: length ${a.length} vs ${b.length}`;
  return "";
}

function compareRequest(c, js, core) {
  if (c.wrapperOnly) {
    if (js.ok || js.error !== c.wrapperOnly) return `the wrapper should refuse it (${c.wrapperOnly}: ${c.why}), got ${JSON.stringify(js.ok ? "sent" : js.error)}`;
    if (!core.ok) return `the core should write it, got ${core.error}`;
    return "";
  }
  if (!js.ok || !core.ok) {
    const j = js.ok ? "sent" : js.error;
    const k = core.ok ? "sent" : core.error + (core.unrepresentable ? " (unrepresentable)" : "");
    return js.ok === core.ok && js.error === core.error ? "" : `wrapper ${j}, core ${k}`;
  }
  if (js.method !== core.method) return `method ${js.method} vs ${core.method}`;
  if (js.path !== core.path) return `path ${js.path} vs ${core.path}`;
  const hj = headerSet(js.headers, BROWSER_ONLY);
  const hc = headerSet(core.headers, FETCH_SETS);
  if (hj.join("\n") !== hc.join("\n")) return `headers ${JSON.stringify(hj)} vs ${JSON.stringify(hc)}`;
  const d = diff(js.body, core.body, "body");
  return d && `body differs at ${d}`;
}

const w = await internals();
const results = [];

test("requests: the wrapper builds what the core builds, and refuses what it refuses", () => {
  const cases = requestCases();
  const core = conformance("request", cases.map((c) => JSON.stringify({ options: c.options, request: c.request, resume: c.resume })));
  const differences = [];
  cases.forEach((c, i) => {
    const d = compareRequest(c, wrapper(w, c), core[i]);
    if (d) differences.push(`${c.name}: ${d}`);
  });
  results.push([cases.length, differences]);
  assert.deepEqual(differences, []);
  // Both sides sent some and refused some, for both dialects (the comparison is not vacuous).
  for (const d of ["openai", "anthropic", "responses"]) {
    const mine = core.filter((_, i) => cases[i].name.startsWith(d));
    assert.ok(mine.filter((a) => a.ok).length > 50 && mine.filter((a) => !a.ok).length > 30, d);
  }
});

test("error bodies: the wrapper's error object is ApiError::parse's", () => {
  const bodies = errorBodies();
  const core = conformance("error-object", bodies.map((b) => JSON.stringify(b)));
  const differences = [];
  bodies.forEach((b, i) => {
    const js = w.errorObject(b) ?? null;
    const d = diff(js, core[i], "error");
    if (d) differences.push(`${JSON.stringify(b)}: ${d}`);
  });
  results.push([bodies.length, differences]);
  assert.deepEqual(differences, []);
  assert.ok(core.filter((e) => e === null).length > 5 && core.filter((e) => e !== null).length > 50);
});

test("the batch layout: decodeBatch reads what wasm-target/batch-layout.json describes", () => {
  const layout = JSON.parse(readFileSync(join(ROOT, "wasm-target", "batch-layout.json"), "utf8"));
  const differences = [];
  const check = (what, got, want) => {
    const d = diff(got, want, what);
    if (d) differences.push(d);
  };
  check("NONE", w.NONE, layout.none);
  check("REASONS", w.REASONS, layout.codes.reason);
  check("FAILURES", w.FAILURES.slice(1), layout.codes.failure.slice(1));
  check("RETRY_REASONS", w.RETRY_REASONS, layout.codes.retry_reason);
  let n = 4;
  const STEPS = new Set(["done", "attempt", "sleep"]);
  for (const [name, k] of Object.entries(layout.kinds)) {
    // A record whose every word differs, its text fields distinct slices of one string,
    // followed by a content record: read right, it shows the record's length is too.
    const words = [k.code];
    const at = {};
    let text = "";
    const want = {};
    for (const [field, type] of k.fields) {
      at[field] = words.length;
      if (type === "text" || type === "opt_text") {
        const s = `${field}\u00e9😀${n++}`;
        words.push(text.length, text.length + s.length);
        text += s;
        want[field] = s;
      } else {
        // A field typed by a table takes its last code; a number field a number of its own.
        const table = layout.codes[type];
        const v = table ? table.length - 1 : n++;
        words.push(v);
        want[field] = table ? [v, table[v]] : v;
      }
    }
    words.push(1, 7, text.length, text.length + 8);
    text += "sentinel";
    const read = (ws) => {
      const out = [];
      const st = {};
      const step = w.decodeBatch(Uint32Array.from(ws), text, out, st);
      return { got: STEPS.has(name) ? step : name === "server_error" ? st.server : out[0], out, step };
    };
    const { got, out, step } = read(words);
    if (STEPS.has(name) !== (step !== undefined)) differences.push(`${name}: read as a step: ${step !== undefined}`);
    if (!STEPS.has(name)) {
      const last = out[out.length - 1];
      if (!last || last.type !== "content" || last.choice !== 7 || last.text !== "sentinel") differences.push(`${name}: the next record misread (length)`);
    }
    for (const [field] of k.fields) {
      const js = k.js && field in k.js ? k.js[field] : field;
      if (js === null) continue; // not surfaced by the reader
      const v = got?.[js];
      const ok = Array.isArray(want[field]) ? want[field].includes(v) : v === want[field];
      if (!ok) differences.push(`${name}.${field}: read ${JSON.stringify(v)}, want ${JSON.stringify(want[field])}`);
    }
    // An absent optional text reads as absent.
    for (const [field, type] of k.fields) {
      if (type !== "opt_text") continue;
      const none = [...words];
      none[at[field]] = none[at[field] + 1] = layout.none;
      const v = read(none).got?.[field];
      if (v !== undefined) differences.push(`${name}.${field}: absent reads as ${JSON.stringify(v)}`);
    }
  }
  results.push([Object.keys(layout.kinds).length + 4, differences]);
  assert.deepEqual(differences, []);
});

test("parity line", () => {
  const cases = results.reduce((a, [n]) => a + n, 0);
  const differences = results.reduce((a, [, d]) => a + d.length, 0);
  console.log(`parity: ${cases} cases, ${differences} differences`);
  assert.equal(results.length, 3, "every parity test ran");
  assert.ok(cases >= 200);
});
