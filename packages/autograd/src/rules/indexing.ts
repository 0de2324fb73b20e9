// Gradient rules of the indexing and joining ops. Gathers scatter their gradient back with
// adds (indices may repeat, so contributions must accumulate) and scatters gather it.
import { cat, gather, indexAdd, indexSelect, narrow, scatterAdd, zeros, type Tensor } from '@blora/tensor';
import { registerGradient } from '../gradients.js';

const INDEX_ONLY = { inputs: [1], outputs: [] } as const;

function zerosShaped(x: Tensor): Tensor {
  return zeros(x.shape, { dtype: x.dtype, device: x.device });
}

// out = x.index_select(axis, index): every selected row of x receives the rows of g that
// selected it (an embedding lookup's gradient is this scatter-add into the table).
registerGradient('indexSelect', ({ inputs: [x, index], attrs, outputGrads: [g] }) =>
  [indexAdd(zerosShaped(x!), attrs.axis as number, index!, g!), null], INDEX_ONLY);

registerGradient('gather', ({ inputs: [x, index], attrs, outputGrads: [g] }) =>
  [scatterAdd(zerosShaped(x!), attrs.axis as number, index!, g!), null], INDEX_ONLY);

// out = x; out[index[i] along axis] += src[i]: x passes g through, src reads it back.
registerGradient('indexAdd', ({ inputs: [, index], attrs, outputGrads: [g], needsGrad }) =>
  [g!, null, needsGrad[2] ? indexSelect(g!, attrs.axis as number, index!) : null], INDEX_ONLY);

registerGradient('scatterAdd', ({ inputs: [, index, src], attrs, outputGrads: [g], needsGrad }) => {
  if (!needsGrad[2]) return [g!, null, null];
  // Only the part of src covered by index was added; the rest gets zero gradient.
  return [g!, null, padTo(gather(g!, attrs.axis as number, index!), src!)];
}, INDEX_ONLY);

/** `t` extended with zeros at the end of each dim to `like`'s shape. */
function padTo(t: Tensor, like: Tensor): Tensor {
  let out = t;
  for (let d = 0; d < like.rank; d++) {
    const missing = like.shape[d]! - out.shape[d]!;
    if (missing <= 0) continue;
    const fill = zeros(out.shape.map((n, i) => (i === d ? missing : n)), { dtype: t.dtype, device: t.device });
    out = cat([out, fill], d);
  }
  return out;
}

registerGradient('cat', ({ inputs, attrs, outputGrads: [g], needsGrad }) => {
  const axis = attrs.axis as number;
  let start = 0;
  return inputs.map((x, i) => {
    const len = x.shape[axis]!;
    const part = needsGrad[i] ? narrow(g!, axis, start, len) : null;
    start += len;
    return part;
  });
}, { inputs: [], outputs: [] });
