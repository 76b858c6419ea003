// cnb/node: the web process, as a launch.toml (CNB-SPEC §3.5; Buildpack API 0.12 command arrays).
//
// Usage: node launch.js APP_DIR > launch.toml (what was chosen goes to stderr). scripts.start runs through
// /bin/sh -c, as npm start would (node_modules/.bin is on PATH through the layer's env); without it, like npm:
// node server.js, else node <main>, else node index.js. Nothing found: an empty file and a warning.
"use strict";
const fs = require("fs");
const path = require("path");

function command(app, manifest) {
  const start = manifest.scripts && manifest.scripts.start;
  if (typeof start === "string" && start.trim()) return [["/bin/sh", "-c", start.trim()], "scripts.start"];
  const candidates = ["server.js"];
  if (typeof manifest.main === "string" && manifest.main) candidates.push(manifest.main);
  candidates.push("index.js");
  for (const file of candidates) {
    if (fs.existsSync(path.join(app, file))) return [["node", file], `node runs ${file}`];
  }
  return null;
}

function main(app) {
  const manifest = JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8"));
  const chosen = command(app, manifest);
  if (!chosen) {
    process.stderr.write("cnb/node: warning: no web process (no scripts.start, server.js, main or index.js)\n");
    return 0;
  }
  const [argv, why] = chosen;
  process.stderr.write(`cnb/node: web process (${why}): ${argv.join(" ")}\n`);
  // JSON string escapes are valid TOML basic-string escapes.
  process.stdout.write(`[[processes]]\ntype = "web"\ncommand = [${argv.map((a) => JSON.stringify(a)).join(", ")}]\ndefault = true\n`);
  return 0;
}

process.exitCode = main(process.argv[2] || ".");
