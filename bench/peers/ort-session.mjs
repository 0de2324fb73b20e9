// An onnxruntime session around a model built in memory, as the implementations a suite times:
// the call from Node (session.run with the output preallocated) and, from onnxruntime's own
// profiler, the time its kernel ran.
import { ortKernelTime } from './ort-profile.mjs';

/** Session options shared by every onnxruntime figure. */
export function ortSessionOptions(threads) {
  return { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
}

/**
 * Two implementations for `runCases`: `name` (session.run from Node, output preallocated when
 * the binding accepts it) and `name + ' kernel only'` (its profiler), plus `release`.
 *
 * @param {object} ort the onnxruntime-node module
 * @param {string} name
 * @param {Uint8Array} model a serialized ModelProto
 * @param {Record<string, {type: string, data: ArrayBufferView, shape: number[]}>} inputs graph inputs
 * @param {{name: string, length: number, shape: number[]}} output
 * @param {number} threads intra-op threads
 */
export async function ortImplementations(ort, name, model, inputs, output, threads) {
  const options = ortSessionOptions(threads);
  const session = await ort.InferenceSession.create(model, options);
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, new ort.Tensor(v.type, v.data, v.shape)]));
  const y = new ort.Tensor('float32', new Float32Array(output.length), output.shape);
  let run;
  try {
    await session.run(feeds, { [output.name]: y });
    run = async () => (await session.run(feeds, { [output.name]: y }))[output.name].data;
  } catch {
    run = async () => (await session.run(feeds))[output.name].data;
  }
  return {
    impls: [
      { name, fn: run, output: run },
      { name: `${name} kernel only`, measure: () => ortKernelTime(ort, model, options, feeds) },
    ],
    release: () => session.release(),
  };
}
