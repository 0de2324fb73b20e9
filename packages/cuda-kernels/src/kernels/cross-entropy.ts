// crossEntropy and crossEntropyBackward on the cuda device. The kernels check the targets
// on the device and report the first one outside [0, V) that is not ignoreIndex; the op then
// throws the CPU backend's RangeError (reading that report waits for the GPU).
import { registerKernel, type Attrs } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withDense } from './dense.js';

function targetError(op: string, bad: [number, number] | null, vocab: number, ignoreIndex: number): void {
  if (!bad) return;
  const [position, target] = bad;
  throw new RangeError(`${op}: target ${target} at position ${position} is out of range [0, ${vocab}) and is not ignoreIndex (${ignoreIndex})`);
}

function readAttrs(attrs: Attrs): { ignoreIndex: number; mean: boolean } {
  return { ignoreIndex: attrs.ignoreIndex as number, mean: attrs.reduction === 'mean' };
}

/** Registers crossEntropy and crossEntropyBackward for 'cuda'. */
export function registerCrossEntropyKernels(): void {
  registerKernel('crossEntropy', 'cuda', ([logits, targets], [loss, lse], attrs) => {
    const { ignoreIndex, mean } = readAttrs(attrs);
    let bad: [number, number] | null = null;
    runKernel('crossEntropy', [logits!, targets!, loss!, lse!], () => {
      bad = native().crossEntropy(tensorArg(logits!), tensorArg(targets!), tensorArg(loss!), tensorArg(lse!), ignoreIndex, mean);
    });
    targetError('crossEntropy', bad, logits!.shape[1]!, ignoreIndex);
  });
  registerKernel('crossEntropyBackward', 'cuda', ([dloss, logits, targets, lse], [dlogits], attrs) => {
    const { ignoreIndex, mean } = readAttrs(attrs);
    let bad: [number, number] | null = null;
    runKernel('crossEntropyBackward', [dloss!, logits!, targets!, lse!, dlogits!], () => {
      bad = withDense([lse!], ([lseArg]) =>
        native().crossEntropyBackward(tensorArg(dloss!), tensorArg(logits!), tensorArg(targets!), lseArg!,
          tensorArg(dlogits!), ignoreIndex, mean));
    });
    targetError('crossEntropyBackward', bad, logits!.shape[1]!, ignoreIndex);
  });
}
