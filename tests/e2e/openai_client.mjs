// tests/e2e/openai_client.mjs: the official `openai` npm client against a
// running deltaserve (BASE_URL, MODEL, API_KEY from the environment):
// completions and chat, streaming and not, n=2, logprobs, echo, stop, seeds,
// error classes as the client raises them, greedy stream == non-stream, and
// 64 concurrent clients all answered correctly.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'tools', 'package.json'));
const OpenAI = require('openai');

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY || 'none', maxRetries: 0 });
const model = process.env.MODEL;
let pass = 0, fail = 0;
function check(desc, ok, detail) {
  if (ok) pass++;
  else { fail++; console.log(`FAIL: ${desc}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`); }
}
async function expectError(desc, status, fn) {
  try { await fn(); check(desc, false, 'no error'); }
  catch (e) { check(desc, e instanceof OpenAI.APIError && e.status === status, { status: e.status, msg: e.message }); }
}
const msgs = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }];

// --- completions
const c = await client.completions.create({ model, prompt: 'The capital of France is', max_tokens: 8, temperature: 0 });
check('completion text', typeof c.choices[0].text === 'string' && c.choices[0].text.length > 0, c);
check('completion id', c.id.startsWith('cmpl-'), c.id);
check('completion usage', c.usage.completion_tokens === 8 && c.usage.total_tokens === c.usage.prompt_tokens + 8, c.usage);
let streamed = '', finish = null, usage = null;
for await (const ch of await client.completions.create({ model, prompt: 'The capital of France is', max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } })) {
  for (const x of ch.choices) { streamed += x.text; if (x.finish_reason) finish = x.finish_reason; }
  if (ch.usage) usage = ch.usage;
}
check('greedy completion: stream == non-stream', streamed === c.choices[0].text, [streamed, c.choices[0].text]);
check('stream finish_reason', finish === 'length', finish);
check('stream usage', usage && usage.completion_tokens === 8, usage);
const n2 = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 5, n: 2, temperature: 1, seed: 3 });
check('n=2', n2.choices.length === 2 && n2.choices[1].index === 1, n2.choices);
const lp = await client.completions.create({ model, prompt: 'a b c', max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
check('echo + logprobs: first null', lp.choices[0].logprobs.token_logprobs[0] === null, lp.choices[0].logprobs);
check('echo + logprobs: rest numbers', lp.choices[0].logprobs.token_logprobs.slice(1).every(x => typeof x === 'number' && x <= 0));
check('echo text', lp.choices[0].text === 'a b c', lp.choices[0].text);
const s1 = await client.completions.create({ model, prompt: 'Seeded', max_tokens: 10, temperature: 1, seed: 1234 });
const s2 = await client.completions.create({ model, prompt: 'Seeded', max_tokens: 10, temperature: 1, seed: 1234 });
check('seed reproducible', s1.choices[0].text === s2.choices[0].text, [s1.choices[0].text, s2.choices[0].text]);

// --- chat
const ch = await client.chat.completions.create({ model, messages: msgs, max_tokens: 8, temperature: 0 });
check('chat object', ch.object === 'chat.completion' && ch.id.startsWith('chatcmpl-'), ch);
check('chat message', ch.choices[0].message.role === 'assistant' && typeof ch.choices[0].message.content === 'string', ch.choices[0]);
let chs = '', roleFirst = null, chFinish = null, chUsage = null, nChunks = 0;
for await (const x of await client.chat.completions.create({ model, messages: msgs, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } })) {
  nChunks++;
  if (x.choices.length && roleFirst === null) roleFirst = x.choices[0].delta.role || '';
  for (const y of x.choices) { chs += y.delta.content || ''; if (y.finish_reason) chFinish = y.finish_reason; }
  if (x.usage) chUsage = x.usage;
}
check('chat stream: role delta first', roleFirst === 'assistant', roleFirst);
check('greedy chat: stream == non-stream', chs === ch.choices[0].message.content, [chs, ch.choices[0].message.content]);
check('chat stream finish', chFinish === ch.choices[0].finish_reason, [chFinish, ch.choices[0].finish_reason]);
check('chat stream usage', chUsage && chUsage.completion_tokens === ch.usage.completion_tokens, chUsage);
const chlp = await client.chat.completions.create({ model, messages: msgs, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
const content = chlp.choices[0].logprobs.content;
check('chat logprobs', content.length === chlp.usage.completion_tokens && content.every(t => typeof t.logprob === 'number' && Array.isArray(t.bytes) && t.top_logprobs.length === 3), content);
const chn = await client.chat.completions.create({ model, messages: msgs, max_tokens: 4, n: 2, temperature: 0.8, seed: 9 });
check('chat n=2', chn.choices.length === 2, chn.choices.length);
// stop string taken from the greedy continuation
const full = (await client.completions.create({ model, prompt: 'Hello', max_tokens: 10, temperature: 0 })).choices[0].text;
if (full.length >= 4) {
  const stop = full.slice(2, 4);
  const st = await client.completions.create({ model, prompt: 'Hello', max_tokens: 10, temperature: 0, stop: [stop] });
  check('stop string', st.choices[0].finish_reason === 'stop' && st.choices[0].text === full.slice(0, full.indexOf(stop)), [full, stop, st.choices[0]]);
}
const models = await client.models.list();
check('models.list', models.data.length === 1 && models.data[0].id === model, models.data);

// --- errors, as the client sees them
await expectError('400 bad value', 400, () => client.completions.create({ model, prompt: 'x', temperature: 9 }));
await expectError('400 bad type', 400, () => client.chat.completions.create({ model, messages: 'hi' }));
await expectError('404 unknown model', 404, () => client.completions.create({ model: 'nope', prompt: 'x' }));
await expectError('401 wrong key', 401, () => new OpenAI({ baseURL: process.env.BASE_URL, apiKey: 'wrong', maxRetries: 0 }).models.list());
await expectError('400 too long', 400, () => client.completions.create({ model, prompt: Array(3000).fill(9906), max_tokens: 1 }));

// --- 64 concurrent clients, each checked against its own greedy answer
const prompts = Array.from({ length: 8 }, (_, i) => `Request number ${i} says`);
const want = {};
for (const p of prompts) want[p] = (await client.completions.create({ model, prompt: p, max_tokens: 6, temperature: 0 })).choices[0].text;
const t0 = Date.now();
const jobs = Array.from({ length: 64 }, async (_, i) => {
  const p = prompts[i % prompts.length];
  if (i % 2) {
    let t = '';
    for await (const x of await client.completions.create({ model, prompt: p, max_tokens: 6, temperature: 0, stream: true })) t += x.choices.map(y => y.text).join('');
    return t === want[p];
  }
  return (await client.completions.create({ model, prompt: p, max_tokens: 6, temperature: 0 })).choices[0].text === want[p];
});
const results = await Promise.allSettled(jobs);
const good = results.filter(r => r.status === 'fulfilled' && r.value).length;
check('64 concurrent clients answered correctly', good === 64, results.filter(r => !(r.status === 'fulfilled' && r.value)).slice(0, 3).map(r => r.reason?.message ?? 'wrong text'));
console.log(`64 concurrent requests in ${Date.now() - t0} ms`);
console.log(`openai_client.mjs: ${pass} checks passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
