/**
 * Command-line settings of the pretraining script: defaults, parsing, checks, and which of
 * them a resumed run may change.
 *
 * @module
 */
import { parseArgs } from 'node:util';

/** Every numeric setting: flag name -> [default, integer?, minimum]. */
export const NUMERIC = {
  hidden: [128, true, 2],
  layers: [4, true, 1],
  heads: [4, true, 1],
  'kv-heads': [0, true, 0],
  intermediate: [384, true, 1],
  context: [128, true, 2],
  'max-positions': [512, true, 2],
  steps: [1200, true, 1],
  batch: [16, true, 1],
  lr: [2e-3, false, 0],
  'min-lr-ratio': [0.1, false, 0],
  warmup: [60, true, 0],
  'weight-decay': [0.1, false, 0],
  beta1: [0.9, false, 0],
  beta2: [0.95, false, 0],
  'max-grad-norm': [1.0, false, 0],
  seed: [1234, true, 0],
  'save-every': [100, true, 0],
  'log-every': [10, true, 1],
  'eval-every': [200, true, 0],
  'eval-windows': [64, true, 1],
  'eval-batch': [16, true, 1],
  'max-minutes': [0, false, 0],
  'fit-minutes': [0, false, 0],
  'pause-at': [0, true, 0],
};

/** Settings that define the run; a resumed run must keep them (steps may grow). */
export const FIXED_ON_RESUME = [
  'hidden', 'layers', 'heads', 'kv-heads', 'intermediate', 'context', 'max-positions', 'batch', 'lr',
  'min-lr-ratio', 'warmup', 'weight-decay', 'beta1', 'beta2', 'max-grad-norm', 'seed', 'untied',
];

export const USAGE = `Usage: node scripts/pretrain/pretrain.mjs [options]

Pretrains the embedded Llama model on packages/blora/assets/corpus/train.txt with the
tokenizer in packages/blora/assets/tiny-llama/, evaluates it on corpus/heldout.txt against an
add-one smoothed unigram baseline, and saves it in Hugging Face layout. Build first:
  npx turbo run build --filter=@blora/blora... --filter=@blora/cpu-kernels

Model:      --hidden 128 --layers 4 --heads 4 --kv-heads (= heads) --intermediate 384
            --context 128 (tokens per training sequence) --max-positions 512 --untied
Training:   --steps 1200 --batch 16 (sequences per step) --lr 2e-3 --warmup 60
            --min-lr-ratio 0.1 (cosine floor) --weight-decay 0.1 --beta1 0.9 --beta2 0.95
            --max-grad-norm 1 --seed 1234
Run:        --out runs/pretrain (checkpoint, log.jsonl)  --resume (continue the run in --out)
            --save-every 100  --log-every 10  --eval-every 200 (held-out loss on --eval-windows
            64 windows every N steps; 0: only at the end)  --eval-batch 16
            --max-minutes 0 (stop, save and export after this much training time; 0: no limit)
            --fit-minutes 0 (time the first steps, then set --steps so the whole schedule fits this
            many minutes; the report records the steps chosen, which reproduce the run exactly)
            --pause-at 0 (stop after this step and save a checkpoint, to continue later with --resume)
            --finalize (no more training: evaluate and export the checkpoint in --out)
            --device cpu | cuda (cuda needs @blora/cuda-kernels built and an NVIDIA GPU)
Export:     --export packages/blora/assets/tiny-llama (or 'none')
`;

/**
 * Parses `argv` into settings. Returns null for --help.
 * @param {string[]} argv
 * @returns {{ values: Record<string, number | boolean | string>, given: Set<string> } | null}
 */
export function parseSettings(argv) {
  /** @type {import('node:util').ParseArgsConfig['options']} */
  const options = {
    help: { type: 'boolean' },
    untied: { type: 'boolean' },
    resume: { type: 'boolean' },
    finalize: { type: 'boolean' },
    out: { type: 'string' },
    export: { type: 'string' },
    device: { type: 'string' },
  };
  for (const name of Object.keys(NUMERIC)) options[name] = { type: 'string' };
  const { values: raw, tokens } = parseArgs({ args: argv, options, strict: true, tokens: true });
  if (raw.help) return null;
  const given = new Set(tokens.filter((t) => t.kind === 'option').map((t) => t.name));
  /** @type {Record<string, number | boolean | string>} */
  const values = {
    untied: raw.untied === true,
    resume: raw.resume === true,
    finalize: raw.finalize === true,
    out: typeof raw.out === 'string' ? raw.out : 'runs/pretrain',
    export: typeof raw.export === 'string' ? raw.export : 'packages/blora/assets/tiny-llama',
    device: typeof raw.device === 'string' ? raw.device : 'cpu',
  };
  if (values.device !== 'cpu' && values.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got '${values.device}'`);
  for (const [name, [fallback, integer, minimum]] of Object.entries(NUMERIC)) {
    const text = raw[name];
    if (text === undefined) {
      values[name] = fallback;
      continue;
    }
    const v = Number(text);
    if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < minimum) {
      throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${minimum}, got '${text}'`);
    }
    values[name] = v;
  }
  if (values['kv-heads'] === 0) values['kv-heads'] = values.heads;
  if (values.hidden % values.heads !== 0) throw new Error(`--hidden ${values.hidden} must be a multiple of --heads ${values.heads}`);
  if (values.heads % values['kv-heads'] !== 0) throw new Error(`--kv-heads ${values['kv-heads']} must divide --heads ${values.heads}`);
  if ((values.hidden / values.heads) % 2 !== 0) throw new Error('the head size (--hidden / --heads) must be even for rotary embeddings');
  if (values.context > values['max-positions']) throw new Error(`--context ${values.context} exceeds --max-positions ${values['max-positions']}`);
  if (!(values.beta1 < 1 && values.beta2 < 1)) throw new Error('--beta1 and --beta2 must be below 1');
  if (values['min-lr-ratio'] > 1) throw new Error('--min-lr-ratio must be in [0, 1]');
  return { values, given };
}

/**
 * Applies the saved settings of a run being resumed: fixed settings must not differ from the
 * saved ones, the others come from the command line when given, else from the saved run.
 * @param {Record<string, number | boolean | string>} saved
 * @param {{ values: Record<string, number | boolean | string>, given: Set<string> }} parsed
 */
export function mergeResumed(saved, parsed) {
  const merged = { ...parsed.values };
  for (const [name, value] of Object.entries(saved)) {
    if (['resume', 'finalize', 'out', 'export', 'pause-at', 'max-minutes', 'fit-minutes'].includes(name)) continue;
    const fixed = FIXED_ON_RESUME.includes(name);
    if (parsed.given.has(name) && fixed && parsed.values[name] !== value) {
      throw new Error(`--${name} ${parsed.values[name]} differs from the run being resumed (${value}); it cannot change`);
    }
    if (!parsed.given.has(name)) merged[name] = value;
  }
  return merged;
}

/**
 * The total steps that make a run fit `minutes` (--fit-minutes): `step` steps are done after
 * `elapsedSeconds`, each further one takes `secondsPerStep`. Never fewer than the warmup plus one,
 * so the schedule keeps its shape.
 * @param {{ minutes: number, elapsedSeconds: number, secondsPerStep: number, step: number, warmup: number }} timing
 */
export function fittedSteps({ minutes, elapsedSeconds, secondsPerStep, step, warmup }) {
  if (!(secondsPerStep > 0)) throw new RangeError(`fittedSteps: seconds per step must be > 0, got ${secondsPerStep}`);
  const left = Math.max(0, minutes * 60 - elapsedSeconds);
  return Math.max(warmup + 1, step + Math.floor(left / secondsPerStep));
}
