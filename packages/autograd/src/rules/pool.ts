// Gradient rules of avgPool1d and repeatInterleave, the two parameter-free maps around the
// adapter (each is the other's transpose up to the 1/kernel factor), and of the two ops their
// gradients use, avgPool1dBackward and sumRuns.
import { avgPool1d, avgPool1dBackward, cast, repeatInterleave, reshape, sum, sumRuns } from '@blora/tensor';
import { registerGradient } from '../gradients.js';

const NOTHING = { inputs: [], outputs: [] } as const;

// Each input feature contributes 1/kernel to one output feature.
// With an output dtype of its own (a cast riding along), the gradient goes back to x's dtype.
registerGradient('avgPool1d', ({ inputs: [x], attrs, outputGrads: [g] }) => {
  const dx = avgPool1dBackward(g!, attrs.kernel as number);
  if (dx.dtype === x!.dtype) return [dx];
  const back = cast(dx, x!.dtype);
  dx.dispose();
  return [back];
}, NOTHING);

// avgPool1dBackward is linear: its transpose averages the runs back.
registerGradient('avgPool1dBackward', ({ attrs, outputGrads: [g] }) => [avgPool1d(g!, attrs.kernel as number)], NOTHING);

// Each input element is copied `repeats` times side by side: its gradient sums those copies.
registerGradient('repeatInterleave', ({ inputs: [x], attrs, outputGrads: [g] }) => {
  const repeats = attrs.repeats as number;
  const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + x!.rank : (attrs.axis as number);
  // Along the last dim (the adapters' case) one kernel sums the runs.
  if (axis === x!.rank - 1 && repeats > 0) return [sumRuns(g!, repeats)];
  const split = [...x!.shape.slice(0, axis), x!.shape[axis]!, repeats, ...x!.shape.slice(axis + 1)];
  return [reshape(sum(reshape(g!, split), [axis + 1]), x!.shape)];
}, NOTHING);

// sumRuns adds each run of `kernel` elements: every element of the run gets the run's gradient.
registerGradient('sumRuns', ({ attrs, outputGrads: [g] }) => [repeatInterleave(g!, attrs.kernel as number, -1)], NOTHING);
