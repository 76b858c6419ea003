// cnb/node: everything bin/build needs from package.json and the lockfile, in one node process.
//
// Usage: node plan.js APP_DIR OUT_DIR BUILDPACK_VERSION. Writes into OUT_DIR:
//   plan           shell-safe lines NAME=VALUE: source (the lockfile, or package.json), manager (npm, pnpm, yarn1,
//                  yarn-berry), pm (the packageManager spec for corepack, or empty), fingerprint (sha256 of the
//                  lockfile and the dependency fields of package.json: scripts, the version or the code never
//                  invalidate node_modules), node (this node's version)
//   launch.toml    the web process (https://github.com/buildpacks/spec/blob/main/buildpack.md#launchtoml-toml):
//                  scripts.start through /bin/sh -c, as npm start would; else node server.js, node <main>,
//                  node index.js (the first that exists); nothing found: no process and a warning
//   probes         the app files whose existence chose the web process (bin/build re-plans when one appears)
//   sbom.cdx.json  a CycloneDX SBOM of the production dependencies the lockfile names (pkg:npm purls); absent
//                  without a lockfile (bin/build then lists node_modules after the install)
// engines.node not met by this node: a one-line error and exit 1. Bad package.json: a one-line error, exit 1.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { component, document } = require("./sbom.js");
const { satisfies } = require("./semver.js");

const FIELDS = [
  "dependencies", "optionalDependencies", "devDependencies", "peerDependencies", "bundleDependencies",
  "bundledDependencies", "overrides", "resolutions", "pnpm", "packageManager", "workspaces",
];
const LOCKFILES = ["npm-shrinkwrap.json", "package-lock.json", "pnpm-lock.yaml", "yarn.lock"];

class PlanError extends Error {}

// --- a small YAML / yarn-v1 reader: block mappings of scalars, which is all these lockfiles use -------------------
function unquote(text) {
  text = text.trim();
  if (text.length >= 2 && (text[0] === '"' || text[0] === "'") && text[text.length - 1] === text[0]) {
    return text.slice(1, -1);
  }
  return text;
}

function splitPair(content) {
  // "key: value" (YAML) or "key value" (yarn v1); keys may be quoted, and a yarn v1 key lists several specs.
  for (const colon of [true, false]) {
    let quote = "";
    for (let i = 0; i < content.length; i++) {
      const ch = content[i];
      if (quote) {
        if (ch === quote) quote = "";
      } else if (ch === '"' || ch === "'") {
        quote = ch;
      } else if (colon && ch === ":" && (i + 1 === content.length || content[i + 1] === " ")) {
        return [content.slice(0, i), content.slice(i + 1).trim()];
      } else if (!colon && ch === " ") {
        return [content.slice(0, i), content.slice(i + 1).trim()];
      }
    }
  }
  return [content, ""];
}

function readBlocks(text) {
  const root = {};
  const stack = [{ indent: -1, map: root }];
  for (const raw of text.split(/\r?\n/)) {
    if (!raw.trim() || raw.trimStart().startsWith("#")) continue;
    const indent = raw.length - raw.trimStart().length;
    const content = raw.trim();
    if (content.startsWith("- ")) continue;  // lists (cpu, os, bin) say nothing about what is installed
    while (stack.length > 1 && indent <= stack[stack.length - 1].indent) stack.pop();
    const parent = stack[stack.length - 1].map;
    const [key, value] = splitPair(content);
    if (value === "") {
      const child = {};
      parent[unquote(key)] = child;
      stack.push({ indent, map: child });
    } else {
      parent[unquote(key)] = unquote(value);
    }
  }
  return root;
}

// --- production closure over a lockfile ---------------------------------------------------------------------------
function rootDeps(manifest) {
  return Object.entries({ ...(manifest.optionalDependencies || {}), ...(manifest.dependencies || {}) });
}

function closure(roots, resolve) {
  const found = new Map();
  const seen = new Set();
  const todo = [...roots];
  while (todo.length) {
    const [name, ref] = todo.pop();
    const key = `${name}\0${ref}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const entry = resolve(name, ref);
    if (!entry) continue;
    if (entry.version) found.set(`${entry.name}@${entry.version}`, component(entry.name, entry.version, entry));
    todo.push(...entry.deps);
  }
  return found;
}

function depsOf(entry) {
  const deps = [];
  for (const field of ["dependencies", "optionalDependencies"]) {
    if (entry && typeof entry[field] === "object") deps.push(...Object.entries(entry[field]));
  }
  return deps;
}

function npmComponents(lock) {
  const found = new Map();
  if (lock.packages && typeof lock.packages === "object") {
    for (const [where, entry] of Object.entries(lock.packages)) {
      if (!where || entry.dev || entry.link || entry.extraneous || !entry.version) continue;
      const name = entry.name || where.slice(where.lastIndexOf("node_modules/") + "node_modules/".length);
      found.set(`${name}@${entry.version}`, component(name, entry.version, entry));
    }
    return found;
  }
  const walk = (deps) => {
    for (const [name, entry] of Object.entries(deps || {})) {
      if (entry.dev || !entry.version || /^(file|link):/.test(entry.version)) continue;
      found.set(`${name}@${entry.version}`, component(name, entry.version, entry));
      walk(entry.dependencies);
    }
  };
  walk(lock.dependencies);
  return found;
}

function bareVersion(version) {
  return String(version).replace(/\(.*$/, "").replace(/_.*$/, "");
}

function pnpmComponents(lock, manifest) {
  const major = parseFloat(lock.lockfileVersion || "0");
  const importer = (lock.importers && lock.importers["."]) || lock;
  const roots = [];
  for (const field of ["dependencies", "optionalDependencies"]) {
    for (const [name, value] of Object.entries(importer[field] || {})) {
      roots.push([name, typeof value === "object" ? value.version : value]);
    }
  }
  if (!roots.length && !lock.importers) roots.push(...rootDeps(manifest));
  const snapshots = lock.snapshots || lock.packages || {};
  return closure(roots, (name, ref) => {
    if (!ref || /^(link|file|workspace):/.test(ref)) return null;
    let entry;
    if (major >= 9) entry = snapshots[`${name}@${ref}`];
    else entry = snapshots[`/${name}@${ref}`] || snapshots[`/${name}/${ref}`];
    if (ref.startsWith("/")) {  // an aliased or git dependency: the key itself
      entry = snapshots[ref];
    }
    return { name, version: bareVersion(ref.startsWith("/") ? ref.slice(ref.lastIndexOf("@") + 1) : ref),
             deps: depsOf(entry) };  // prettier-ignore
  });
}

function yarnComponents(lock, manifest, berry) {
  const bySpec = new Map();
  for (const [key, entry] of Object.entries(lock)) {
    if (key === "__metadata" || typeof entry !== "object") continue;
    for (const spec of key.split(",")) bySpec.set(unquote(spec.trim()), entry);
  }
  const nameOf = (spec) => spec.slice(0, spec.indexOf("@", 1));
  return closure(rootDeps(manifest), (name, range) => {
    let spec = `${name}@${range}`;
    if (berry && !/^[a-z]+:/.test(range)) spec = `${name}@npm:${range}`;
    const entry = bySpec.get(spec);
    if (!entry) return null;
    if (berry && /@(workspace|link|portal|file):/.test(entry.resolution || "")) return { name, deps: depsOf(entry) };
    const resolved = berry && entry.resolution ? nameOf(unquote(entry.resolution)) : name;
    return { name: resolved, version: entry.version, deps: depsOf(entry) };
  });
}

// --- the web process --------------------------------------------------------------------------------------------
function webProcess(app, manifest) {
  const start = manifest.scripts && manifest.scripts.start;
  if (typeof start === "string" && start.trim()) return [[["/bin/sh", "-c", start.trim()], "scripts.start"], []];
  const candidates = ["server.js"];
  if (typeof manifest.main === "string" && manifest.main) candidates.push(manifest.main);
  candidates.push("index.js");
  for (const file of candidates) {
    if (fs.existsSync(path.join(app, file))) return [[["node", file], `node runs ${file}`], candidates];
  }
  return [null, candidates];
}

function launchToml(chosen) {
  if (!chosen) {
    process.stderr.write("cnb/node: warning: no web process (no scripts.start, server.js, main or index.js)\n");
    return "";
  }
  const [argv, why] = chosen;
  process.stderr.write(`cnb/node: web process (${why}): ${argv.join(" ")}\n`);
  // JSON string escapes are valid TOML basic-string escapes.
  return `[[processes]]\ntype = "web"\ncommand = [${argv.map((a) => JSON.stringify(a)).join(", ")}]\ndefault = true\n`;
}

// --- the package manager ----------------------------------------------------------------------------------------
function manager(source, manifest, lockText) {
  const declared = typeof manifest.packageManager === "string" ? manifest.packageManager.trim() : "";
  if (declared && !/^(npm|pnpm|yarn)@[0-9A-Za-z.+-]+$/.test(declared)) {
    throw new PlanError(`package.json: packageManager "${declared}" is not NAME@VERSION (npm, pnpm or yarn)`);
  }
  const spec = declared.replace(/\+.*$/, "");  // corepack checks a +sha hash itself; keep the shell line simple
  if (source === "pnpm-lock.yaml") return ["pnpm", spec.startsWith("pnpm@") ? spec : ""];
  if (source === "yarn.lock") {
    const berry = /^__metadata:/m.test(lockText);
    if (berry && !spec.startsWith("yarn@")) {
      throw new PlanError('yarn.lock is a Yarn 2+ lockfile: name the version in package.json, e.g. "packageManager": "yarn@4.5.3"');
    }
    return [berry ? "yarn-berry" : "yarn1", spec.startsWith("yarn@") ? spec : ""];
  }
  return ["npm", ""];
}

function plan(app, out, version) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8"));
  } catch (err) {
    throw new PlanError(`package.json cannot be read: ${err.message}`);
  }
  if (!manifest || typeof manifest !== "object" || Array.isArray(manifest)) {
    throw new PlanError("package.json is not a JSON object");
  }
  const engines = manifest.engines && manifest.engines.node;
  if (typeof engines === "string" && engines.trim()) {
    const ok = satisfies(process.versions.node, engines);
    if (ok === null) throw new PlanError(`package.json: engines.node "${engines}" is not a version range`);
    if (!ok) {
      throw new PlanError(`package.json wants node ${engines} (engines.node); the build image has node ${process.version}`);
    }
  }
  const hash = crypto.createHash("sha256");
  let source = "package.json";
  let lockText = "";
  for (const lock of LOCKFILES) {
    const file = path.join(app, lock);
    if (fs.existsSync(file)) {
      source = lock;
      lockText = fs.readFileSync(file, "utf8");
      hash.update(`${lock}\0`);
      hash.update(lockText);
      break;
    }
  }
  const deps = {};
  for (const field of FIELDS) {
    if (manifest[field] !== undefined) deps[field] = manifest[field];
  }
  hash.update(`\0package.json\0${JSON.stringify(deps)}`);
  const [pm, spec] = manager(source, manifest, lockText);

  let components = null;
  try {
    if (source === "package.json") components = null;
    else if (source.endsWith(".json")) components = npmComponents(JSON.parse(lockText));
    else if (source === "pnpm-lock.yaml") components = pnpmComponents(readBlocks(lockText), manifest);
    else if (source === "yarn.lock") components = yarnComponents(readBlocks(lockText), manifest, pm === "yarn-berry");
  } catch (err) {
    throw new PlanError(`${source} cannot be read: ${err.message}`);
  }
  const [chosen, probes] = webProcess(app, manifest);
  fs.writeFileSync(path.join(out, "launch.toml"), launchToml(chosen));
  fs.writeFileSync(path.join(out, "probes"), probes.map((p) => `${p}\n`).join(""));
  if (components) fs.writeFileSync(path.join(out, "sbom.cdx.json"), `${JSON.stringify(document(components, version), null, 2)}\n`);
  const lines = { source, manager: pm, pm: spec, fingerprint: hash.digest("hex"), node: process.version };
  fs.writeFileSync(path.join(out, "plan"), Object.entries(lines).map(([k, v]) => `${k}=${v}\n`).join(""));
}

function main(argv) {
  try {
    plan(argv[0] || ".", argv[1] || ".", argv[2] || "unknown");
    return 0;
  } catch (err) {
    if (!(err instanceof PlanError)) throw err;
    process.stderr.write(`cnb/node: error: ${err.message}\n`);
    return 1;
  }
}

module.exports = { readBlocks };
if (require.main === module) process.exitCode = main(process.argv.slice(2));
