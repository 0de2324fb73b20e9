// The fused 4-bit kernel suite of `npm run bench:gpu`: PyTorch peers (peers_quant.py) and our
// kernels (quant.bench.ts) on the same GPU, joined into one row per (format, direction, shape),
// and the markdown table docs/benchmarks.md shows (`node bench/gpu/quant-docs.mjs` writes it).
import { join } from 'node:path';

const DOC_START = '<!-- quant-gpu:start -->';
const DOC_END = '<!-- quant-gpu:end -->';

/** Runs both sides (each may be skipped) and returns { peers, ours, rows, status }. */
export function runQuantSuite(run, readJson, work, env, opts) {
  const status = { peers: null, ours: null };
  const peersOut = join(work, 'peers-quant.json');
  const oursOut = join(work, 'quant.json');
  if (!opts.skipPeers) {
    const flags = ['bench/gpu/peers_quant.py', '--out', peersOut];
    if (env.BLORA_BENCH_QUANT_M) flags.push('--m', env.BLORA_BENCH_QUANT_M);
    if (env.BLORA_BENCH_L2_MULTIPLE) flags.push('--l2-multiple', env.BLORA_BENCH_L2_MULTIPLE);
    if (opts.quick) flags.push('--quick');
    status.peers = run('PyTorch peers of the 4-bit kernels', 'python3', flags, { ...env, PYTHONUNBUFFERED: '1' });
  }
  if (!opts.skipOurs) {
    status.ours = run('our fused 4-bit kernels', 'npx', ['vitest', 'run', '--config', 'bench/gpu/quant.vitest.config.ts'], {
      ...env,
      BLORA_BENCH_QUANT_OUT: oursOut,
    });
  }
  const peers = readJson(peersOut);
  const ours = readJson(oursOut);
  return { peers, ours, rows: quantRows(peers, ours), status };
}

function byId(report) {
  return new Map((report?.results ?? []).map((r) => [r.id, r]));
}

/**
 * One row per figure of ours ('quant.<format>.fused.<direction>.<M>x<K>x<N>'): our fused kernel,
 * the same GEMV on the NF4 decode tile layout (M <= 16), our dequantize-then-GEMM, cuBLAS bf16 on
 * the unquantized weight and the PyTorch dequantize-then-matmul (both NF4 peers; cuBLAS does not
 * depend on the format), as device ms per call, plus our fused figure as % of copy bandwidth
 * (M <= 16) or of cuBLAS TFLOP/s (larger M).
 */
export function quantRows(peers, ours) {
  const mine = byId(ours);
  const theirs = byId(peers);
  const copy = theirs.get('copy.d2d')?.value ?? mine.get('copy.d2d')?.value;
  const rows = [];
  for (const r of ours?.results ?? []) {
    const match = /^quant\.(\w+)\.fused\.(xWt|dyW)\.(\d+)x(\d+)x(\d+)$/.exec(r.id);
    if (!match) continue;
    const [, format, direction, m, k, n] = match;
    const tail = `${direction}.${m}x${k}x${n}`;
    const cublas = theirs.get(`quant.nf4.cublas_bf16.${tail}`);
    const torchDequant = theirs.get(`quant.nf4.torch_dequant_matmul.${tail}`);
    const small = Number(m) <= 16;
    rows.push({
      format, direction, m: Number(m), k: Number(k), n: Number(n),
      unit: r.unit,
      fused: r.value,
      fusedMs: r.medianMs,
      tilesMs: mine.get(`quant.${format}.tiles.${tail}`)?.medianMs,
      dequantGemmMs: mine.get(`quant.${format}.dequant_gemm.${tail}`)?.medianMs,
      opMs: mine.get(`quant.${format}.op.${tail}`)?.medianMs,
      cublasMs: cublas?.medianMs,
      torchDequantMs: torchDequant?.medianMs,
      percentOfCeiling: small ? (copy ? (100 * r.value) / copy : undefined) : cublas ? (100 * r.value) / cublas.tflops : undefined,
      ceilingOf: small ? 'copy' : 'cuBLAS',
      speedupVsCublas: cublas && r.medianMs ? cublas.medianMs / r.medianMs : undefined,
    });
    const last = rows[rows.length - 1];
    if (cublas && last.tilesMs) last.tilesVsCublas = cublas.medianMs / last.tilesMs;
  }
  return rows;
}

function cell(v, digits = 3) {
  if (v === undefined || v === null || !Number.isFinite(v)) return '—';
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(digits);
}

/** The rows as a markdown table. */
export function quantTable(rows) {
  const head = ['format', 'product', 'M x K x N', 'fused', 'unit', '% of ceiling', 'fused ms', 'decode tiles ms', 'our dequant+GEMM ms',
    'cuBLAS bf16 ms', 'PyTorch dequant+matmul ms', 'fused vs cuBLAS', 'tiles vs cuBLAS', 'op call ms'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 3 || i === 4 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) {
    lines.push(`| ${[
      r.format, r.direction === 'xWt' ? 'y = x·Wᵀ' : 'dx = dy·W', `${r.m}x${r.k}x${r.n}`, cell(r.fused), r.unit,
      r.percentOfCeiling === undefined ? '—' : `${cell(r.percentOfCeiling)} % of ${r.ceilingOf}`, cell(r.fusedMs), cell(r.tilesMs),
      cell(r.dequantGemmMs), cell(r.cublasMs), cell(r.torchDequantMs),
      r.speedupVsCublas === undefined ? '—' : `${cell(r.speedupVsCublas)}x`,
      r.tilesVsCublas === undefined ? '—' : `${cell(r.tilesVsCublas)}x`, cell(r.opMs),
    ].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** `doc` with the text between the quant-gpu markers replaced by `section` (appended when absent). */
export function replaceDocSection(doc, section) {
  const block = `${DOC_START}\n${section}\n${DOC_END}`;
  const start = doc.indexOf(DOC_START);
  const end = doc.indexOf(DOC_END);
  if (start >= 0 && end > start) return doc.slice(0, start) + block + doc.slice(end + DOC_END.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}
