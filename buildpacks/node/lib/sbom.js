// cnb/node: a CycloneDX SBOM of node_modules (docs/spec-notes.md §3.7, <layer>.sbom.cdx.json).
//
// Usage: node sbom.js NODE_MODULES_DIR BUILDPACK_VERSION > modules.sbom.cdx.json. Walks node_modules (scoped
// packages and nested node_modules too) and reads each package.json: one library component per name@version,
// sorted, with purl pkg:npm/<%40scope/>name@version (also the bom-ref) and licenses: a well-known SPDX identifier
// becomes license.id, another SPDX expression an expression, anything else (or the legacy license object and
// licenses array) license.name. No timestamp or serial number: the same tree gives the same bytes.
"use strict";
const fs = require("fs");
const path = require("path");

const SPDX_IDS = new Set([
  "0BSD", "Apache-2.0", "Artistic-2.0", "BlueOak-1.0.0", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "GPL-2.0-only",
  "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC", "LGPL-2.1-only", "LGPL-2.1-or-later",
  "LGPL-3.0-only", "LGPL-3.0-or-later", "MIT", "MPL-2.0", "PSF-2.0", "Python-2.0", "Unlicense", "Zlib",
]);
const EXPRESSION = /^[A-Za-z0-9.+:-]+( +(AND|OR|WITH) +[A-Za-z0-9.+:()-]+)*$|^\(.*\)$/;

function oneLicense(text) {
  text = String(text).trim();
  if (!text) return [];
  if (SPDX_IDS.has(text)) return [{ license: { id: text } }];
  if (text !== "UNLICENSED" && !/^SEE /i.test(text) && EXPRESSION.test(text)) return [{ expression: text }];
  return [{ license: { name: text } }];
}

function licenses(manifest) {
  const value = manifest.license;
  if (typeof value === "string") return oneLicense(value);
  if (value && typeof value === "object" && value.type) return [{ license: { name: String(value.type) } }];
  if (Array.isArray(manifest.licenses)) {
    return manifest.licenses
      .map((item) => (item && typeof item === "object" ? item.type : item))
      .filter((name) => name)
      .map((name) => ({ license: { name: String(name) } }));
  }
  return [];
}

function purl(name, version) {
  const [scope, bare] = name.startsWith("@") ? name.split("/", 2) : ["", name];
  const prefix = scope ? `${encodeURIComponent(scope)}/` : "";
  return `pkg:npm/${prefix}${encodeURIComponent(bare)}@${encodeURIComponent(version)}`;
}

function packageDirs(modules, found) {
  let entries;
  try {
    entries = fs.readdirSync(modules, { withFileTypes: true });
  } catch (err) {
    return;
  }
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const dir = path.join(modules, entry.name);
    if (entry.name.startsWith("@") && entry.isDirectory()) {
      packageDirs(dir, found);
      continue;
    }
    if (!entry.isDirectory() && !entry.isSymbolicLink()) continue;
    found.push(dir);
    if (entry.isDirectory()) packageDirs(path.join(dir, "node_modules"), found);
  }
}

function main(modules, version) {
  const dirs = [];
  packageDirs(modules, dirs);
  const components = new Map();
  for (const dir of dirs) {
    let manifest;
    try {
      manifest = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    } catch (err) {
      continue;
    }
    if (typeof manifest.name !== "string" || typeof manifest.version !== "string") continue;
    const ref = purl(manifest.name, manifest.version);
    if (components.has(ref)) continue;
    components.set(ref, component(manifest.name, manifest.version, manifest));
  }
  const doc = document(components, version);
  process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  return 0;
}

function document(components, version) {
  const sorted = [...components.keys()].sort().map((key) => components.get(key));
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    version: 1,
    metadata: {
      tools: { components: [{ type: "application", name: "cnb/node", version }] },
      properties: [{ name: "cnb:node:version", value: process.versions.node }],
    },
    components: sorted,
  };
}

function component(name, version, manifest) {
  const ref = purl(name, version);
  const found = { type: "library", "bom-ref": ref, name, version, purl: ref };
  const named = manifest ? licenses(manifest) : [];
  if (named.length) found.licenses = named;
  return found;
}

module.exports = { component, document, purl };

if (require.main === module) {
  process.exitCode = main(process.argv[2] || "node_modules", process.argv[3] || "unknown");
}
