// CPU kernels of crossEntropy and crossEntropyBackward (see ops/nn/cross-entropy.ts).
import { registerKernel, type Attrs } from '../../dispatch.js';
import { commitValues, outputValues, readFirst, readValues, type ComputeArray } from '../access.js';

/** Throws naming the position of the first target outside [0, V) that is not ignored. */
function checkTargets(op: string, targets: ComputeArray, v: number, ignoreIndex: number): number {
  let counted = 0;
  for (let n = 0; n < targets.length; n++) {
    const target = targets[n]!;
    if (target === ignoreIndex) continue;
    if (target < 0 || target >= v) {
      throw new RangeError(`${op}: target ${target} at position ${n} is out of range [0, ${v}) and is not ignoreIndex (${ignoreIndex})`);
    }
    counted++;
  }
  return counted;
}

function readAttrs(attrs: Attrs): { ignoreIndex: number; mean: boolean } {
  return { ignoreIndex: attrs.ignoreIndex as number, mean: attrs.reduction === 'mean' };
}

registerKernel('crossEntropy', 'cpu', ([logits, targets], [loss, lse], attrs) => {
  const { ignoreIndex, mean } = readAttrs(attrs);
  const [n, v] = logits!.shape as [number, number];
  const tv = readValues(targets!);
  const counted = checkTargets('crossEntropy', tv, v, ignoreIndex);
  const xv = readValues(logits!);
  const lv = outputValues(lse!);
  let total = 0;
  for (let row = 0, base = 0; row < n; row++, base += v) {
    let max = -Infinity;
    for (let j = 0; j < v; j++) if (xv[base + j]! > max) max = xv[base + j]!;
    let sum = 0;
    for (let j = 0; j < v; j++) sum += Math.exp(xv[base + j]! - max);
    // A row of -Infinity logits has lse -Infinity (not NaN).
    const rowLse = max === -Infinity ? -Infinity : max + Math.log(sum);
    lv[row] = rowLse;
    const target = tv[row]!;
    if (target !== ignoreIndex) total += rowLse - xv[base + target]!;
  }
  commitValues(lse!, lv);
  const out = outputValues(loss!);
  out[0] = mean ? (counted > 0 ? total / counted : 0) : total;
  commitValues(loss!, out);
});

registerKernel('crossEntropyBackward', 'cpu', ([dloss, logits, targets, lse], [dlogits], attrs) => {
  const { ignoreIndex, mean } = readAttrs(attrs);
  const [n, v] = logits!.shape as [number, number];
  const tv = readValues(targets!);
  const counted = checkTargets('crossEntropyBackward', tv, v, ignoreIndex);
  const scale = mean ? (counted > 0 ? readFirst(dloss!) / counted : 0) : readFirst(dloss!);
  const xv = readValues(logits!);
  const lv = readValues(lse!);
  const dv = outputValues(dlogits!);
  for (let row = 0, base = 0; row < n; row++, base += v) {
    const target = tv[row]!;
    if (target === ignoreIndex) {
      dv.fill(0, base, base + v);
      continue;
    }
    const rowLse = lv[row]!;
    for (let j = 0; j < v; j++) dv[base + j] = scale * Math.exp(xv[base + j]! - rowLse);
    dv[base + target]! -= scale;
  }
  commitValues(dlogits!, dv);
});
