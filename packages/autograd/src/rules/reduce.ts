// Gradient rules of the reductions and of softmax / log-softmax. A reduction's gradient is
// the output gradient broadcast back over the reduced axes (a stride-0 view), times the
// derivative of the reduced value with respect to each element.
import { cast, div, eq, exp, expand, mean, mul, reshape, sub, sum, type Tensor } from '@blora/tensor';
import { registerGradient, type GradContext } from '../gradients.js';
import { countOver, keptShape, unreduce } from './util.js';

function axesOf(ctx: GradContext): { axes: number[]; keepdim: boolean } {
  return { axes: ctx.attrs.axes as number[], keepdim: ctx.attrs.keepdim as boolean };
}

registerGradient('sum', (ctx) => {
  const { axes, keepdim } = axesOf(ctx);
  return [unreduce(ctx.outputGrads[0]!, ctx.inputs[0]!.shape, axes, keepdim)];
}, { inputs: [], outputs: [] });

registerGradient('mean', (ctx) => {
  const { axes, keepdim } = axesOf(ctx);
  const x = ctx.inputs[0]!;
  return [unreduce(div(ctx.outputGrads[0]!, countOver(x.shape, axes)), x.shape, axes, keepdim)];
}, { inputs: [], outputs: [] });

// max/min: the gradient goes to the elements equal to the result, split evenly between ties.
function extremumRule(ctx: GradContext): Tensor[] {
  const { axes, keepdim } = axesOf(ctx);
  const x = ctx.inputs[0]!;
  const y = unreduce(ctx.outputs[0]!, x.shape, axes, keepdim);
  const hits = cast(eq(x, y), x.dtype);
  const ties = sum(hits, axes, true);
  const g = keepdim ? ctx.outputGrads[0]! : reshape(ctx.outputGrads[0]!, keptShape(x.shape, axes));
  return [mul(hits, expand(div(g, ties), x.shape))];
}
registerGradient('max', extremumRule);
registerGradient('min', extremumRule);

// d var / dx = 2 (x - mean) / max(0, n - correction).
registerGradient('var', (ctx) => {
  const { axes, keepdim } = axesOf(ctx);
  const x = ctx.inputs[0]!;
  const divisor = Math.max(0, countOver(x.shape, axes) - (ctx.attrs.correction as number));
  const centered = sub(x, mean(x, axes, true));
  return [mul(centered, unreduce(div(ctx.outputGrads[0]!, divisor / 2), x.shape, axes, keepdim))];
}, { inputs: [0], outputs: [] });

// d logsumexp / dx = softmax(x) = exp(x - y).
registerGradient('logsumexp', (ctx) => {
  const { axes, keepdim } = axesOf(ctx);
  const x = ctx.inputs[0]!;
  const y = unreduce(ctx.outputs[0]!, x.shape, axes, keepdim);
  return [mul(exp(sub(x, y)), unreduce(ctx.outputGrads[0]!, x.shape, axes, keepdim))];
});

// softmax: dx = y (g - sum(g y)).
registerGradient('softmax', ({ outputs: [y], outputGrads: [g], attrs }) => {
  const axis = softmaxAxis(y!, attrs.axis as number);
  return [mul(y!, sub(g!, sum(mul(g!, y!), axis, true)))];
}, { inputs: [], outputs: [0] });

// logSoftmax: dx = g - exp(y) sum(g).
registerGradient('logSoftmax', ({ outputs: [y], outputGrads: [g], attrs }) => {
  const axis = softmaxAxis(y!, attrs.axis as number);
  return [sub(g!, mul(exp(y!), sum(g!, axis, true)))];
}, { inputs: [], outputs: [0] });

/** A 0-d softmax has no axis to reduce over (its result is the constant 1). */
function softmaxAxis(y: Tensor, axis: number): number[] {
  return y.rank === 0 ? [] : [axis];
}
