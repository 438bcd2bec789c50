// tools/tmpl-expected.mjs: renders every chat-template test case with the
// reference engine (@huggingface/jinja, the npm package in tools/node_modules)
// and writes the expected outputs that tests/unit/check_chat_template.c
// compares against byte for byte.
//
//   node tools/tmpl-expected.mjs [cases.json] [expected.json]
//
// Defaults: tests/fixtures/templates/cases.json -> .../expected.json.
// Each case is {name, template: "<file in that dir>" | source: "<inline>", context}
// (or context_from: "<name of an earlier case>" to reuse that case's context).
// Each result is {name, output} or {name, error} (the reference's message; the
// C side must fail too, and for raise_exception give the same message).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja"));
const jinjaVersion = JSON.parse(
  fs.readFileSync(path.join(here, "node_modules/@huggingface/jinja/package.json"), "utf8"),
).version;

const dir = path.join(here, "..", "tests", "fixtures", "templates");
const casesPath = process.argv[2] ?? path.join(dir, "cases.json");
const outPath = process.argv[3] ?? path.join(dir, "expected.json");
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));

const byName = new Map(cases.map((c) => [c.name, c]));
const parsed = new Map();
const results = [];
for (const c of cases) {
  const src = c.template !== undefined ? fs.readFileSync(path.join(path.dirname(casesPath), c.template), "utf8") : c.source;
  let entry;
  try {
    let t = parsed.get(src);
    if (!t) {
      t = new Template(src);
      parsed.set(src, t);
    }
    // A lone UTF-16 surrogate (e.g. from indexing into an emoji) leaves a server
    // as U+FFFD once encoded to UTF-8; compare what goes over the wire.
    const ctx = c.context_from !== undefined ? byName.get(c.context_from).context : c.context;
    entry = { name: c.name, output: t.render(ctx).toWellFormed() };
  } catch (e) {
    entry = { name: c.name, error: String(e && e.message !== undefined ? e.message : e) };
  }
  results.push(entry);
}
fs.writeFileSync(outPath, JSON.stringify({ generator: `@huggingface/jinja ${jinjaVersion}`, results }, null, 1) + "\n");
const errors = results.filter((r) => r.error !== undefined).length;
console.log(`${results.length} cases (${errors} expected errors) -> ${outPath}`);
