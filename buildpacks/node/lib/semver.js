// cnb/node: does a node version meet an engines.node range (https://docs.npmjs.com/cli/configuring-npm/package-json#engines)?
//
// satisfies("20.19.2", ">=18 <21 || ^22") -> true, false, or null when the range cannot be read. The range grammar
// is npm's (node-semver): "||" alternatives of space-separated comparators (<, <=, >, >=, =, bare), x-ranges
// (18, 18.x, *), ~ and ^ ranges and "A - B" hyphen ranges. Prerelease tags are compared as node-semver does not
// need here: node releases have none.
"use strict";

const PART = "(?:0|[1-9]\\d*|[xX*])";
const VERSION = new RegExp(`^v?(${PART})(?:\\.(${PART})(?:\\.(${PART})(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?)?)?$`);

function parse(text) {
  const match = VERSION.exec(text.trim());
  if (!match) return null;
  const parts = match.slice(1, 4).map((p) => (p === undefined || /^[xX*]$/.test(p) ? null : Number(p)));
  // once a part is a wildcard, the rest are too
  for (let i = 1; i < 3; i++) if (parts[i - 1] === null) parts[i] = null;
  return parts;
}

function compare(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

function floor(parts) {
  return parts.map((p) => (p === null ? 0 : p));
}

// the smallest version above every version matching the x-range PARTS
function ceiling(parts) {
  const known = parts.filter((p) => p !== null).length;
  if (known === 0) return null;
  if (known === 3) return [parts[0], parts[1], parts[2] + 1];
  if (known === 2) return [parts[0], parts[1] + 1, 0];
  return [parts[0] + 1, 0, 0];
}

// one comparator as a list of [op, version] tests, or null
function comparator(text) {
  const match = /^(<=|>=|<|>|=|~>|~|\^)?\s*(.*)$/.exec(text);
  const op = match[1] || "";
  const parts = parse(match[2]);
  if (!parts) return null;
  const low = floor(parts);
  if (op === "" || op === "=") {
    const high = ceiling(parts);
    return high ? [[">=", low], ["<", high]] : [];
  }
  if (op === ">") {
    const high = ceiling(parts);
    return high ? [[parts[2] === null ? ">=" : ">", parts[2] === null ? high : low]] : [["<", [0, 0, 0]]];
  }
  if (op === ">=") return [[">=", low]];
  if (op === "<") return [["<", low]];
  if (op === "<=") {
    const high = ceiling(parts);
    return high ? [[parts[2] === null ? "<" : "<=", parts[2] === null ? high : low]] : [];
  }
  if (op === "~" || op === "~>") {
    if (parts[0] === null) return [];
    const high = parts[1] === null ? [parts[0] + 1, 0, 0] : [parts[0], parts[1] + 1, 0];
    return [[">=", low], ["<", high]];
  }
  // ^: the leftmost non-zero part stays
  if (parts[0] === null) return [];
  let high;
  if (parts[0] > 0 || parts[1] === null) high = [parts[0] + 1, 0, 0];
  else if (parts[1] > 0 || parts[2] === null) high = [0, parts[1] + 1, 0];
  else high = [0, 0, parts[2] + 1];
  return [[">=", low], ["<", high]];
}

function test(version, [op, bound]) {
  const c = compare(version, bound);
  return { "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0 }[op];
}

function satisfies(versionText, range) {
  const version = parse(versionText);
  if (!version || version.includes(null)) return null;
  let any = false;
  for (const alternative of range.split("||")) {
    let text = alternative.trim().replace(/(<=|>=|<|>|=|~>|~|\^)\s+/g, "$1");
    let tests = [];
    const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(text);
    if (hyphen) {
      const low = parse(hyphen[1]);
      const high = parse(hyphen[2]);
      if (!low || !high) return null;
      tests.push([">=", floor(low)]);
      const top = high.includes(null) ? ceiling(high) : null;
      if (top) tests.push(["<", top]);
      else if (!high.includes(null)) tests.push(["<=", high]);
      text = "";
    }
    for (const word of text ? text.split(/\s+/) : []) {
      const more = comparator(word);
      if (more === null) return null;
      tests = tests.concat(more);
    }
    if (tests.every((t) => test(version, t))) any = true;
  }
  return any;
}

module.exports = { satisfies };
