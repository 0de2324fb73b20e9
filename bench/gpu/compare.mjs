// Merging the two GPU suites' reports (PyTorch peers and our kernels) into side-by-side rows
// and text tables. Pure functions over the parsed JSON; run.mjs does the I/O.

/** Groups that both suites measure, matched by result id. */
const SHARED_GROUPS = new Set(['copy', 'gemm', 'elementwise', 'reduce']);

/** A number with about four significant digits, or '—' when missing. */
export function formatNumber(v) {
  if (v === undefined || v === null || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function byId(report) {
  return new Map((report?.results ?? []).map((r) => [r.id, r]));
}

/**
 * Side-by-side rows for every figure both suites can produce: ours, the peer's, their ratio,
 * and ours as a percentage of the ceiling (GB/s: the peer's measured device-to-device copy;
 * TFLOP/s: cuBLAS at the same shape and dtype).
 */
export function compareReports(peers, ours) {
  const peerMap = byId(peers);
  const ourMap = byId(ours);
  const peerCopy = peerMap.get('copy.d2d')?.value;
  const ids = [];
  for (const r of peers?.results ?? []) if (SHARED_GROUPS.has(r.group)) ids.push(r.id);
  for (const r of ours?.results ?? []) if (!peerMap.has(r.id)) ids.push(r.id);
  return ids.map((id) => {
    const p = peerMap.get(id);
    const o = ourMap.get(id);
    const unit = (p ?? o).unit;
    const ratio = p && o ? o.value / p.value : undefined;
    let ceiling;
    let ceilingOf;
    if (unit === 'GB/s' && peerCopy && o) {
      ceiling = (100 * o.value) / peerCopy;
      ceilingOf = 'copy';
    } else if (unit === 'TFLOP/s' && ratio !== undefined) {
      ceiling = 100 * ratio;
      ceilingOf = 'cuBLAS';
    }
    return {
      id,
      group: (p ?? o).group,
      label: (p ?? o).label,
      unit,
      ours: o?.value,
      peer: p?.value,
      ratio,
      percentOfCeiling: ceiling,
      ceilingOf,
      oursPercentOfOurCopy: o?.percentOfCopy,
      oursCheck: o?.check,
      oursError: ours?.errors?.find((e) => e.id === id)?.error,
    };
  });
}

/** A text table; `align` holds 'l' or 'r' per column. */
export function textTable(head, rows, align) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (align[i] === 'l' ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  const top = line(head);
  return [top, '-'.repeat(top.length), ...rows.map(line)].join('\n');
}

/** The side-by-side table, ours against PyTorch. */
export function comparisonTable(rows, oursNote) {
  const body = rows.map((r) => [
    r.label,
    r.unit,
    r.ours !== undefined ? formatNumber(r.ours) : r.oursError ? 'error' : oursNote,
    formatNumber(r.peer),
    r.ratio !== undefined ? `${r.ratio.toFixed(2)}x` : '—',
    r.percentOfCeiling !== undefined ? `${r.percentOfCeiling.toFixed(0)}% of ${r.ceilingOf}` : '—',
  ]);
  return textTable(['benchmark', 'unit', 'ours', 'PyTorch', 'ours/PyTorch', 'ours vs ceiling'], body, 'llrrrr');
}

/**
 * The figures only the peer suite takes: the unfused NF4 path against cuBLAS bf16, with the
 * 4-bit roofline (the larger of: packed weight bytes over the measured copy bandwidth, and
 * the GEMM's operations over the best bf16 GEMM rate measured), and the LoRA step.
 */
export function peerOnlyTables(peers) {
  const results = peers?.results ?? [];
  const map = byId(peers);
  const copy = map.get('copy.d2d')?.value;
  const out = [];
  // The best bf16 GEMM rate measured stands in for the compute ceiling.
  const peakTflops = Math.max(0, ...results.filter((r) => r.id.startsWith('gemm.bf16.')).map((r) => r.value));
  const nf4 = results.filter((r) => r.id.startsWith('nf4.dequant_matmul.'));
  if (nf4.length > 0) {
    const body = nf4.map((r) => {
      const shape = r.id.slice('nf4.dequant_matmul.'.length);
      const dense = map.get(`nf4.cublas_bf16.${shape}`);
      const readMs = copy && r.weightBytes ? (r.weightBytes / (copy * 1e9)) * 1e3 : undefined;
      const mathMs = peakTflops > 0 && r.flops ? (r.flops / (peakTflops * 1e12)) * 1e3 : 0;
      const roofline = readMs === undefined ? undefined : Math.max(readMs, mathMs);
      return [
        shape,
        formatNumber(r.value),
        formatNumber(dense?.value),
        dense ? `${(r.value / dense.value).toFixed(1)}x` : '—',
        formatNumber(roofline),
      ];
    });
    out.push(
      'NF4 linear layer, M x K x N (ms per call)\n' +
        textTable(['M x K x N', 'dequant+matmul', 'cuBLAS bf16', 'slowdown', '4-bit roofline'], body, 'lrrrr'),
    );
  }
  const lora = ['lora.tinyllama.step', 'lora.tinyllama.tokens', 'lora.tinyllama.peak_memory']
    .map((id) => map.get(id))
    .filter((r) => r);
  if (lora.length > 0) {
    out.push('PEFT LoRA training step\n' + textTable(['measurement', 'value', 'unit'], lora.map((r) => [r.label, formatNumber(r.value), r.unit]), 'lrl'));
  }
  return out;
}
