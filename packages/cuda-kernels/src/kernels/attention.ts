// attention and attentionBackward on the cuda device: flash-style kernels that never store
// the T x S probabilities. q, k, v, o and dO are read through their strides; the saved lse
// is read densely.
import { registerKernel, type Attrs } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withDense } from './dense.js';

/** causal, window (0 for none) and scale, as the native kernels take them. */
function maskOf(attrs: Attrs): [boolean, number, number] {
  const window = (attrs.window as number | null | undefined) ?? null;
  return [attrs.causal === true, window === null ? 0 : window, attrs.scale as number];
}

/** Registers attention and attentionBackward for 'cuda'. */
export function registerAttentionKernels(): void {
  registerKernel('attention', 'cuda', ([q, k, v, keyLength], [o, lse], attrs) => {
    runKernel('attention', [q!, k!, v!, ...(keyLength ? [keyLength] : []), o!, lse!], () =>
      native().attention(tensorArg(q!), tensorArg(k!), tensorArg(v!), tensorArg(o!), tensorArg(lse!), ...maskOf(attrs),
        keyLength ? tensorArg(keyLength) : null));
  });
  registerKernel('attentionBackward', 'cuda', ([dO, q, k, v, o, lse], [dq, dk, dv], attrs) => {
    runKernel('attentionBackward', [dO!, q!, k!, v!, o!, lse!, dq!, dk!, dv!], () =>
      withDense([lse!], ([lseArg]) =>
        native().attentionBackward(tensorArg(dO!), tensorArg(q!), tensorArg(k!), tensorArg(v!), tensorArg(o!), lseArg!,
          tensorArg(dq!), tensorArg(dk!), tensorArg(dv!), ...maskOf(attrs))));
  });
}
