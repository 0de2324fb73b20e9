// One generated token as a fixed piece of device work: the token id, its position and the number
// of keys to attend live in device memory, the new keys and values are written into the cache's
// buffers at that position, and the rotary tables are gathered on the device. Nothing the kernels
// are launched with changes from token to token, so on a device that records graphs the step is
// captured once and replayed with one launch a token instead of hundreds of op calls.
import {
  argmax, canCaptureGraphs, captureGraph, keep, reshape, runKernel, tensor, tidy, type CapturedGraph, type Tensor,
} from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import type { KVCache } from './kv-cache.js';
import type { DeviceStep, LlamaForCausalLM } from './model.js';
import { ropeInverseFrequencies, ropeTablesFor } from './rope.js';

/** What one step leaves on the device: the logits [vocab] and their argmax (int32, 0-d). */
interface StepOutputs {
  logits: Tensor;
  choice: Tensor;
}

/** Options of a `DecodeStep`. */
export interface DecodeStepOptions {
  /**
   * Record the step as a graph and replay it (default: where the device can, see
   * `canCaptureGraphs`); false runs the same ops one by one every token.
   */
  graph?: boolean;
}

/**
 * Runs one token at a time through `model` and `cache`, whose buffers must already hold the
 * positions before it (a pass through the cache, such as the prompt's) and have room for every
 * position the step will reach (`KVCache` capacity). Call `dispose()` when done, before the
 * cache's own `dispose()` (a recorded step writes into the cache's buffers); the cache stays the
 * caller's.
 */
export class DecodeStep {
  /** Whether the step replays a recorded graph. */
  readonly usesGraph: boolean;
  private readonly ids: Tensor;
  private readonly inputs: DeviceStep;
  private readonly capacity: number;
  private graph: CapturedGraph | null = null;
  /** The last step's logits [vocab] and their argmax [] (int32), from the graph's own memory when recorded. */
  private outputs: StepOutputs | null = null;

  constructor(private readonly model: LlamaForCausalLM, private readonly cache: KVCache, options: DecodeStepOptions = {}) {
    if (cache.numLayers !== model.config.numHiddenLayers) {
      throw new RangeError(`DecodeStep: the KV cache has ${cache.numLayers} layers, the model ${model.config.numHiddenLayers}`);
    }
    this.capacity = Math.min(...Array.from({ length: cache.numLayers }, (_, i) => cache.capacity(i)));
    if (this.capacity === 0) throw new Error('DecodeStep: the KV cache holds no buffers yet; run the prompt through it first (without gradients)');
    const device = model.device;
    this.usesGraph = options.graph ?? canCaptureGraphs(device);
    if (this.usesGraph && !canCaptureGraphs(device)) throw new Error(`DecodeStep: device '${device}' cannot record graphs`);
    const int = { dtype: 'int32' as const, device };
    const tables = ropeTablesFor(ropeInverseFrequencies(model.config), this.capacity, 0, model.dtype, device);
    this.ids = keep(tensor([0], { ...int, shape: [1, 1] }));
    this.inputs = {
      position: keep(tensor([0], int)),
      keyLength: keep(tensor([1], int)),
      cos: keep(tables.cos),
      sin: keep(tables.sin),
    };
  }

  /**
   * The logits (float64, the vocabulary) after `token` at the position the cache continues from;
   * the cache then holds one more position.
   */
  next(token: number): Float64Array {
    return this.step(token).logits.toFloat64Array();
  }

  /**
   * The most likely token after `token` (the argmax of `next`'s logits, the first on ties),
   * found on the device, so that only its index comes back to the host; the cache then holds one
   * more position.
   */
  nextGreedy(token: number): number {
    return this.step(token).choice.item();
  }

  // Runs (or replays) the step for `token` at the cache's next position; the outputs stay the step's.
  private step(token: number): StepOutputs {
    const position = this.cache.length;
    if (position >= this.capacity) throw new RangeError(`DecodeStep: position ${position} is past the cache's room for ${this.capacity}`);
    if (!Number.isInteger(token) || token < 0 || token >= this.model.config.vocabSize) throw new RangeError(`DecodeStep: token id ${token} is not in the vocabulary`);
    const device = this.model.device;
    runKernel('fill', device, [], [this.ids], { value: token });
    runKernel('fill', device, [], [this.inputs.position], { value: position });
    runKernel('fill', device, [], [this.inputs.keyLength], { value: position + 1 });
    if (!this.usesGraph) {
      this.releaseOutputs();
      this.outputs = this.run();
    } else {
      if (!this.graph) this.graph = captureGraph(device, () => (this.outputs = this.run()));
      this.graph.replay();
    }
    this.cache.advance(1);
    return this.outputs!;
  }

  /** Whether the graph has been recorded (at the first `next`). */
  get recorded(): boolean {
    return this.graph !== null;
  }

  /** Releases the graph, its memory and the step's own tensors. */
  dispose(): void {
    this.graph?.dispose();
    this.graph = null;
    this.releaseOutputs();
    for (const t of [this.ids, this.inputs.position, this.inputs.keyLength, this.inputs.cos, this.inputs.sin]) t.dispose();
  }

  private releaseOutputs(): void {
    this.outputs?.logits.dispose();
    this.outputs?.choice.dispose();
    this.outputs = null;
  }

  // The step's ops: logits [vocab] of the one token and their argmax, kept past the scope.
  private run(): StepOutputs {
    return noGrad(() => tidy(() => {
      const hidden = this.model.hiddenStates(this.ids, { kvCache: this.cache, step: this.inputs });
      const logits = reshape(this.model.logitsFrom(hidden), [-1]);
      return { logits: keep(logits), choice: keep(argmax(logits, 0)) };
    }));
  }
}
