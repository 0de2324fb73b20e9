#!/usr/bin/env node
// Writes the table of the fused 4-bit kernels into docs/benchmarks.md (between the quant-gpu
// markers) from a committed GPU result: the newest bench/results/gpu-*.json holding a `quant`
// section, or the file given.
//
//   node bench/gpu/quant-docs.mjs [bench/results/gpu-YYYY-MM-DD.json]
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantRows, quantTable, replaceDocSection } from './quant-suite.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

function newestResult() {
  const dir = join(root, 'bench', 'results');
  const files = readdirSync(dir).filter((f) => /^gpu-\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort().reverse();
  for (const f of files) {
    const data = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    if (data.quant) return { path: join(dir, f), data };
  }
  return null;
}

/** The PyTorch figures of a run whose own side did not finish, with a line saying so. */
function peersOnlySection(data, file, gpu) {
  const results = data.quant.peers?.results ?? [];
  const cell = (r) => (r ? `${r.medianMs.toPrecision(3)} ms (${r.value.toPrecision(4)} ${r.unit})` : '—');
  const shapes = [...new Set(results.map((r) => r.id.split('.').slice(3).join('.')))];
  return [
    `**Our side not measured yet**: the run on one ${gpu} of ${String(data.date).slice(0, 10)} (\`${file}\`) stopped at its time limit`,
    'before this suite; its kernels passed their correctness tests in the same session. The PyTorch side of that run (device time',
    'per call, CUDA-graph replays, weights rotated over copies beyond the L2; GB/s on the weight bytes each reads at M <= 16):',
    '',
    '| direction, M x K x N | cuBLAS bf16, unquantized W | PyTorch NF4 dequantize + matmul |',
    '| --- | ---: | ---: |',
    ...shapes.map((shape) => {
      const find = (what) => results.find((r) => r.id === `quant.nf4.${what}.${shape}`);
      return `| ${shape.replace('.', ' ')} | ${cell(find('cublas_bf16'))} | ${cell(find('torch_dequant_matmul'))} |`;
    }),
  ].join('\n');
}

function main() {
  const given = process.argv[2];
  const found = given ? { path: resolve(given), data: JSON.parse(readFileSync(resolve(given), 'utf8')) } : newestResult();
  if (!found?.data?.quant) {
    console.error('quant-docs: no GPU result with a quant section (run npm run bench:gpu on the GPU host first)');
    return 1;
  }
  const { data, path } = found;
  const rows = data.quant.rows ?? quantRows(data.quant.peers, data.quant.ours);
  const gpu = data.gpu?.name ?? data.gpu?.deviceName ?? data.quant.peers?.gpu?.name ?? 'GPU';
  if (!rows.length) {
    writeFileSync(join(root, 'docs', 'benchmarks.md'), replaceDocSection(readFileSync(join(root, 'docs', 'benchmarks.md'), 'utf8'),
      peersOnlySection(data, path.slice(root.length), gpu)));
    console.log('quant-docs: our side is missing from that result; wrote the PyTorch side alone');
    return 0;
  }
  const section = [
    `Fused 4-bit kernels on one ${gpu}, measured ${String(data.date).slice(0, 10)} (\`${path.slice(root.length)}\`).`,
    'bfloat16 activations, NF4 blocksize 64 (float32 absmax) and INT4 groups of 64 (float16 α, β); LLaMA-7B layer',
    'shapes. Device time per call from CUDA-graph replays, weights rotated over copies totalling at least 4 x the',
    'L2 cache. M <= 16: GB/s on the bytes of codes + scales, as % of the measured device-to-device copy; larger M:',
    'TFLOP/s as % of cuBLAS bf16 on the unquantized weight. "op call" adds our JavaScript dispatch (host clock).',
    '',
    quantTable(rows),
  ].join('\n');
  const docPath = join(root, 'docs', 'benchmarks.md');
  writeFileSync(docPath, replaceDocSection(readFileSync(docPath, 'utf8'), section));
  console.log(`quant-docs: wrote ${rows.length} rows into docs/benchmarks.md`);
  return 0;
}

process.exitCode = main();
