// Parameter accounting: trainable adapter parameters against everything the model holds,
// per adapted layer and in all. A quantized weight counts as its out · in elements (what it
// stands for), whatever its storage.
import { formatShape } from '@blora/tensor';
import type { Module } from '@blora/autograd';
import { AdaptedLinear } from './adapters/adapted-linear.js';
import { QuantizedBase } from './layers/quantized-base.js';

/** One adapted layer in a summary. */
export interface LayerParameterSummary {
  /** Module path. */
  name: string;
  /** 'LoRA', 'Q-BLoRA' or 'QA-BLoRA'. */
  method: string;
  /** `describe()` of the frozen base. */
  base: string;
  /** `describe()` of the adapter. */
  adapter: string;
  /** The base's weight and bias elements. */
  baseParameters: number;
  /** The adapter's parameter elements. */
  adapterParameters: number;
  /** Of those, the ones that require grad. */
  trainableParameters: number;
  /** Shapes of the adapter tensors by file-name suffix (`lora_A.weight`, ...). */
  adapterShapes: Record<string, number[]>;
}

/** Parameter counts of a model with adapters. */
export interface ParameterSummary {
  layers: LayerParameterSummary[];
  /** Parameter elements that require grad. */
  trainable: number;
  /** Every parameter element, quantized weights counted as out · in. */
  total: number;
  /** 100 · trainable / total. */
  trainablePercent: number;
}

/** Counts the parameters of `model`: per adapted layer, trainable and total. */
export function summarizeParameters(model: Module): ParameterSummary {
  let total = 0;
  let trainable = 0;
  for (const [, t] of model.namedParameters()) {
    total += t.numel;
    if (t.requiresGrad) trainable += t.numel;
  }
  const layers: LayerParameterSummary[] = [];
  for (const [name, m] of model.namedModules()) {
    if (m instanceof QuantizedBase) total += m.weightElements;
    if (!(m instanceof AdaptedLinear)) continue;
    const adapterParams = m.adapter.parameters();
    layers.push({
      name,
      method: m.adapter.label,
      base: m.base.describe(),
      adapter: m.adapter.describe(),
      baseParameters: m.base.baseParameters,
      adapterParameters: adapterParams.reduce((n, t) => n + t.numel, 0),
      trainableParameters: adapterParams.filter((t) => t.requiresGrad).reduce((n, t) => n + t.numel, 0),
      adapterShapes: Object.fromEntries(Object.entries(m.adapter.fileTensors()).map(([k, t]) => [k, [...t.shape]])),
    });
  }
  return { layers, trainable, total, trainablePercent: total ? (100 * trainable) / total : 0 };
}

/** A text table of `summary` (one line per layer, then the totals in PEFT's wording). */
export function formatParameterSummary(summary: ParameterSummary): string {
  const rows = summary.layers.map((l) => [
    l.name, l.adapter, Object.values(l.adapterShapes).map((s) => formatShape(s)).join(' '), String(l.trainableParameters), String(l.baseParameters), l.base,
  ]);
  const header = ['layer', 'adapter', 'shapes', 'trainable', 'base', 'base storage'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 3 || i === 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [
    line(header),
    ...rows.map(line),
    `trainable params: ${summary.trainable} || all params: ${summary.total} || trainable%: ${summary.trainablePercent.toFixed(4)}`,
  ].join('\n');
}
