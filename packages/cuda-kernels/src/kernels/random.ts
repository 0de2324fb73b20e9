// The random ops on the cuda device: Philox-4x32-10 on the GPU with the mapping from words to
// values specified in @blora/tensor (ops/random.ts), so the same (seed, offset) gives the
// same numbers as on the CPU. Attrs are checked here exactly as the CPU kernels check them.
import { readPhiloxAttrs, registerKernel } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';


/** Registers randUniform, randNormal, randInt and randBernoulli for 'cuda'. */
export function registerRandomKernels(): void {
  registerKernel('randUniform', 'cuda', (_inputs, [out], attrs) => {
    const { k0, k1, offset } = readPhiloxAttrs('randUniform', attrs);
    runKernel('randUniform', [out!], () => native().randUniform(tensorArg(out!), k0, k1, offset));
  });
  registerKernel('randNormal', 'cuda', (_inputs, [out], attrs) => {
    const { k0, k1, offset } = readPhiloxAttrs('randNormal', attrs);
    runKernel('randNormal', [out!], () => native().randNormal(tensorArg(out!), k0, k1, offset));
  });
  registerKernel('randInt', 'cuda', (_inputs, [out], attrs) => {
    const { k0, k1, offset } = readPhiloxAttrs('randInt', attrs);
    const low = attrs['low'] as number;
    const range = (attrs['high'] as number) - low;
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(range) || range < 1 || range > 4294967296) {
      throw new RangeError(`randInt: attrs low=${String(attrs['low'])}, high=${String(attrs['high'])} must be integers with 1 <= high - low <= 2^32`);
    }
    runKernel('randInt', [out!], () => native().randInt(tensorArg(out!), k0, k1, offset, low, range));
  });
  registerKernel('randBernoulli', 'cuda', (_inputs, [out], attrs) => {
    const { k0, k1, offset } = readPhiloxAttrs('randBernoulli', attrs);
    const p = attrs['p'];
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`randBernoulli: attr p must be in [0, 1], got ${String(p)}`);
    // u < p  <=>  (w >>> 8) < ceil(p * 2^24), as on the CPU.
    const threshold = Math.ceil(p * 16777216);
    runKernel('randBernoulli', [out!], () => native().randBernoulli(tensorArg(out!), k0, k1, offset, threshold));
  });
}
