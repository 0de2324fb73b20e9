// What every CPU suite shares: timing one implementation with tinybench, medians over rounds,
// the machine description, the printed table and the JSON file under bench/results/.
import { Bench } from 'tinybench';
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** bench/results/. */
export const RESULTS_DIR = fileURLToPath(new URL('../results', import.meta.url));

// Other work on the machine when the suite started (1, 5, 15 minute load averages).
const LOAD_AT_START = loadavg().map((x) => Math.round(x * 100) / 100);

/** Command-line options shared by the suites: --rounds N, --budget MS (per case and round), --out FILE. */
export function suiteOptions(defaults = {}) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
  return {
    rounds: Number(option('--rounds', process.env.BLORA_BENCH_ROUNDS ?? defaults.rounds ?? 3)) || 1,
    budgetMs: Number(option('--budget', process.env.BLORA_BENCH_BUDGET_MS ?? defaults.budgetMs ?? 600)) || 600,
    out: option('--out', null),
  };
}

/** The median of a list of numbers. */
export function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Times `fn` (sync or async) with tinybench: one call to estimate its cost, then enough
 * iterations to fill about `budgetMs` (at least 3, at most 200) after a short warm-up.
 * Returns the median and the fastest call in ms.
 */
export async function timeCall(fn, budgetMs) {
  const start = performance.now();
  await fn();
  const estimate = performance.now() - start;
  const iterations = Math.max(3, Math.min(200, Math.round(budgetMs / Math.max(estimate, 0.01))));
  const warmupIterations = estimate > 50 ? 1 : Math.min(5, iterations);
  const bench = new Bench({ iterations, time: 0, warmupIterations, warmupTime: 0, throws: true });
  bench.add('call', fn);
  await bench.run();
  const latency = bench.tasks[0].result.latency;
  return { ms: latency.p50, best: latency.min, samples: latency.samplesCount ?? iterations };
}

/** CPU model, core count and memory of this machine. */
export function machine() {
  const list = cpus();
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '';
  } catch {
    // Not Linux: no flags.
  }
  const has = (f) => flags.split(' ').includes(f);
  return {
    cpu: list[0]?.model ?? 'unknown',
    cores: list.length,
    simd: ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni'].filter(has),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${process.platform} ${process.arch}`,
    node: process.version,
    // Other work on the machine at the start and the end of the run (1, 5, 15 minute averages).
    loadAverageStart: LOAD_AT_START,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/**
 * Runs every case's implementations for `rounds` rounds (cases interleaved, so a burst of
 * outside load hits every implementation alike) and returns, per case and implementation, the
 * median over rounds of the per-round medians.
 *
 * A case: { id, label, work?, unit: 'GFLOP/s' | 'GB/s' | 'ms', ours, peers, check?(values),
 *           impls: [{ name, fn, output?() } | { name, measure() } | { name, skipped }], setup?(), teardown?() }.
 * `work` is FLOPs (GFLOP/s) or bytes (GB/s); `ours` names the implementation the `peers` are
 * compared with. Before its first timing, an implementation with `output` runs once and
 * `check` (given the result as a Float32Array) returns a problem or null; a failed check
 * leaves the implementation out, reported as skipped with the reason (an implementation's own
 * `check` replaces the case's). `measure` (async, returning
 * { ms, best }) replaces tinybench for an implementation timed by its own profiler.
 */
export async function runCases(cases, { rounds, budgetMs }, log = console.log) {
  const samples = new Map();
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      await c.setup?.();
      for (const impl of c.impls) {
        if (impl.skipped) continue;
        const check = impl.check ?? c.check;
        if (round === 0 && check && impl.output) {
          // A figure is only reported for an implementation whose result is right.
          const problem = check(await impl.output());
          if (problem) {
            impl.skipped = `result check failed: ${problem}`;
            log(`${c.label}: ${impl.name}: ${impl.skipped}`);
            continue;
          }
        }
        const budget = impl.budgetMs ?? budgetMs;
        // `measure` times an implementation by other means (a peer's own profiler).
        const r = impl.measure ? await impl.measure() : await timeCall(impl.fn, budget);
        const key = `${c.id}|${impl.name}`;
        samples.set(key, [...(samples.get(key) ?? []), r]);
        log(`round ${round + 1}/${rounds}  ${c.label.padEnd(38)} ${impl.name.padEnd(26)} ${fmtMs(r.ms).padStart(10)} ms`);
      }
      await c.teardown?.();
    }
  }
  return cases.map((c) => ({
    id: c.id,
    label: c.label,
    unit: c.unit,
    work: c.work ?? null,
    ours: c.ours,
    peers: c.peers ?? [],
    results: Object.fromEntries(c.impls.map((impl) => {
      if (impl.skipped) return [impl.name, { skipped: impl.skipped }];
      const rs = samples.get(`${c.id}|${impl.name}`);
      const ms = median(rs.map((r) => r.ms));
      return [impl.name, {
        ms,
        best: Math.min(...rs.map((r) => r.best)),
        roundMs: rs.map((r) => r.ms),
        // How much the rounds disagreed: slowest round median / fastest (1 = no noise).
        spread: Math.max(...rs.map((r) => r.ms)) / Math.min(...rs.map((r) => r.ms)),
        value: rate(c, ms),
      }];
    })),
  }));
}

/** GFLOP/s or GB/s of `ms` for a case, or null for plain times. */
function rate(c, ms) {
  if (c.unit === 'GFLOP/s' || c.unit === 'GB/s') return c.work / ms / 1e6;
  return null;
}

function fmtMs(ms) {
  return ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

/**
 * Ratios of the case's reference implementation (`ours`) against each of its `peers`:
 * peer time / our time, so above 1 means ours is faster.
 */
export function ratios(result) {
  const ours = result.results[result.ours];
  const out = {};
  if (!ours || ours.skipped) return out;
  for (const peer of result.peers) {
    const p = result.results[peer];
    out[`${result.ours} vs ${peer}`] = p && !p.skipped ? p.ms / ours.ms : null;
  }
  return out;
}

/** The fastest measured implementation of a case whose name starts with `prefix`: { name, ms } or null. */
export function fastestPeer(result, prefix) {
  const found = Object.entries(result.results)
    .filter(([name, r]) => name.startsWith(prefix) && !r.skipped)
    .sort(([, a], [, b]) => a.ms - b.ms)[0];
  return found ? { name: found[0], ms: found[1].ms } : null;
}

/** Prints the suite's table: one row per case and implementation, then the ratios. */
export function printTable(title, results) {
  console.log(`\n${title}`);
  const rows = [['case', 'implementation', 'median ms', 'best ms', 'rate']];
  for (const r of results) {
    for (const [name, v] of Object.entries(r.results)) {
      rows.push(v.skipped
        ? [r.label, name, 'skipped', '', v.skipped]
        : [r.label, name, fmtMs(v.ms), fmtMs(v.best), v.value === null ? '' : `${v.value.toFixed(1)} ${r.unit}`]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, j) => String(cell).padEnd(widths[j])).join('  ').trimEnd());
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  const ratioLines = results.flatMap((r) => Object.entries(ratios(r)).map(([k, v]) =>
    `${r.label.padEnd(38)} ${k.padEnd(44)} ${v === null ? 'peer skipped' : `${v.toFixed(2)}x`}`));
  if (ratioLines.length) {
    console.log('\nratios (peer time / our time; above 1: ours is faster)');
    for (const line of ratioLines) console.log(line);
  }
}

/**
 * How noisy the run was: the median and the largest spread (slowest round median / fastest)
 * over every timed implementation, and the load averages at the start and the end.
 */
export function noise(results) {
  const spreads = results.flatMap((r) => Object.values(r.results).map((v) => v.spread).filter((x) => typeof x === 'number'));
  const m = machine();
  return {
    medianSpread: spreads.length ? Math.round(median(spreads) * 100) / 100 : null,
    maxSpread: spreads.length ? Math.round(Math.max(...spreads) * 100) / 100 : null,
    loadAverageStart: m.loadAverageStart,
    loadAverageEnd: m.loadAverage,
  };
}

/** Today's date as YYYY-MM-DD (UTC). */
export function today() {
  return new Date().toISOString().slice(0, 10);
}

/**
 * Writes the suite's JSON (machine, date, versions, settings, medians, ratios, targets) to
 * `out` or bench/results/cpu-<suite>-<date>.json, and returns the path.
 */
export function writeResults(suite, { versions, settings, results, targets = [], notes = [] }, out = null) {
  const file = out ?? join(RESULTS_DIR, `cpu-${suite}-${today()}.json`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const report = {
    suite: `cpu-${suite}`,
    date: new Date().toISOString(),
    machine: machine(),
    versions,
    settings,
    notes,
    noise: noise(results),
    cases: results.map((r) => ({ ...r, ratios: ratios(r) })),
    targets,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
  return file;
}
