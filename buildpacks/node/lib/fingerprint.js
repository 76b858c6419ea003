// cnb/node: what decides node_modules, as one sha256 (used by bin/build; CNB-SPEC §3.4 layer metadata).
//
// Usage: node fingerprint.js APP_DIR  ->  prints "SOURCE SHA256", SOURCE being package-lock.json,
// npm-shrinkwrap.json or package.json (no lockfile). The hash covers the lockfile's bytes and the dependency fields
// of package.json (dependencies, optionalDependencies, devDependencies, peerDependencies, bundleDependencies,
// overrides), so editing scripts, the version or the app's code never invalidates node_modules. The node version
// is kept separately in the layer metadata (native addons are built for one ABI).
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const FIELDS = [
  "dependencies", "optionalDependencies", "devDependencies", "peerDependencies", "bundleDependencies",
  "bundledDependencies", "overrides",
];

function main(app) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8"));
  } catch (err) {
    process.stderr.write(`cnb/node: error: package.json cannot be read: ${err.message}\n`);
    return 1;
  }
  const hash = crypto.createHash("sha256");
  let source = "package.json";
  for (const lock of ["npm-shrinkwrap.json", "package-lock.json"]) {
    const file = path.join(app, lock);
    if (fs.existsSync(file)) {
      source = lock;
      hash.update(`${lock}\0`);
      hash.update(fs.readFileSync(file));
      break;
    }
  }
  const deps = {};
  for (const field of FIELDS) {
    if (manifest[field] !== undefined) deps[field] = manifest[field];
  }
  hash.update(`\0package.json\0${JSON.stringify(deps)}`);
  process.stdout.write(`${source} ${hash.digest("hex")}\n`);
  return 0;
}

process.exitCode = main(process.argv[2] || ".");
