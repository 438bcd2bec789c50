// tests/e2e/load_fault.mjs: load and fault test against a running deltaserve
// (started by tests/e2e/load_fault.sh on loopback). Environment:
//   BASE (http://127.0.0.1:PORT), PID (server pid, for VmRSS), MODEL,
//   MAX_BODY (the server's --max-body-size), MAX_LEN (--max-model-len),
//   TIMEOUT_S (--timeout), LOAD_CLIENTS (requests per round, default 300),
//   LOAD_CONC (concurrent clients, default 200), LOAD_ROUNDS (default 2),
//   RSS_BOUND_MB (allowed growth over the warm level, default 48),
//   LOAD_SEED (PRNG seed; printed so a failure can be replayed).
//
// One warm-up round, then LOAD_ROUNDS measured rounds of LOAD_CLIENTS requests
// with LOAD_CONC in flight, drawn from a fixed mix:
//   complete      non-streaming /v1/completions via fetch
//   stream        streaming /v1/completions via node:http (SSE parsed by hand)
//   chat_sdk      chat via the openai npm client (half streaming)
//   disconnect    streaming request, socket destroyed after k chunks (or
//                 before any byte / mid-upload): no answer expected
//   slow_reader   streaming request whose reader pauses for up to 1.5 s
//   malformed     invalid JSON, wrong types, bad values, unknown route, wrong
//                 method, raw garbage on a socket
//   oversized     body over --max-body-size (413) or a prompt over the model
//                 length (400)
//   stall         a socket that sends half a request and then nothing: the
//                 server must close it after --timeout (checked once a round)
// Every request that is not deliberately cut must end in either a complete,
// well-formed response (JSON with choices and usage, or an SSE stream whose
// chunks all parse, with a finish_reason and "data: [DONE]") or a clean
// OpenAI error (status 4xx/5xx, JSON {"error":{"message":...}}, 429/503 with
// Retry-After). After each round the server must be idle again: /metrics with
// num_requests_running 0, num_requests_waiting 0, kv_cache_usage_perc 0,
// gdn_state_slots_used 0; /health 200; VmRSS within RSS_BOUND_MB of the warm
// level. Prints a report (requests, outcome by class, errors by status/code,
// latency percentiles) and exits non-zero on any violation.
import { createRequire } from 'node:module';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'tools', 'package.json'));
const OpenAI = require('openai');

const BASE = process.env.BASE;
const url = new URL(BASE);
const PORT = Number(url.port);
const PID = Number(process.env.PID);
const MODEL = process.env.MODEL || 'models/olmo-hybrid-tiny';
const MAX_BODY = Number(process.env.MAX_BODY || 65536);
const MAX_LEN = Number(process.env.MAX_LEN || 1024);
const TIMEOUT_S = Number(process.env.TIMEOUT_S || 3);
const CLIENTS = Number(process.env.LOAD_CLIENTS || 300);
const CONC = Number(process.env.LOAD_CONC || 200);
const ROUNDS = Number(process.env.LOAD_ROUNDS || 2);
const RSS_BOUND_MB = Number(process.env.RSS_BOUND_MB || 48);
const SEED = Number(process.env.LOAD_SEED || Date.now() % 1000000);

// small deterministic PRNG (mulberry32) so a failing mix can be replayed
let rs = SEED >>> 0;
function rnd() {
  rs = (rs + 0x6d2b79f5) >>> 0;
  let t = rs;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (a, b) => a + Math.floor(rnd() * (b - a + 1));
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// keep-alive on: connections are reused as real clients do. A reused socket
// that the server closed for idleness (--timeout) while the request was being
// written is a client-side race, not a server fault, so the pool drops idle
// sockets well before the server's timeout.
const agent = new http.Agent({ keepAlive: true, maxSockets: CONC + 16, timeout: Math.max(500, TIMEOUT_S * 300) });
const client = new OpenAI({ baseURL: BASE + '/v1', apiKey: 'none', maxRetries: 0, timeout: 120000, httpAgent: agent });

// --- bookkeeping
const violations = [];
const stats = {};      // class -> {n, ok, clean_error, cut, violation, lat: [], ttft: []}
const errorsBy = {};   // "status code" -> n
function st(cls) { return (stats[cls] ||= { n: 0, ok: 0, clean_error: 0, cut: 0, violation: 0, lat: [], ttft: [] }); }
const errorSample = {}; // "status code" -> first message
function countError(cls, status, code, msg) {
  const key = `${status} ${code}`;
  errorsBy[key] = (errorsBy[key] || 0) + 1;
  errorSample[key] ||= `${cls}: ${String(msg).slice(0, 120)}`;
}
function violation(cls, what, detail) {
  st(cls).violation++;
  if (violations.length < 40) violations.push(`${cls}: ${what}${detail !== undefined ? ' ' + String(JSON.stringify(detail)).slice(0, 300) : ''}`);
}

const PROMPTS = ['Hello', 'The capital of France is', 'Once upon a time', 'def fib(n):', '1, 2, 3, 4,',
  'Caf\u00e9 \u4e2d\u6587 \ud83d\ude00', 'A long prompt: ' + 'lorem ipsum '.repeat(40)];
const messages = () => [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: pick(PROMPTS) }];

// An OpenAI error body; status-specific headers.
function checkErrorBody(cls, status, headers, text) {
  let j;
  try { j = JSON.parse(text); } catch { return violation(cls, `status ${status} with a non-JSON body`, text.slice(0, 200)); }
  if (!j || typeof j.error !== 'object' || typeof j.error.message !== 'string' || !j.error.message)
    return violation(cls, `status ${status} without an OpenAI error object`, j);
  if ((status === 429 || status === 503) && !headers['retry-after']) return violation(cls, `${status} without Retry-After`);
  countError(cls, status, j.error.code ?? j.error.type, j.error.message);
  st(cls).clean_error++;
}

function checkCompletionJSON(cls, j, req, chat) {
  if (!j || !Array.isArray(j.choices) || j.choices.length < 1) return violation(cls, 'no choices', j);
  if (j.object !== (chat ? 'chat.completion' : 'text_completion')) return violation(cls, 'wrong object', j.object);
  for (const c of j.choices) {
    const text = chat ? c.message?.content : c.text;
    if (typeof text !== 'string') return violation(cls, 'choice without text', c);
    if (!['length', 'stop'].includes(c.finish_reason)) return violation(cls, 'bad finish_reason', c.finish_reason);
  }
  const u = j.usage;
  if (!u || !(u.prompt_tokens > 0) || !(u.completion_tokens >= 0) || u.total_tokens !== u.prompt_tokens + u.completion_tokens)
    return violation(cls, 'bad usage', u);
  if (req.max_tokens !== undefined && u.completion_tokens > req.max_tokens * (req.n || 1)) return violation(cls, 'more tokens than max_tokens', u);
  return true;
}

// Parse an SSE body (complete text). Returns true when well formed.
function checkSSE(cls, text, chat, req) {
  if (!text.endsWith('data: [DONE]\n\n')) return violation(cls, 'stream does not end with data: [DONE]', text.slice(-200));
  const events = text.split('\n\n').filter((e) => e.length);
  let finished = 0, tokens = 0;
  for (const ev of events.slice(0, -1)) {
    if (!ev.startsWith('data: ')) return violation(cls, 'SSE event without data:', ev.slice(0, 100));
    let j;
    try { j = JSON.parse(ev.slice(6)); } catch { return violation(cls, 'SSE chunk is not JSON', ev.slice(0, 200)); }
    if (j.error) return violation(cls, 'error inside an accepted stream', j.error);
    if (j.object !== (chat ? 'chat.completion.chunk' : 'text_completion')) return violation(cls, 'wrong chunk object', j.object);
    for (const c of j.choices || []) {
      if (c.finish_reason) finished++;
      if ((chat ? c.delta?.content : c.text)) tokens++;
    }
  }
  if (finished !== (req.n || 1)) return violation(cls, `finish_reason seen ${finished} times`, text.slice(-300));
  return true;
}

// One raw HTTP request; options: cutAfterChunks, pauseMs (slow reader), abortBeforeMs.
function rawRequest(cls, method, pathname, body, opt = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let ttft = 0, chunks = 0, done = false, buf = '';
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const headers = { 'content-type': 'application/json' };
    if (data) headers['content-length'] = data.length;
    const req = http.request({ host: '127.0.0.1', port: PORT, method, path: pathname, headers, agent: opt.noAgent ? false : agent });
    const finish = (r) => { if (!done) { done = true; resolve({ ...r, ms: performance.now() - t0, ttft }); } };
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (!ttft) ttft = performance.now() - t0;
        buf += d;
        chunks++;
        if (opt.cutAfterChunks && chunks >= opt.cutAfterChunks) {
          req.destroy();
          res.destroy();
          finish({ cut: true });
        } else if (opt.pauseMs && chunks === 1) {
          res.pause();
          setTimeout(() => res.resume(), opt.pauseMs);
        }
      });
      res.on('end', () => finish({ status: res.statusCode, headers: res.headers, text: buf }));
      res.on('error', (e) => finish({ neterr: e.message }));
    });
    req.on('error', (e) => finish(opt.cutAfterChunks || opt.abortBeforeMs ? { cut: true } : { neterr: e.message }));
    if (opt.abortBeforeMs !== undefined) setTimeout(() => { req.destroy(); finish({ cut: true }); }, opt.abortBeforeMs);
    if (opt.halfBody && data) { req.write(data.subarray(0, data.length >> 1)); setTimeout(() => { req.destroy(); finish({ cut: true }); }, 50); return; }
    if (data) req.write(data);
    req.end();
  });
}

function judge(cls, r, req, kind) {
  const s = st(cls);
  if (r.cut) { s.cut++; return; }
  if (r.neterr) return violation(cls, 'network error on an uncut request', r.neterr);
  s.lat.push(r.ms);
  if (r.ttft) s.ttft.push(r.ttft);
  if (r.status !== 200) {
    if (r.status < 400) return violation(cls, `status ${r.status}`);
    return checkErrorBody(cls, r.status, r.headers, r.text);
  }
  if (kind === 'error') return violation(cls, 'malformed request accepted (200)', req);
  let ok;
  if (req && req.stream) ok = checkSSE(cls, r.text, kind === 'chat', req);
  else {
    let j;
    try { j = JSON.parse(r.text); } catch { return violation(cls, '200 with a non-JSON body', r.text.slice(0, 200)); }
    ok = checkCompletionJSON(cls, j, req, kind === 'chat');
  }
  if (ok === true) s.ok++;
}

const completionReq = (stream) => ({ model: MODEL, prompt: pick(PROMPTS), max_tokens: ri(1, 24), temperature: pick([0, 0.7, 1]),
  stream, ...(rnd() < 0.3 ? { n: 2 } : {}), ...(rnd() < 0.2 ? { stop: ['\n'] } : {}) });

const MALFORMED = [
  ['POST', '/v1/completions', '{"prompt": "x", "max_tokens": '],
  ['POST', '/v1/completions', 'not json at all'],
  ['POST', '/v1/completions', '[1,2,3]'],
  ['POST', '/v1/completions', '{"prompt": 5}'],
  ['POST', '/v1/completions', '{"prompt": "x", "temperature": "hot"}'],
  ['POST', '/v1/completions', '{"prompt": "x", "max_tokens": -5}'],
  ['POST', '/v1/completions', '{"prompt": "x", "n": 100000}'],
  ['POST', '/v1/completions', '{"prompt": [999999999]}'],
  ['POST', '/v1/completions', '{"prompt": "x", "logit_bias": {"abc": 1}}'],
  ['POST', '/v1/completions', '{}'],
  ['POST', '/v1/completions', ''],
  ['POST', '/v1/chat/completions', '{"messages": "hi"}'],
  ['POST', '/v1/chat/completions', '{"messages": [{"role": "user"}], "stream": "yes"}'],
  ['POST', '/v1/chat/completions', '{"messages":[{"role":"user","content":"\\ud800"}], "top_p": 7}'],
  ['POST', '/v1/nope', '{}'],
  ['GET', '/v1/completions', undefined],
  ['DELETE', '/v1/chat/completions', undefined],
];

// Raw bytes that are not HTTP: the server must answer 400 or close, and stay up.
function garbageSocket() {
  return new Promise((resolve) => {
    const s = net.connect(PORT, '127.0.0.1');
    let got = '';
    s.on('connect', () => s.write(pick(['\x00\x01\x02garbage\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'POST /v1/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}',
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'])));
    s.on('data', (d) => { got += d; });
    const end = () => { s.destroy(); resolve(got); };
    s.on('end', end); s.on('error', end); s.on('close', end);
    setTimeout(end, 5000);
  });
}

// A half-sent request that then goes silent: the server must drop it within
// --timeout (+ slack). Returns the seconds until the server closed, or -1.
function stallSocket() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect(PORT, '127.0.0.1');
    s.on('connect', () => s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":'));
    s.on('data', () => {});
    const done = (v) => { s.destroy(); resolve(v); };
    s.on('close', () => done((performance.now() - t0) / 1000));
    s.on('error', () => {});
    setTimeout(() => done(-1), (TIMEOUT_S + 10) * 1000);
  });
}

async function oneClient() {
  const x = rnd();
  if (x < 0.22) {
    const req = completionReq(false);
    const t0 = performance.now();
    let r;
    try {
      const res = await fetch(BASE + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req) });
      r = { status: res.status, headers: Object.fromEntries(res.headers), text: await res.text(), ms: performance.now() - t0 };
    } catch (e) { r = { neterr: String(e.cause?.code || e.message) }; }
    st('complete').n++;
    return judge('complete', r, req, 'completion');
  }
  if (x < 0.40) {
    const req = completionReq(true);
    st('stream').n++;
    return judge('stream', await rawRequest('stream', 'POST', '/v1/completions', req), req, 'completion');
  }
  if (x < 0.55) {
    st('chat_sdk').n++;
    const s = st('chat_sdk');
    const stream = rnd() < 0.5;
    const t0 = performance.now();
    try {
      if (stream) {
        const it = await client.chat.completions.create({ model: MODEL, messages: messages(), max_tokens: ri(1, 16), stream: true });
        let fin = null, ttft = 0;
        for await (const ch of it) {
          if (!ttft) ttft = performance.now() - t0;
          if (ch.object !== 'chat.completion.chunk') return violation('chat_sdk', 'bad chunk', ch);
          if (ch.choices[0]?.finish_reason) fin = ch.choices[0].finish_reason;
        }
        if (!['length', 'stop'].includes(fin)) return violation('chat_sdk', 'stream without finish_reason', fin);
        s.ttft.push(ttft);
      } else {
        const j = await client.chat.completions.create({ model: MODEL, messages: messages(), max_tokens: ri(1, 16) });
        if (checkCompletionJSON('chat_sdk', j, { max_tokens: 16 }, true) !== true) return;
      }
      s.lat.push(performance.now() - t0);
      s.ok++;
    } catch (e) {
      if (e instanceof OpenAI.APIError && e.status >= 400 && (e.error?.message || e.message)) {
        countError('chat_sdk', e.status, e.code ?? e.type, e.error?.message ?? e.message);
        s.clean_error++;
      } else violation('chat_sdk', 'client error', String(e.message));
    }
    return;
  }
  if (x < 0.68) {
    st('disconnect').n++;
    const req = rnd() < 0.7 ? completionReq(true) : { model: MODEL, messages: messages(), max_tokens: ri(4, 32), stream: true };
    req.max_tokens = Math.max(req.max_tokens, 8);
    const where = ri(0, 3);
    const opt = where === 0 ? { abortBeforeMs: ri(0, 40), noAgent: true } : where === 1 ? { halfBody: true, noAgent: true } : { cutAfterChunks: ri(1, 4), noAgent: true };
    const r = await rawRequest('disconnect', 'POST', req.messages ? '/v1/chat/completions' : '/v1/completions', req, opt);
    return judge('disconnect', r, req, req.messages ? 'chat' : 'completion');
  }
  if (x < 0.78) {
    st('slow_reader').n++;
    const req = { ...completionReq(true), max_tokens: ri(8, 32) };
    return judge('slow_reader', await rawRequest('slow_reader', 'POST', '/v1/completions', req, { pauseMs: ri(200, 1500) }), req, 'completion');
  }
  if (x < 0.92) {
    st('malformed').n++;
    if (rnd() < 0.15) {
      const got = await garbageSocket();
      if (got && !/^HTTP\/1\.[01] [45]\d\d/.test(got)) violation('malformed', 'garbage answered with a non-error', got.slice(0, 100));
      else st('malformed').clean_error++;
      return;
    }
    const [m, p, b] = pick(MALFORMED);
    return judge('malformed', await rawRequest('malformed', m, p, b), b, 'error');
  }
  st('oversized').n++;
  if (rnd() < 0.5) {
    const body = JSON.stringify({ model: MODEL, prompt: 'x'.repeat(MAX_BODY + ri(1, 3 * MAX_BODY)), max_tokens: 1 });
    const r = await rawRequest('oversized', 'POST', '/v1/completions', body, { noAgent: true });
    if (r.status !== 413 && !r.cut) violation('oversized', `body over the limit answered ${r.status ?? r.neterr}`);
    return judge('oversized', r, null, 'error');
  }
  // prompt longer than --max-model-len (fits the body limit)
  const words = ' hello'.repeat(MAX_LEN + 50);
  const r = await rawRequest('oversized', 'POST', '/v1/completions', { model: MODEL, prompt: words, max_tokens: 4 });
  if (r.status !== 400) violation('oversized', `prompt over max-model-len answered ${r.status}`);
  return judge('oversized', r, null, 'error');
}

async function metrics() {
  const t = await (await fetch(BASE + '/metrics')).text();
  const get = (name) => {
    const m = t.match(new RegExp('^deltaserve:' + name + '(\\{[^}]*\\})? ([0-9.eE+-]+)', 'm'));
    return m ? Number(m[2]) : NaN;
  };
  return { running: get('num_requests_running'), waiting: get('num_requests_waiting'), kv: get('kv_cache_usage_perc'), slots: get('gdn_state_slots_used') };
}
const rssKiB = () => Number(fs.readFileSync(`/proc/${PID}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);

async function waitIdle(label) {
  let m;
  for (let i = 0; i < 150; i++) {
    m = await metrics();
    if (m.running === 0 && m.waiting === 0 && m.kv === 0 && m.slots === 0) return m;
    await sleep(100);
  }
  violations.push(`${label}: server not idle 15 s after the round: ${JSON.stringify(m)} (leaked KV blocks / state slots or stuck requests)`);
  return m;
}

async function round(n) {
  let next = 0;
  const worker = async () => { while (next < n) { next++; await oneClient(); } };
  const stall = stallSocket();
  await Promise.all(Array.from({ length: Math.min(CONC, n) }, worker));
  return stall;
}

function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const t0 = performance.now();
console.log(`load_fault: seed ${SEED}, ${ROUNDS} rounds x ${CLIENTS} requests, ${CONC} concurrent, max_body ${MAX_BODY}, max_len ${MAX_LEN}, timeout ${TIMEOUT_S}s`);
// warm-up: one round of the same mix, so arenas, thread stacks and caches exist
await round(Math.min(CLIENTS, 150));
await waitIdle('warm-up');
await sleep(300);
const warm = rssKiB();
console.log(`warm VmRSS ${(warm / 1024).toFixed(1)} MiB`);
for (const k of Object.keys(stats)) delete stats[k];
for (const k of Object.keys(errorsBy)) delete errorsBy[k];
let rssMax = warm;
for (let r = 1; r <= ROUNDS; r++) {
  const tr = performance.now();
  const stallS = await round(CLIENTS);
  if (stallS < 0 || stallS > TIMEOUT_S + 6) violations.push(`stalled upload not dropped within --timeout ${TIMEOUT_S}s (+6): ${stallS.toFixed(1)} s`);
  const m = await waitIdle(`round ${r}`);
  const h = await fetch(BASE + '/health');
  if (h.status !== 200) violations.push(`round ${r}: /health ${h.status}`);
  await sleep(300);
  const rss = rssKiB();
  rssMax = Math.max(rssMax, rss);
  console.log(`round ${r}: ${((performance.now() - tr) / 1000).toFixed(1)} s, stalled socket closed after ${stallS.toFixed(1)} s, metrics ${JSON.stringify(m)}, VmRSS ${(rss / 1024).toFixed(1)} MiB (warm ${(warm / 1024).toFixed(1)})`);
}
const final = rssKiB();
if (final - warm > RSS_BOUND_MB * 1024) violations.push(`VmRSS ${(final / 1024).toFixed(1)} MiB is more than ${RSS_BOUND_MB} MiB over the warm ${(warm / 1024).toFixed(1)} MiB`);

// --- report
let total = 0;
console.log('\nclass          requests     ok  clean_err    cut  violation   p50_ms   p90_ms   p99_ms   max_ms  ttft_p50');
const f = (v) => (Number.isNaN(v) ? '-' : v.toFixed(0)).padStart(8);
for (const [cls, s] of Object.entries(stats).sort()) {
  total += s.n;
  console.log(`${cls.padEnd(14)}${String(s.n).padStart(9)}${String(s.ok).padStart(7)}${String(s.clean_error).padStart(11)}${String(s.cut).padStart(7)}${String(s.violation).padStart(11)} ${f(pct(s.lat, 50))} ${f(pct(s.lat, 90))} ${f(pct(s.lat, 99))} ${f(pct(s.lat, 100))}  ${f(pct(s.ttft, 50))}`);
}
const all = Object.values(stats).flatMap((s) => s.lat);
console.log(`total ${total} requests in ${((performance.now() - t0) / 1000).toFixed(1)} s (incl. warm-up); latency of answered requests p50 ${f(pct(all, 50)).trim()} p90 ${f(pct(all, 90)).trim()} p99 ${f(pct(all, 99)).trim()} ms`);
console.log('errors by status/code (count, first message):' + (Object.keys(errorsBy).length ? '' : ' none'));
for (const [k, v] of Object.entries(errorsBy).sort()) console.log(`  ${k.padEnd(36)} ${String(v).padStart(5)}  ${errorSample[k]}`);
console.log(`VmRSS warm ${(warm / 1024).toFixed(1)} MiB, peak after rounds ${(rssMax / 1024).toFixed(1)} MiB, final ${(final / 1024).toFixed(1)} MiB (bound +${RSS_BOUND_MB} MiB)`);
const unanswered = Object.values(stats).reduce((a, s) => a + s.n - s.ok - s.clean_error - s.cut - s.violation, 0);
if (unanswered > 0) violations.push(`${unanswered} request(s) neither answered nor counted (internal bookkeeping)`);
if (violations.length) {
  console.log(`\n${violations.length} violation(s) (replay with LOAD_SEED=${SEED}):`);
  for (const v of violations) console.log('  ' + v);
  process.exit(1);
}
console.log('load_fault: OK');
process.exit(0);
