// Gradient rules of avgPool1d and repeatInterleave, the two parameter-free maps around the
// adapter: each is the other's transpose up to the 1/kernel factor.
import { div, repeatInterleave, reshape, sum } from '@blora/tensor';
import { registerGradient } from '../gradients.js';

const NOTHING = { inputs: [], outputs: [] } as const;

// Each input feature contributes 1/kernel to one output feature.
registerGradient('avgPool1d', ({ attrs, outputGrads: [g] }) => {
  const kernel = attrs.kernel as number;
  return [div(repeatInterleave(g!, kernel, -1), kernel)];
}, NOTHING);

// Each input element is copied `repeats` times side by side: its gradient sums those copies.
registerGradient('repeatInterleave', ({ inputs: [x], attrs, outputGrads: [g] }) => {
  const repeats = attrs.repeats as number;
  const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + x!.rank : (attrs.axis as number);
  const split = [...x!.shape.slice(0, axis), x!.shape[axis]!, repeats, ...x!.shape.slice(axis + 1)];
  return [reshape(sum(reshape(g!, split), [axis + 1]), x!.shape)];
}, NOTHING);
