// tests/e2e/metrics_check.mjs BASE_URL MODEL: /metrics of a running deltaserve,
// parsed by a strict Prometheus text-format (0.0.4) parser, before and after
// real requests. Run by tests/e2e/metrics.sh, which starts the server.
//
// Checks: content type; every line a valid comment or sample; HELP and TYPE
// once per family before its samples; the 12 vLLM-named families with the
// right types and model_name on every sample; histograms cumulative, ending
// in +Inf, _count == +Inf bucket; then, after 2 completions and 1 streamed
// chat completion, every counter and histogram count moved by exactly what
// the responses' usage says (so nothing is counted twice or missed), and the
// gauges return to 0 when the server is idle.

const [base, model, specArg] = process.argv.slice(2);
if (!base || !model) {
  console.error("usage: metrics_check.mjs BASE_URL MODEL [spec=K]");
  process.exit(2);
}
// spec=K: the server runs with --num-speculative-tokens K; the four vLLM
// spec_decode_* counters must exist (K position samples) and stay
// consistent (accepted <= draft tokens <= K * drafts, per-position counts
// non-increasing and summing to accepted). Without it they must be absent.
const specK = specArg && /^spec=\d+$/.test(specArg) ? Number(specArg.slice(5)) : 0;
let pass = 0, fail = 0;
function ok(cond, what, detail = "") {
  if (cond) { pass++; console.log(`ok   ${what}`); }
  else { fail++; console.log(`FAIL ${what}${detail ? `: ${detail}` : ""}`); }
  return cond;
}

// ------------------------------------------------------------------ parser
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(t) {
  if (t === "+Inf") return Infinity;
  if (t === "-Inf") return -Infinity;
  if (t === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) throw new Error(`bad value '${t}'`);
  return Number(t);
}

// Returns { families: Map(name -> {type, help}), samples: [{name, labels, value, family}] }; throws on any violation.
export function parseExposition(text) {
  if (!text.endsWith("\n")) throw new Error("does not end with a newline");
  const families = new Map();
  const samples = [];
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (line === "") throw new Error(`${at}: empty line`);
    if (line.includes("\r")) throw new Error(`${at}: carriage return`);
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) return; // other comments are allowed
      const [, kw, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${at}: bad metric name ${name}`);
      const f = families.get(name) ?? { help: null, type: null };
      if (samples.some((s) => s.family === name)) throw new Error(`${at}: ${kw} after samples of ${name}`);
      if (kw === "HELP") {
        if (f.help !== null) throw new Error(`${at}: duplicate HELP`);
        if (!rest) throw new Error(`${at}: empty HELP`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error(`${at}: bad escape in HELP`);
        f.help = rest;
      } else {
        if (f.type !== null) throw new Error(`${at}: duplicate TYPE`);
        if (!TYPES.has(rest)) throw new Error(`${at}: unknown TYPE ${rest}`);
        f.type = rest;
      }
      families.set(name, f);
      return;
    }
    // sample: name{labels} value [timestamp]
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${at}: not a sample: ${line}`);
    const [, name, lbl, val] = m;
    const labels = {};
    if (lbl) {
      let s = lbl.slice(1, -1);
      while (s.length) {
        const lm = /^([^=]+)="((?:[^"\\]|\\.)*)"(,|$)/.exec(s);
        if (!lm) throw new Error(`${at}: bad labels ${lbl}`);
        const [all, k, raw] = lm;
        if (!LABEL.test(k) || k.startsWith("__")) throw new Error(`${at}: bad label name ${k}`);
        if (k in labels) throw new Error(`${at}: duplicate label ${k}`);
        if (/\\[^\\"n]/.test(raw)) throw new Error(`${at}: bad escape in label value`);
        labels[k] = raw.replace(/\\(["\\n])/g, (_, c) => (c === "n" ? "\n" : c));
        s = s.slice(all.length);
        if (lm[3] === "," && !s.length) throw new Error(`${at}: trailing comma`);
      }
    }
    const value = parseValue(val);
    let family = families.has(name) ? name : null;
    if (!family) {
      const base = name.replace(/_(bucket|sum|count)$/, "");
      if (base !== name && families.get(base)?.type === "histogram") family = base;
    }
    if (!family || !families.get(family).type) throw new Error(`${at}: sample ${name} without # TYPE`);
    if (!families.get(family).help) throw new Error(`${at}: sample ${name} without # HELP`);
    const type = families.get(family).type;
    if (type === "counter" && !(value >= 0)) throw new Error(`${at}: counter ${name} = ${val}`);
    if (type === "histogram") {
      if (name === family) throw new Error(`${at}: bare histogram sample`);
      if (name.endsWith("_bucket") !== ("le" in labels)) throw new Error(`${at}: le label misuse`);
    }
    samples.push({ name, labels, value, family });
  });
  // histogram invariants per series (labels minus le)
  for (const [fam, f] of families) {
    if (f.type !== "histogram") continue;
    const key = (l) => JSON.stringify(Object.entries(l).filter(([k]) => k !== "le").sort());
    const counts = samples.filter((s) => s.name === `${fam}_count`);
    if (!counts.length) throw new Error(`${fam}: no _count`);
    for (const c of counts) {
      const k = key(c.labels);
      const buckets = samples.filter((s) => s.name === `${fam}_bucket` && key(s.labels) === k);
      const sum = samples.find((s) => s.name === `${fam}_sum` && key(s.labels) === k);
      if (!sum) throw new Error(`${fam}: no _sum`);
      let prevLe = -Infinity, prev = 0;
      for (const b of buckets) {
        const le = parseValue(b.labels.le);
        if (!(le > prevLe) || b.value < prev || !Number.isInteger(b.value)) throw new Error(`${fam}: buckets not ascending/cumulative at le=${b.labels.le}`);
        prevLe = le; prev = b.value;
      }
      if (prevLe !== Infinity) throw new Error(`${fam}: last bucket is not +Inf`);
      if (prev !== c.value) throw new Error(`${fam}: _count ${c.value} != +Inf bucket ${prev}`);
    }
  }
  return { families, samples };
}

// ------------------------------------------------------------------ helpers
const FAMILIES = {
  "deltaserve:num_requests_running": "gauge",
  "deltaserve:num_requests_waiting": "gauge",
  "deltaserve:kv_cache_usage_perc": "gauge",
  "deltaserve:gdn_state_slots_used": "gauge",
  "deltaserve:prompt_tokens_total": "counter",
  "deltaserve:generation_tokens_total": "counter",
  "deltaserve:request_success_total": "counter",
  "deltaserve:num_preemptions_total": "counter",
  "deltaserve:time_to_first_token_seconds": "histogram",
  "deltaserve:inter_token_latency_seconds": "histogram",
  "deltaserve:e2e_request_latency_seconds": "histogram",
  "deltaserve:request_queue_time_seconds": "histogram",
};

async function scrape(label) {
  const r = await fetch(`${base}/metrics`);
  const text = await r.text();
  ok(r.status === 200, `${label}: GET /metrics 200`, `status ${r.status}`);
  const ct = r.headers.get("content-type") ?? "";
  ok(/^text\/plain; version=0\.0\.4/.test(ct), `${label}: content-type ${ct}`);
  try {
    const p = parseExposition(text);
    ok(true, `${label}: exposition parses strictly (${p.samples.length} samples)`);
    return p;
  } catch (e) {
    ok(false, `${label}: exposition parses strictly`, e.message);
    return null;
  }
}

const val = (p, name, labels = {}) =>
  p.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

async function post(path, body) {
  const r = await fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return r;
}

// ------------------------------------------------------------------ checks
const before = await scrape("idle");
if (!before) process.exit(1);
for (const [name, type] of Object.entries(FAMILIES))
  ok(before.families.get(name)?.type === type, `family ${name} is a ${type}`);
ok(before.samples.every((s) => s.labels.model_name === model), `every sample has model_name="${model}"`);
for (const r of ["stop", "length", "abort", "error"])
  ok(before.samples.some((s) => s.name === "deltaserve:request_success_total" && s.labels.finished_reason === r), `request_success_total{finished_reason="${r}"} exists before any request`);

const SPEC = ["spec_decode_num_drafts_total", "spec_decode_num_draft_tokens_total", "spec_decode_num_accepted_tokens_total", "spec_decode_num_accepted_tokens_per_pos_total"].map((f) => `deltaserve:${f}`);
const PERPOS = SPEC[3];
if (specK > 0) {
  for (const f of SPEC) ok(before.families.get(f)?.type === "counter", `family ${f} is a counter (speculation on)`);
  const pos = before.samples.filter((s) => s.name === PERPOS).map((s) => s.labels.position);
  ok(JSON.stringify(pos) === JSON.stringify([...Array(specK).keys()].map(String)), `${PERPOS} has position="0".."${specK - 1}"`, JSON.stringify(pos));
} else {
  ok(SPEC.every((f) => !before.families.has(f)), "no spec_decode_* families without speculation");
}

// Two plain completions and one streamed chat completion, greedy (with
// speculation, a prompt that repeats so the drafter has matches).
const usage = [];
const reasons = [];
for (const [i, maxTokens] of specK > 0 ? [[0, 24], [1, 16]] : [[0, 5], [1, 3]]) {
  const prompt = specK > 0 ? `one two three four one two three four one two three four ${i}` : `metrics test ${i} the quick brown fox`;
  const r = await post("/v1/completions", { model, prompt, max_tokens: maxTokens, temperature: 0 });
  const j = await r.json();
  ok(r.status === 200 && j.usage, `completion ${i}: 200 with usage`, JSON.stringify(j).slice(0, 200));
  if (j.usage) { usage.push(j.usage); reasons.push(j.choices[0].finish_reason); }
}
{
  const r = await post("/v1/chat/completions", { model, messages: [{ role: "user", content: "Say something about metrics." }], max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const text = await r.text();
  let u = null, fr = null, chunks = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const j = JSON.parse(line.slice(6));
    chunks++;
    if (j.usage) u = j.usage;
    for (const c of j.choices ?? []) if (c.finish_reason) fr = c.finish_reason;
  }
  ok(r.status === 200 && u && text.includes("data: [DONE]"), `streamed chat: 200, ${chunks} chunks, usage in the last chunk`);
  if (u) { usage.push(u); reasons.push(fr); }
}

// Gauges settle to 0 once idle (stats are refreshed after each step).
let after = null;
for (let i = 0; i < 50; i++) {
  after = await scrape(i === 0 ? "after requests" : `after requests (poll ${i})`);
  if (!after) process.exit(1);
  if (val(after, "deltaserve:num_requests_running") === 0 && val(after, "deltaserve:gdn_state_slots_used") === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
const d = (name, labels) => val(after, name, labels) - val(before, name, labels);
const n = usage.length;
const promptSum = usage.reduce((a, u) => a + u.prompt_tokens, 0);
const genSum = usage.reduce((a, u) => a + u.completion_tokens, 0);
const gaps = usage.reduce((a, u) => a + Math.max(0, u.completion_tokens - 1), 0);
ok(d("deltaserve:prompt_tokens_total") === promptSum, `prompt_tokens_total += ${promptSum} (sum of usage.prompt_tokens)`, `moved by ${d("deltaserve:prompt_tokens_total")}`);
ok(d("deltaserve:generation_tokens_total") === genSum, `generation_tokens_total += ${genSum} (sum of usage.completion_tokens)`, `moved by ${d("deltaserve:generation_tokens_total")}`);
ok(d("deltaserve:request_success_total") === n, `request_success_total += ${n}`, `moved by ${d("deltaserve:request_success_total")}`);
for (const r of new Set(reasons))
  ok(d("deltaserve:request_success_total", { finished_reason: r }) === reasons.filter((x) => x === r).length, `request_success_total{finished_reason="${r}"} += ${reasons.filter((x) => x === r).length}`, `moved by ${d("deltaserve:request_success_total", { finished_reason: r })}`);
for (const h of ["time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds"])
  ok(d(`deltaserve:${h}_count`) === n, `${h}_count += ${n} (once per request)`, `moved by ${d(`deltaserve:${h}_count`)}`);
ok(d("deltaserve:inter_token_latency_seconds_count") === gaps, `inter_token_latency_seconds_count += ${gaps} (one per token after the first)`, `moved by ${d("deltaserve:inter_token_latency_seconds_count")}`);
ok(d("deltaserve:e2e_request_latency_seconds_sum") > 0, "e2e_request_latency_seconds_sum grew");
ok(d("deltaserve:e2e_request_latency_seconds_sum") >= d("deltaserve:time_to_first_token_seconds_sum"), "e2e latency sum >= TTFT sum");
for (const g of ["num_requests_running", "num_requests_waiting", "gdn_state_slots_used", "kv_cache_usage_perc"])
  ok(val(after, `deltaserve:${g}`) === 0, `idle: ${g} == 0`, `is ${val(after, `deltaserve:${g}`)}`);

if (specK > 0) {
  const drafts = d(SPEC[0]), dtok = d(SPEC[1]), acc = d(SPEC[2]);
  const per = [...Array(specK).keys()].map((i) => d(PERPOS, { position: String(i) }));
  console.log(`spec: ${drafts} drafts, ${dtok} draft tokens, ${acc} accepted, per position ${JSON.stringify(per)}`);
  ok(drafts > 0, "spec_decode_num_drafts_total grew (the drafter found matches)", `moved by ${drafts}`);
  ok(drafts <= dtok && dtok <= specK * drafts, `drafts <= draft tokens <= ${specK} * drafts`, `${drafts}, ${dtok}`);
  ok(acc <= dtok, "accepted tokens <= draft tokens", `${acc} > ${dtok}`);
  ok(per.reduce((a, v) => a + v, 0) === acc, "per-position accepted counts sum to accepted tokens", JSON.stringify(per));
  ok(per.every((v, i) => i === 0 || v <= per[i - 1]) && per[0] <= drafts, "per-position counts never grow with the position");
  ok(acc <= genSum, "accepted tokens <= generated tokens");
}

console.log(`metrics_check: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
