// Regenerates the benchmark tables and plots from the newest JSON of each suite in
// bench/results/: docs/images/bench-*.svg, and the generated sections of docs/benchmarks.md
// (each between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; the prose around them is
// written by hand and left alone).
//
//   node bench/report/plots.mjs       (also run by `npm run bench` after the suites)
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { barChart, formatValue } from './svg.mjs';
import { RESULTS_DIR } from './suite.mjs';

const DOCS = fileURLToPath(new URL('../../docs', import.meta.url));
const IMAGES = join(DOCS, 'images');
const PAGE = join(DOCS, 'benchmarks.md');

/** The newest results file of `prefix` (dates sort as text), parsed, with its name; or null. */
function newest(prefix) {
  const pattern = new RegExp(`^${prefix}-(\\d{4}-\\d{2}-\\d{2})\\.json$`);
  const files = readdirSync(RESULTS_DIR).filter((f) => pattern.test(f)).sort();
  if (!files.length) return null;
  const file = files[files.length - 1];
  return { file, data: JSON.parse(readFileSync(join(RESULTS_DIR, file), 'utf8')) };
}

const CPU_SUITES = [
  { suite: 'matmul', title: 'fp32 matmul', axis: 'GFLOP/s = 2·n³ / median time (longer is better)', value: (r) => r.value },
  { suite: 'quant', title: '4-bit weight products, 4096 x 4096', axis: 'ms per call, median (shorter is better)', value: (r) => r.ms },
  { suite: 'softmax-add', title: 'softmax and elementwise add', axis: 'GB/s of compulsory traffic (longer is better)', value: (r) => r.value },
  { suite: 'train-step', title: 'Q-BLoRA training step of the embedded model', axis: 'training tokens/s (longer is better)', value: (r) => r.value },
];

function ms(v) {
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/** Markdown table of one CPU suite: every implementation of every case, and ours against it. */
function cpuTable(data) {
  const rateUnit = data.cases.find((c) => c.unit !== 'ms')?.unit;
  const lines = [
    `| case | implementation | median ms${rateUnit ? ` | ${rateUnit}` : ''} | ours is faster by |`,
    `| --- | --- | ---:${rateUnit ? ' | ---:' : ''} | ---: |`,
  ];
  for (const c of data.cases) {
    for (const [name, r] of Object.entries(c.results)) {
      const ratio = c.ratios[`${c.ours} vs ${name}`];
      const cells = r.skipped
        ? [`skipped: ${r.skipped}`, ...(rateUnit ? [''] : []), '']
        : [ms(r.ms), ...(rateUnit ? [r.value === null ? '' : formatValue(r.value)] : []),
          name === c.ours ? '(ours)' : ratio === null || ratio === undefined ? '' : `${ratio.toFixed(2)}x`];
      lines.push(`| ${c.label} | ${name === c.ours ? `**${name}**` : name} | ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

/** A spread (slowest / fastest) as the percentage by which the slowest exceeded the fastest. */
function pct(spread) {
  return `${Math.round((spread - 1) * 100)} %`;
}

function machineLine(data) {
  const m = data.machine;
  const peers = Object.entries(data.versions.peers).map(([n, v]) => `${n} ${v ?? 'not installed'}`).join(', ');
  const ck = data.versions.cpuKernels;
  const load = m.loadAverageStart
    ? `load average ${m.loadAverageStart.join(' / ')} at the start, ${m.loadAverage.join(' / ')} at the end`
    : `load average at the end ${m.loadAverage?.join(' / ') ?? 'not recorded'}`;
  const spread = data.noise?.medianSpread
    ? `; the round medians of an implementation differed by ${pct(data.noise.medianSpread)} (median over implementations; up to ${pct(data.noise.maxSpread)})`
    : '';
  return `${data.date.slice(0, 10)}, ${m.cpu} (${m.cores} cores; ${m.simd.join(', ')}), ${m.platform}, Node ${m.node}; ` +
    `our kernels: ${ck.native ? `native ${ck.isa}, ${ck.threads} threads` : `TypeScript (${ck.reason})`}; ${peers}; ` +
    `${load}${spread}. Source: \`bench/results/${data.fileName}\`.`;
}

const sections = {};
const targets = [];
mkdirSync(IMAGES, { recursive: true });
for (const spec of CPU_SUITES) {
  const found = newest(`cpu-${spec.suite}`);
  if (!found) {
    sections[`cpu-${spec.suite}`] = `No results yet: run \`npm run bench\`.`;
    continue;
  }
  const data = { ...found.data, fileName: found.file };
  targets.push(...data.targets.map((t) => ({ ...t, file: found.file })));
  const svgName = `bench-cpu-${spec.suite}.svg`;
  writeFileSync(join(IMAGES, svgName), barChart({
    title: `${spec.title} (CPU, ${data.machine.cores} cores)`,
    axis: spec.axis,
    groups: data.cases.map((c) => ({
      label: c.label,
      bars: Object.entries(c.results).map(([name, r]) => ({ name, value: r.skipped ? null : spec.value(r), note: r.skipped ? 'skipped' : undefined })),
    })),
  }));
  sections[`cpu-${spec.suite}`] = [
    `![${spec.title}](images/${svgName})`,
    '',
    cpuTable(data),
    '',
    `Measured ${machineLine(data)}`,
  ].join('\n');
}

sections['cpu-targets'] = targets.length
  ? ['| target | reference | measured (reference time / ours) | needed | met |', '| --- | --- | ---: | ---: | --- |',
    ...targets.map((t) => `| ${t.goal} | ${t.reference ?? ''} | ${t.ratio.toFixed(2)}x | ${t.threshold >= 1 ? `${t.threshold}x` : `${t.threshold.toFixed(2)}x`} | ${t.met ? 'yes' : '**no**'} |`)].join('\n')
  : 'No results yet.';

// GPU: the side-by-side list of the newest GPU report.
const gpu = newest('gpu');
if (gpu) {
  const d = gpu.data;
  const rows = d.comparison.filter((c) => c.ours !== null && c.peer !== null && c.peer !== undefined);
  // One plot per unit: GEMM throughput, and bandwidth (copy, add, sum).
  const plots = [
    ['bench-gpu-gemm.svg', 'GEMM', 'TFLOP/s (longer is better)', rows.filter((c) => c.unit === 'TFLOP/s')],
    ['bench-gpu-bandwidth.svg', 'copy, add and sum', 'GB/s of bytes read + written (longer is better)', rows.filter((c) => c.unit === 'GB/s')],
  ];
  for (const [name, what, axis, list] of plots) {
    if (!list.length) continue;
    writeFileSync(join(IMAGES, name), barChart({
      title: `${what}: blora vs PyTorch on one ${d.gpu.name}`,
      axis,
      groups: list.map((c) => ({ label: c.label, bars: [{ name: 'ours', value: c.ours }, { name: 'PyTorch', value: c.peer }] })),
    }));
  }
  sections.gpu = [
    '![GEMM: blora vs PyTorch on the GPU](images/bench-gpu-gemm.svg)',
    '',
    '![copy, add and sum: blora vs PyTorch on the GPU](images/bench-gpu-bandwidth.svg)',
    '',
    '| figure | unit | ours | PyTorch | ours / PyTorch |',
    '| --- | --- | ---: | ---: | ---: |',
    ...d.comparison.map((c) => `| ${c.label} | ${c.unit} | ${c.ours === null ? 'skipped' : formatValue(c.ours)} | ${c.peer == null ? '' : formatValue(c.peer)} | ${c.ratio == null ? '' : `${c.ratio.toFixed(2)}`} |`),
    '',
    `Measured ${d.date.slice(0, 10)} on one ${d.gpu.name} (driver ${d.gpu.driver}), PyTorch ${d.versions.torch}, CUDA ${d.versions.cuda}, ` +
      `Node ${d.versions.node}. Source: \`bench/results/${gpu.file}\`.`,
  ].join('\n');
} else {
  sections.gpu = 'No GPU results yet: run `npm run bench:gpu` on a machine with an NVIDIA GPU.';
}

// Replace each marked section of the page; a marker missing from the page is an error.
let page = readFileSync(PAGE, 'utf8');
for (const [name, body] of Object.entries(sections)) {
  const pattern = new RegExp(`(<!-- bench:${name} -->\\n)[\\s\\S]*?(<!-- /bench:${name} -->)`);
  if (!pattern.test(page)) throw new Error(`${PAGE}: no <!-- bench:${name} --> ... <!-- /bench:${name} --> section`);
  page = page.replace(pattern, (_, open, close) => `${open}${body}\n${close}`);
}
writeFileSync(PAGE, page);
console.log(`updated ${PAGE} and the bench-*.svg plots under ${IMAGES}`);
