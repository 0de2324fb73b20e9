// Gradient rules of the elementwise ops. Binary ops see their operands already broadcast to
// the output shape (as expand views), so their rules return output-shaped gradients and the
// expand rule sums them back down.
import {
  add, cast, cos, div, eq, ge, geluBackward, gt, le, log, lt, mul, neg, pow, siluBackward, siluMul, sin, square, sub, where,
  zerosLike, type Tensor,
} from '@blora/tensor';
import { registerGradient, type GradContext } from '../gradients.js';
import { crossInputs, maskOf } from './util.js';

type Unary = (x: Tensor, y: Tensor, g: Tensor) => Tensor;

/** Registers a one-input rule; `save` says whether it reads the input (x) and/or the output (y). */
function unary(op: string, rule: Unary, save: { x?: boolean; y?: boolean }): void {
  registerGradient(op, ({ inputs: [x], outputs: [y], outputGrads: [g] }: GradContext) => [rule(x!, y!, g!)], {
    inputs: save.x ? [0] : [],
    outputs: save.y ? [0] : [],
  });
}

unary('neg', (_x, _y, g) => neg(g), {});
// The subgradient at 0 is 0, as sign(0) = 0.
unary('abs', (x, _y, g) => mul(g, sub(maskOf(gt(x, 0), x), maskOf(lt(x, 0), x))), { x: true });
unary('exp', (_x, y, g) => mul(g, y), { y: true });
unary('log', (x, _y, g) => div(g, x), { x: true });
unary('sqrt', (_x, y, g) => div(mul(g, 0.5), y), { y: true });
// d/dx x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3.
unary('rsqrt', (_x, y, g) => mul(mul(g, -0.5), mul(y, square(y))), { y: true });
unary('tanh', (_x, y, g) => mul(g, sub(1, square(y))), { y: true });
unary('sigmoid', (_x, y, g) => mul(g, mul(y, sub(1, y))), { y: true });
// silu(x) = x s(x): derivative s(x) (1 + x (1 - s(x))), one fused op.
unary('silu', (x, _y, g) => siluBackward(x, g), { x: true });
// relu's output is positive exactly where its input is.
unary('relu', (_x, y, g) => mul(g, maskOf(gt(y, 0), y)), { y: true });
unary('square', (x, _y, g) => mul(g, mul(x, 2)), { x: true });
unary('reciprocal', (_x, y, g) => neg(mul(g, square(y))), { y: true });
unary('sin', (x, _y, g) => mul(g, cos(x)), { x: true });
unary('cos', (x, _y, g) => neg(mul(g, sin(x))), { x: true });

// gelu's gradient is one fused op for either form (geluBackward: one pass, one rounding).
registerGradient('gelu', ({ inputs: [x], attrs, outputGrads: [g] }) => [geluBackward(x!, g!, attrs.approximate === 'tanh' ? 'tanh' : 'none')],
  { inputs: [0], outputs: [] });

registerGradient('add', ({ outputGrads: [g] }) => [g!, g!], { inputs: [], outputs: [] });
registerGradient('sub', ({ outputGrads: [g], needsGrad }) => [g!, needsGrad[1] ? neg(g!) : null], { inputs: [], outputs: [] });
registerGradient('mul', ({ inputs: [a, b], outputGrads: [g], needsGrad }) => [
  needsGrad[0] ? mul(g!, b!) : null,
  needsGrad[1] ? mul(g!, a!) : null,
], { inputs: crossInputs, outputs: [] });
// siluMul(a, b) = silu(a) b: d/da = silu'(a) (g b), one fused op after the product; d/db = silu(a) g,
// itself a siluMul. The gate is read either way, the up projection only for the gate's gradient.
registerGradient('siluMul', ({ inputs: [a, b], outputGrads: [g], needsGrad }) => [
  needsGrad[0] ? siluBackward(a!, mul(g!, b!)) : null,
  needsGrad[1] ? siluMul(a!, g!) : null,
], { inputs: (needsGrad) => (needsGrad[0] ? [0, 1] : needsGrad[1] ? [0] : []), outputs: [] });
// d(a/b)/db = -a/b^2 = -(g/b) * y, so a itself is not needed.
registerGradient('div', ({ inputs: [, b], outputs: [y], outputGrads: [g], needsGrad }) => {
  const ga = div(g!, b!);
  return [ga, needsGrad[1] ? neg(mul(ga, y!)) : null];
}, { inputs: [1], outputs: [0] });

registerGradient('pow', ({ inputs: [a, b], outputs: [y], outputGrads: [g], needsGrad }) => [
  needsGrad[0] ? mul(g!, mul(b!, pow(a!, sub(b!, 1)))) : null,
  // y log(a); 0 where a = 0 (where the limit of a^b ln a is 0 for b > 0).
  needsGrad[1] ? where(eq(a!, 0), zerosLike(g!), mul(g!, mul(y!, log(a!)))) : null,
]);

// Ties split the gradient evenly between the operands.
function extremumRule(wins: (a: Tensor, b: Tensor) => Tensor) {
  return ({ inputs: [a, b], outputGrads: [g] }: GradContext) => {
    const share = add(maskOf(wins(a!, b!), g!), mul(maskOf(eq(a!, b!), g!), 0.5));
    const ga = mul(g!, share);
    return [ga, sub(g!, ga)];
  };
}
registerGradient('maximum', extremumRule(gt), { inputs: [0, 1], outputs: [] });
registerGradient('minimum', extremumRule(lt), { inputs: [0, 1], outputs: [] });

registerGradient('where', ({ inputs: [cond], outputGrads: [g], needsGrad }) => {
  const zero = zerosLike(g!);
  return [null, needsGrad[1] ? where(cond!, g!, zero) : null, needsGrad[2] ? where(cond!, zero, g!) : null];
}, { inputs: [0], outputs: [] });

// The gradient passes where min <= x <= max (bounds included, as in torch).
registerGradient('clamp', ({ inputs: [x], attrs, outputGrads: [g] }) => {
  let out = g!;
  if (attrs.min !== null && attrs.min !== undefined) out = mul(out, cast(ge(x!, attrs.min as number), g!.dtype));
  if (attrs.max !== null && attrs.max !== undefined) out = mul(out, cast(le(x!, attrs.max as number), g!.dtype));
  return [out];
}, { inputs: [0], outputs: [] });
