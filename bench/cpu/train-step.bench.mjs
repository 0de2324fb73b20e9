// One Q-BLoRA training step of the embedded model (packages/blora/assets/tiny-llama)
// with its block projections in NF4 (blocks of 64, double quantization): forward, causal-LM
// loss, backward, AdamW on the adapters, at batch 8 x 128 tokens. Timed with the native kernels
// of @blora/cpu-kernels (which also recycle released tensor buffers), with the TypeScript
// kernels only (BLORA_CPU_KERNELS=off), and, to show what the buffer recycling alone is worth,
// with the TypeScript kernels plus the buffer pool; each in its own child process, in training
// tokens per second.
//
//   node bench/cpu/train-step.bench.mjs [--steps N] [--typescript-steps N] [--out FILE]
//
// Adapters as `blora finetune --method qblora` makes them by default: r 64, α 16, λ 2, no dropout.
// Token ids are uniform random (the step costs the same for any ids).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { versions } from '../report/ours.mjs';
import { median, printTable, writeResults } from '../report/suite.mjs';

const BATCH = 8;
const SEQUENCE = 128;
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);

if (option('--child', null)) {
  await child(Number(option('--steps', 5)));
} else {
  await parent();
}

/** Runs warm-up plus `steps` timed steps in this process and prints one JSON line. */
async function child(steps) {
  const { tidy, tensor, reshape, narrow, contiguous, Generator } = await import('@blora/tensor');
  const { AdamW } = await import('@blora/autograd');
  const blora = await import('@blora/blora');
  const { cpuKernelsInfo, BufferPool, installBufferPool } = await import('@blora/cpu-kernels');
  // TypeScript kernels with the buffer pool (the native kernels are off in this child).
  if (option('--child', null) === 'typescript-pool') installBufferPool(new BufferPool(1024 * 2 ** 20));
  const modelDir = fileURLToPath(new URL('../../packages/blora/assets/tiny-llama', import.meta.url));
  const { model } = blora.loadBaseModel(modelDir, blora.quantizeOptionsFor({ quant: 'nf4' }), 'cpu');
  const attached = blora.attachAdapters(model, { method: 'qblora', r: 64, alpha: 16, dropout: 0, lambdaIn: 2, lambdaOut: 2 },
    { generator: new Generator(1), dropoutGenerator: new Generator(2) });
  model.train?.(true);
  const optimizer = new AdamW(attached.trainableParameters(), { lr: 2e-4, weightDecay: 0 });
  const vocab = model.config.vocabSize;
  let seed = 12345;
  const nextId = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % vocab);
  const ids = reshape(tensor(Int32Array.from({ length: BATCH * (SEQUENCE + 1) }, nextId), { dtype: 'int32' }), [BATCH, SEQUENCE + 1]);
  const inputs = contiguous(narrow(ids, 1, 0, SEQUENCE));
  const targets = contiguous(narrow(ids, 1, 1, SEQUENCE));
  const step = () => {
    const loss = tidy(() => {
      const l = blora.causalLmLoss(model.forward(inputs), targets, BATCH * SEQUENCE);
      l.backward();
      return l.item();
    });
    optimizer.step();
    optimizer.zeroGrad();
    return loss;
  };
  const losses = [step()]; // warm-up: first allocations, code paths compiled
  const times = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    losses.push(step());
    times.push(performance.now() - start);
  }
  const info = cpuKernelsInfo();
  process.stdout.write(`${JSON.stringify({ times, losses, info: info.native ? { native: true, isa: info.isa, threads: info.threads } : { native: false, reason: info.reason } })}\n`);
}

function runChild(kernels, steps) {
  const env = { ...process.env };
  if (kernels.startsWith('typescript')) env.BLORA_CPU_KERNELS = 'off';
  else delete env.BLORA_CPU_KERNELS;
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', kernels, '--steps', String(steps)], {
    env, encoding: 'utf8', maxBuffer: 1 << 24,
  });
  const line = r.stdout.trim().split('\n').pop();
  if (r.status !== 0 || !line?.startsWith('{')) throw new Error(`${kernels} child failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line);
}

async function parent() {
  const steps = Number(option('--steps', 8));
  const tsSteps = Number(option('--typescript-steps', 2));
  const tokens = BATCH * SEQUENCE;
  const { cpuKernelsInfo } = await import('@blora/cpu-kernels');
  const info = cpuKernelsInfo();
  const runs = {};
  const paths = [
    ['blora native', 'native', steps],
    ['blora TypeScript only', 'typescript', tsSteps],
    ['blora TypeScript + buffer pool', 'typescript-pool', tsSteps],
  ];
  for (const [name, kernels, n] of paths) {
    console.log(`${name}: warm-up step + ${n} timed steps (batch ${BATCH} x ${SEQUENCE} tokens)`);
    runs[name] = runChild(kernels, n);
    const ms = median(runs[name].times);
    console.log(`  median ${ms.toFixed(0)} ms/step, ${(tokens / ms * 1000).toFixed(0)} tokens/s, losses ${runs[name].losses.map((l) => l.toFixed(3)).join(' ')}`);
  }
  const native = runs['blora native'];
  const ts = runs['blora TypeScript only'];
  // Both paths must train the same model: their losses agree up to float32 rounding.
  const lossGap = Math.max(...native.losses.slice(0, ts.losses.length).map((l, i) => Math.abs(l - ts.losses[i])));
  const results = [{
    id: 'train.qblora.nf4.b8x128',
    label: 'Q-BLoRA step, NF4, 8 x 128',
    unit: 'tokens/s',
    work: tokens,
    ours: 'blora native',
    peers: ['blora TypeScript only', 'blora TypeScript + buffer pool'],
    results: Object.fromEntries(Object.entries(runs).map(([name, run]) => {
      const ms = median(run.times);
      return [name, {
        ms, best: Math.min(...run.times), roundMs: run.times, spread: Math.max(...run.times) / Math.min(...run.times),
        value: tokens / ms * 1000, losses: run.losses, kernels: run.info,
      }];
    })),
  }];
  const ratio = median(ts.times) / median(native.times);
  const targets = [{ id: 'train.qblora.nf4.b8x128', reference: 'blora TypeScript only', goal: 'training step of the embedded model at least 20x faster than the TypeScript-only path', ratio, threshold: 20, met: ratio >= 20 }];
  printTable('training step (tokens/s = 1024 / median step time)', results);
  console.log(`loss agreement over the first ${ts.losses.length} steps: max |difference| ${lossGap.toExponential(2)}`);
  console.log(`target: ${targets[0].goal}: ${ratio.toFixed(1)}x -> ${targets[0].met ? 'met' : 'NOT met'}`);
  writeResults('train-step', {
    versions: versions(info),
    settings: { batch: BATCH, sequence: SEQUENCE, steps, typescriptSteps: tsSteps, adapters: { method: 'qblora', r: 64, alpha: 16, lambda: 2, dropout: 0 }, base: 'nf4, blocksize 64, double quantization' },
    results,
    targets,
    notes: [
      'Each path runs in its own Node process: one untimed warm-up step, then timed steps (forward, loss, backward, AdamW, zeroGrad); the median step is reported.',
      'TypeScript only: BLORA_CPU_KERNELS=off, so every op runs the TypeScript kernels and every tensor gets a fresh typed array.',
      'TypeScript + buffer pool: BLORA_CPU_KERNELS=off plus the pool of released tensor buffers that the native kernels install (installBufferPool), to show what the recycling alone is worth; the target compares the native path with TypeScript only.',
      `Both paths start from the same weights and batch; their losses agree to ${lossGap.toExponential(1)} over the steps both ran.`,
    ],
  }, option('--out', null));
}
