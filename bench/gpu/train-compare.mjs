// The training-step benchmark beside PEFT: merging the per-variant reports of our side
// (train-step.bench.ts, one process per variant) and setting each variant's tokens/s against
// PEFT LoRA's ('lora.tinyllama.*' from peers.py). Pure functions over parsed JSON.
import { formatNumber, textTable } from './compare.mjs';

/** The variants run.mjs runs when BLORA_BENCH_TRAIN_VARIANTS is not set (train-config.ts checks names). */
export const DEFAULT_TRAIN_VARIANTS = ['qlora', 'qblora', 'lora-dense'];

/** Depth of the PEFT peer's model (TinyLlama-1.1B). */
const PEER_LAYERS = 22;

/** The variant names to run, from BLORA_BENCH_TRAIN_VARIANTS (comma list) or the default list. */
export function trainVariants(env) {
  const text = env.BLORA_BENCH_TRAIN_VARIANTS;
  const names = (text || DEFAULT_TRAIN_VARIANTS.join(',')).split(',').map((s) => s.trim()).filter((s) => s !== '');
  return [...new Set(names)];
}

/** One report from the per-variant reports (null when none was written). */
export function mergeTrainReports(reports) {
  const present = reports.filter((r) => r);
  if (present.length === 0) return null;
  const skipped = present.every((r) => r.skipped);
  return {
    suite: 'train',
    date: present[0].date,
    skipped,
    ...(skipped ? { reason: present[0].reason } : {}),
    gpu: present.find((r) => r.gpu)?.gpu ?? null,
    versions: present[0].versions,
    config: { ...present[0].config, variants: present.flatMap((r) => r.config?.variants ?? []) },
    method: present[0].method,
    results: present.flatMap((r) => r.results ?? []),
    profiles: Object.assign({}, ...present.map((r) => r.profiles ?? {})),
    errors: present.flatMap((r) => r.errors ?? []),
    processes: present.map((r) => ({ variants: r.config?.variants ?? [], memory: r.memory ?? null })),
  };
}

/** Why a figure of ours cannot be set against PEFT's, or null when it can. */
export function whyNotComparable(result, peerStep) {
  if (!peerStep) return 'no PEFT figure in this run';
  if (!result.tinyLlamaWidths) return 'ours has other widths or vocabulary than TinyLlama';
  if (result.requestedLayers !== PEER_LAYERS) return `ours has ${result.requestedLayers} layers, PEFT ${PEER_LAYERS}`;
  if (result.tokensPerStep !== peerStep.tokensPerStep) {
    return `ours trains ${result.tokensPerStep} tokens per step, PEFT ${peerStep.tokensPerStep}`;
  }
  if (Boolean(result.gradientCheckpointing) !== Boolean(peerStep.gradientCheckpointing)) return 'gradient checkpointing differs';
  return null;
}

/**
 * Rows in the shape of compareReports' rows (so they join the merged `comparison` list): per
 * variant, our tokens/s (the depth-scaled estimate when the model ran with fewer layers) against
 * PEFT's, and their ratio (above 1: ours trains faster). A variant that failed gets a row with
 * `ours: null` and the error.
 */
export function trainComparison(peers, train) {
  const peerMap = new Map((peers?.results ?? []).map((r) => [r.id, r]));
  const peerTokens = peerMap.get('lora.tinyllama.tokens');
  const peerStep = peerMap.get('lora.tinyllama.step');
  const rows = [];
  for (const r of train?.results ?? []) {
    if (r.unit !== 'tokens/s') continue;
    const ours = r.scaledValue ?? r.value;
    const notComparable = whyNotComparable(r, peerStep);
    rows.push({
      id: r.id,
      group: 'train',
      label: r.label,
      unit: 'tokens/s',
      ours,
      peer: peerTokens?.value,
      ratio: peerTokens && !notComparable ? ours / peerTokens.value : undefined,
      ...(notComparable ? { notComparable } : {}),
      ...(r.scaledValue != null ? { scaled: r.scaling } : {}),
    });
  }
  for (const e of train?.errors ?? []) {
    rows.push({
      id: `${e.id}.tokens`, group: 'train', label: `${e.id} (tokens/s)`, unit: 'tokens/s', ours: null,
      peer: peerTokens?.value, ratio: undefined, oursError: e.error,
    });
  }
  return rows;
}

function count(v) {
  return typeof v === 'number' ? v.toLocaleString('en-US') : '—';
}

function gib(v) {
  return v === undefined || v === null ? '—' : formatNumber(v);
}

/** A text table of the training step: PEFT's row, then each variant of ours with its ratio to PEFT. */
export function trainTable(peers, train) {
  const peerMap = new Map((peers?.results ?? []).map((r) => [r.id, r]));
  const peerStep = peerMap.get('lora.tinyllama.step');
  const peerTokens = peerMap.get('lora.tinyllama.tokens');
  const body = [];
  if (peerStep) {
    body.push([
      `PEFT LoRA r=64, bf16 base (PyTorch)`, formatNumber(peerStep.value), formatNumber(peerTokens?.value),
      gib(peerStep.peakAllocatedGiB), count(peerStep.trainableParams), '1.00x',
    ]);
  }
  const ours = new Map();
  for (const r of train?.results ?? []) {
    const row = ours.get(r.variant) ?? {};
    row[r.unit] = r;
    ours.set(r.variant, row);
  }
  for (const { ms, 'tokens/s': tokens, GiB: peak } of ours.values()) {
    if (!ms || !tokens) continue;
    const value = tokens.scaledValue ?? tokens.value;
    const why = whyNotComparable(tokens, peerStep);
    const ratio = peerTokens && !why ? `${(value / peerTokens.value).toFixed(2)}x` : '—';
    body.push([
      ms.label.replace(/ \(ms\/step\)$/, ''),
      ms.scaledMs != null ? `${formatNumber(ms.scaledMs)}*` : formatNumber(ms.value),
      tokens.scaledValue != null ? `${formatNumber(value)}*` : formatNumber(value),
      gib(peak?.value), count(ms.trainableParams), ratio,
    ]);
  }
  for (const e of train?.errors ?? []) body.push([`${e.id}: failed`, 'error', '—', '—', '—', '—']);
  if (body.length === 0) return null;
  const notes = [];
  if (body.some((row) => row[1].endsWith('*'))) notes.push('* scaled from fewer layers (see the JSON)');
  const reasons = [...new Set((train?.results ?? []).filter((r) => r.unit === 'tokens/s').map((r) => whyNotComparable(r, peerStep)).filter((w) => w))];
  for (const w of reasons) notes.push(`no ratio: ${w}`);
  return 'Training step, ours vs PEFT\n' +
    textTable(['setup', 'ms/step', 'tokens/s', 'peak GiB', 'trainable', 'vs PEFT'], body, 'lrrrrr') +
    (notes.length ? `\n${notes.join('\n')}` : '');
}
