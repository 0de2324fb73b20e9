// Our side of the CPU suites: the TypeScript kernels captured before @blora/cpu-kernels
// replaces them with native ones, and the versions every report records.
import { readFileSync } from 'node:fs';
import { findKernel } from '@blora/tensor';
import '@blora/quant';
import { peerVersion, PEERS } from '../peers/load.mjs';

/**
 * The TypeScript and native kernels of `ops` on the cpu device, and the native package's info.
 * Must be the first thing to import @blora/cpu-kernels in the process.
 */
export async function ourKernels(ops) {
  const typescript = Object.fromEntries(ops.map((op) => [op, findKernel(op, 'cpu')]));
  const { cpuKernelsInfo } = await import('@blora/cpu-kernels');
  const native = Object.fromEntries(ops.map((op) => [op, findKernel(op, 'cpu')]));
  const info = cpuKernelsInfo();
  return { typescript, native, info };
}

/** Versions of Node, our packages (with the native build's state) and every peer. */
export function versions(info) {
  const pkg = (name) => JSON.parse(readFileSync(new URL(`../../packages/${name}/package.json`, import.meta.url), 'utf8')).version;
  return {
    node: process.version,
    blora: pkg('tensor'),
    cpuKernels: info.native ? { native: true, isa: info.isa, threads: info.threads } : { native: false, reason: info.reason },
    tinybench: JSON.parse(readFileSync(new URL('../../node_modules/tinybench/package.json', import.meta.url), 'utf8')).version,
    peers: Object.fromEntries(Object.keys(PEERS).map((name) => [name, peerVersion(name)])),
  };
}

/** The row-major float64 dot product of row i of a [m, k] and column j of b [k, n]. */
export function refDot(a, b, k, n, i, j) {
  let s = 0;
  for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
  return s;
}

/** Max relative error of `values` at `positions` against `expected` (scaled by the row's magnitude). */
export function relativeError(values, expected, scale) {
  let worst = 0;
  for (const [index, want] of expected) worst = Math.max(worst, Math.abs(values[index] - want) / scale);
  return worst;
}
