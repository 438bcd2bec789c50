// tests/e2e/deploy_launch.mjs: start the real deltaserve exactly as each
// deployment file does (the image's ENTRYPOINT + CMD + ENV, the compose
// service's command + environment, the Kubernetes container's args + env,
// all read by tools/validate-deploy.mjs --print-launch) and check what the
// platform relies on: the container health check (docker/healthcheck.sh)
// turns healthy, a request for the served model name succeeds, JSON logs are
// JSON, and SIGTERM ends the process with exit 0 inside the platform's stop
// budget. Only two things are substituted: the model directory (the bundled
// tiny model instead of /models/...) and the port (a free one, through the
// same DELTASERVE_PORT variable the files set). Run by deploy_launch.sh.
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = path.resolve(ROOT, process.env.DS_BIN ?? "build/release/deltaserve");
const MODEL = path.resolve(ROOT, process.env.DS_E2E_MODEL ?? "models/olmo-hybrid-tiny");
let pass = 0, fail = 0;
const ok = (c, what, detail = "") => {
  if (c) { pass++; console.log(`ok   ${what}`); } else { fail++; console.log(`FAIL ${what}${detail ? `: ${detail}` : ""}`); }
  return c;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res, rej) => {
  const s = net.createServer();
  s.once("error", rej);
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
});

const pl = spawnSync("node", [path.join(ROOT, "tools/validate-deploy.mjs"), "--print-launch"], { encoding: "utf8" });
if (!ok(pl.status === 0, "validate-deploy.mjs --print-launch", pl.stderr)) process.exit(1);
const launches = pl.stdout.trim().split("\n").map((l) => JSON.parse(l));
ok(launches.some((l) => l.name === "image") && launches.some((l) => l.name.startsWith("compose:")) && launches.some((l) => l.name.startsWith("k8s:")), `launch specs for image, compose and k8s (${launches.map((l) => l.name).join(", ")})`);

for (const L of launches) {
  const port = await freePort();
  const args = [...L.args];
  const mi = args.indexOf("--model");
  if (mi >= 0 && String(args[mi + 1]).startsWith("/models/")) args[mi + 1] = MODEL;
  const served = args.includes("--served-model-name") ? args[args.indexOf("--served-model-name") + 1] : args[mi + 1];
  const env = { ...process.env, ...L.env, DELTASERVE_PORT: String(port) };
  for (const k of Object.keys(env)) if (k.startsWith("DELTASERVE_") && !(k in L.env) && k !== "DELTASERVE_PORT") delete env[k];
  let log = "";
  const child = spawn(BIN, ["serve", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  let exited = null;
  const exitP = new Promise((r) => child.on("exit", (code, sig) => { exited = { code, sig, at: Date.now() }; r(); }));

  // The platform's health check, as the image runs it.
  let healthy = false;
  for (let i = 0; i < 300 && !exited && !healthy; i++) {
    healthy = spawnSync("bash", [path.join(ROOT, "docker/healthcheck.sh")], { env: { ...env } }).status === 0;
    if (!healthy) await sleep(100);
  }
  if (!ok(healthy, `${L.name}: docker/healthcheck.sh turns healthy on port ${port}`, exited ? `server exited ${JSON.stringify(exited)}:\n${log}` : log.slice(-2000))) {
    child.kill("SIGKILL");
    await exitP;
    continue;
  }
  const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: served, prompt: "deploy", max_tokens: 2 }),
  });
  ok(r.status === 200, `${L.name}: completion for model "${served}" 200`, `${r.status} ${await r.text()}`);
  if (L.env.DELTASERVE_LOG_FORMAT === "json") {
    const lines = log.trim().split("\n").filter(Boolean);
    let allJson = lines.length > 0;
    for (const l of lines) try { JSON.parse(l); } catch { allJson = false; }
    ok(allJson, `${L.name}: ${lines.length} log lines, all JSON (DELTASERVE_LOG_FORMAT=json)`, lines.find((l) => { try { JSON.parse(l); return false; } catch { return true; } }));
  }
  const t0 = Date.now();
  child.kill("SIGTERM");
  await Promise.race([exitP, sleep(L.stop_s * 1000)]);
  if (!exited) { child.kill("SIGKILL"); await exitP; }
  ok(exited && exited.code === 0 && exited.at - t0 <= L.stop_s * 1000, `${L.name}: SIGTERM -> exit 0 in ${((exited.at - t0) / 1000).toFixed(1)}s (budget ${L.stop_s}s)`, JSON.stringify(exited));
}
console.log(`deploy_launch: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
