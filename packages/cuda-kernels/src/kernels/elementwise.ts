// Elementwise ops on the cuda device: unary math, isFinite, binary arithmetic,
// comparisons, where and clamp. Inputs may be any strided view (broadcast dims have stride 0).
import { registerKernel } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';

/** Unary ops whose kernel takes no attrs; gelu picks its kernel from `approximate`. */
const UNARY_OPS = [
  'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'silu', 'relu', 'square', 'reciprocal', 'sin', 'cos',
] as const;
const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'siluBackward', 'siluMul', 'geluBackward', 'geluTanhBackward'] as const;
const COMPARE_OPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;

/** The addon's code for `name` in one of its op lists; throws when the addon lacks it. */
export function opCode(list: readonly string[], name: string): number {
  const code = list.indexOf(name);
  if (code < 0) throw new Error(`cuda: the addon has no kernel '${name}' (rebuild it)`);
  return code;
}

/** Registers the elementwise kernels for 'cuda'. */
export function registerElementwiseKernels(): void {
  const addon = native();
  for (const op of UNARY_OPS) {
    const code = opCode(addon.unaryOps, op);
    registerKernel(op, 'cuda', ([x], [out]) => {
      runKernel(op, [x!, out!], () => addon.unary(code, tensorArg(x!), tensorArg(out!)));
    });
  }
  const geluExact = opCode(addon.unaryOps, 'gelu');
  const geluTanh = opCode(addon.unaryOps, 'gelu_tanh');
  registerKernel('gelu', 'cuda', ([x], [out], attrs) => {
    const code = attrs.approximate === 'tanh' ? geluTanh : geluExact;
    runKernel('gelu', [x!, out!], () => addon.unary(code, tensorArg(x!), tensorArg(out!)));
  });
  registerKernel('isFinite', 'cuda', ([x], [out]) => {
    runKernel('isFinite', [x!, out!], () => addon.isFinite(tensorArg(x!), tensorArg(out!)));
  });
  for (const op of BINARY_OPS) {
    const code = opCode(addon.binaryOps, op);
    registerKernel(op, 'cuda', ([a, b], [out]) => {
      runKernel(op, [a!, b!, out!], () => addon.binary(code, tensorArg(a!), tensorArg(b!), tensorArg(out!)));
    });
  }
  for (const op of COMPARE_OPS) {
    const code = opCode(addon.compareOps, op);
    registerKernel(op, 'cuda', ([a, b], [out]) => {
      runKernel(op, [a!, b!, out!], () => addon.compare(code, tensorArg(a!), tensorArg(b!), tensorArg(out!)));
    });
  }
  registerKernel('where', 'cuda', ([cond, a, b], [out]) => {
    runKernel('where', [cond!, a!, b!, out!], () =>
      addon.where(tensorArg(cond!), tensorArg(a!), tensorArg(b!), tensorArg(out!)));
  });
  registerKernel('clamp', 'cuda', ([x], [out], attrs) => {
    const min = (attrs.min as number | null | undefined) ?? null;
    const max = (attrs.max as number | null | undefined) ?? null;
    runKernel('clamp', [x!, out!], () => addon.clamp(tensorArg(x!), tensorArg(out!), min, max));
  });
}
