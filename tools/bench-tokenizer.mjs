// tools/bench-tokenizer.mjs: the npm reference tokenizers on the same text as
// tools/bench-tokenizer.c (run both through tools/bench-tokenizer.sh).
//
//   node tools/bench-tokenizer.mjs TOKENIZER_JSON TEXT_FILE [PASSES]
//
// tiktoken: the WASM build of tiktoken's Rust core, encoding cl100k_base (the
// same merges and regex as the OLMo think-sft and the cl100k tokenizer.json).
// @huggingface/tokenizers: the pure-JS reference our ids are checked against.
// One JSON line per implementation: load ms (best of 3), first and best pass
// MB/s by wall clock and by process CPU time (all threads, so GC counts
// against JS), token count.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { get_encoding } from "tiktoken";
import { Tokenizer } from "@huggingface/tokenizers";

const [tokPath, textPath, passesArg] = process.argv.slice(2);
const passes = Number(passesArg ?? 10);
const text = readFileSync(textPath, "utf8");
const bytes = Buffer.byteLength(text, "utf8");

function run(impl, load, encode) {
  let best_load = Infinity, t = null;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const u = load();
    best_load = Math.min(best_load, performance.now() - t0);
    if (t && t.free) t.free();
    t = u;
  }
  let first = 0, best = Infinity, first_c = 0, best_c = Infinity, ntok = 0;
  for (let p = 0; p < passes; p++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    ntok = encode(t).length;
    const dt = (performance.now() - t0) / 1e3;
    const cu = process.cpuUsage(c0), dc = (cu.user + cu.system) / 1e6; // all threads (GC too)
    if (p === 0) { first = dt; first_c = dc; }
    best = Math.min(best, dt);
    best_c = Math.min(best_c, dc);
  }
  if (t.free) t.free();
  const mb = bytes / 1e6;
  console.log(JSON.stringify({ impl, bytes, tokens: ntok, load_ms: +best_load.toFixed(1),
    first_mbps: +(mb / first).toFixed(1), best_mbps: +(mb / best).toFixed(1),
    first_cpu_mbps: +(mb / first_c).toFixed(1), best_cpu_mbps: +(mb / best_c).toFixed(1) }));
}

run("tiktoken (npm, WASM) cl100k_base", () => get_encoding("cl100k_base"),
    (t) => t.encode(text, [], []));
const json = readFileSync(tokPath, "utf8");
run("@huggingface/tokenizers (npm, JS)", () => new Tokenizer(JSON.parse(json), {}),
    (t) => t.encode(text, { add_special_tokens: false }).ids);
