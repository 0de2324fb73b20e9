#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (as decode.bench.ts writes with BLORA_BENCH_DECODE_PROFILE): the
// functions with the most self time and the most inclusive time, each as a share of all samples.
//   node bench/gpu/profile-summary.mjs <file.cpuprofile> [rows]
import { readFileSync } from 'node:fs';

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/gpu/profile-summary.mjs <file.cpuprofile> [rows]');
  process.exit(2);
}
const rows = Number(rowsArg ?? 40);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (n) => {
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url ? `${url.replace(/^.*\/(packages|bench|node_modules)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
};

const self = new Map();
const inclusive = new Map();
let total = 0;
for (const id of profile.samples) {
  total++;
  const leaf = nodes.get(id);
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + 1);
  // Each function once per sample, however often it recurses.
  const seen = new Set();
  for (let at = id; at !== undefined; at = parent.get(at)) {
    const name = label(nodes.get(at));
    if (!seen.has(name)) inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
    seen.add(name);
  }
}

const ms = (profile.endTime - profile.startTime) / 1000;
console.log(`${file}: ${total} samples over ${ms.toFixed(1)} ms`);
for (const [title, counts] of [['self', self], ['inclusive', inclusive]]) {
  console.log(`\n${title} time, top ${rows}:`);
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, rows);
  for (const [name, n] of top) console.log(`${((100 * n) / total).toFixed(1).padStart(6)} %  ${name}`);
}
