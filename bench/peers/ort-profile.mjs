// onnxruntime's own account of a call: its profiler records how long the node's kernel ran,
// without what the Node binding does with the input and output buffers around it. For large
// but cheap operations (an add of 4 M elements) the binding's share can be most of a call.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from '../report/suite.mjs';

/**
 * Creates a profiling session of `model` (same options otherwise), runs it `warmup` + `runs`
 * times on `feeds`, and returns the median and the fastest kernel time in ms (the sum of the
 * kernel events of each run).
 */
export async function ortKernelTime(ort, model, sessionOptions, feeds, { warmup = 2, runs = 15 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'blora-ort-profile-'));
  try {
    const session = await ort.InferenceSession.create(model, { ...sessionOptions, enableProfiling: true, profileFilePrefix: join(dir, 'p') });
    for (let i = 0; i < warmup + runs; i++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    // Kernel events in run order; a run is delimited by its 'model_run' event.
    const runsOf = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const kernels = events.filter((e) => e.cat === 'Node' && String(e.name).endsWith('_kernel_time'));
    const perRun = runsOf.slice(warmup).map((r) => kernels
      .filter((k) => k.ts >= r.ts && k.ts <= r.ts + r.dur)
      .reduce((s, k) => s + k.dur, 0) / 1000);
    if (!perRun.length) throw new Error('no kernel events in the profile');
    return { ms: median(perRun), best: Math.min(...perRun) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
