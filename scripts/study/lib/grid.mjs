// The study's grid, declared once: which adapters are compared (QLoRA, Q-BLoRA over λ,
// QA-LoRA, QA-BLoRA (4, 8) on blocks of 32 and (8, 8) on blocks of 64 and of 32), how each maps
// onto `blora finetune` flags, how its 4-bit export is made, and which variants cannot be run.
// Planning the commands of a run is pure (no file is touched), so `--dry-run` and the tests use
// it as is.
import { join } from 'node:path';

/**
 * @typedef {object} Variant
 * @property {string} name short, unique, used in paths and `--only`
 * @property {string} label what the report calls it
 * @property {'qlora' | 'qblora' | 'qalora' | 'qablora'} family the method family (claims compare families)
 * @property {'qlora' | 'qblora' | 'qablora'} method the `blora finetune --method`
 * @property {string[]} flags extra `blora finetune` flags
 * @property {number | null} lambda Q-BLoRA's λ (λin = λout), else null
 * @property {[number, number] | null} lambdas QA variants: [λin, λout], else null
 * @property {number | null} block elements per quantization block of the trained base (null: NF4 default 64); QA variants
 *   use 2-D blocks of the whole λout × λin tile unless `--tile R×C` (inside the tile) is among the flags
 * @property {'exact' | 'requantize'} export how the 4-bit model is made: exact merge into INT4, or dense merge + INT4 re-quantization
 * @property {boolean} [factorRank] factor-form QA adapter trained at factor rank r and scaling α / r, as QA-LoRA
 *   (the command line's factor rank is rank × λin, so it gets --rank r/λin --alpha α/λin)
 * @property {string} [note] what the reader should know about this variant
 */

/**
 * @typedef {object} UnsupportedVariant
 * @property {string} name
 * @property {string} label
 * @property {string} reason why the command line cannot run it today
 */

/** λ values of the Q-BLoRA sweep (λ = 1 is QLoRA's adapter again, a built-in control). */
export const QBLORA_LAMBDAS = [1, 2, 4, 8];

/** Every variant the study runs, in report order. */
export const VARIANTS = /** @type {Variant[]} */ ([
  {
    name: 'qlora', label: 'QLoRA', family: 'qlora', method: 'qlora', flags: [],
    lambda: null, lambdas: null, block: null, export: 'requantize',
  },
  ...QBLORA_LAMBDAS.map((lambda) => /** @type {Variant} */ ({
    name: `qblora-l${lambda}`, label: `Q-BLoRA λ=${lambda}`, family: 'qblora', method: 'qblora', flags: ['--lambda', String(lambda)],
    lambda, lambdas: null, block: null, export: 'requantize',
  })),
  {
    name: 'qalora-g32', label: 'QA-LoRA (group 32)', family: 'qalora', method: 'qablora',
    flags: ['--lambda-in', '32', '--lambda-out', '1', '--form', 'factors'], factorRank: true,
    lambda: null, lambdas: [32, 1], block: 32, export: 'exact',
    note: 'QA-BLoRA in the factor form with λin = 32, λout = 1: INT4 groups of 32 input columns, input pooled over each group, ' +
      'no output repeat, B·A of rank r and scaling α / r as QLoRA (given as --rank r/32 --alpha α/32, since the factor rank is ' +
      'rank × λin).',
  },
  {
    name: 'qablora-4x8-b32', label: 'QA-BLoRA (4, 8), blocks of 32', family: 'qablora', method: 'qablora', flags: ['--lambda-in', '4', '--lambda-out', '8'],
    lambda: null, lambdas: [4, 8], block: 32, export: 'exact',
  },
  {
    name: 'qablora-8x8-b64', label: 'QA-BLoRA (8, 8), blocks of 64', family: 'qablora', method: 'qablora', flags: ['--lambda-in', '8', '--lambda-out', '8'],
    lambda: null, lambdas: [8, 8], block: 64, export: 'exact',
  },
  {
    name: 'qablora-8x8-b32', label: 'QA-BLoRA (8, 8), blocks of 32 (4 x 8)', family: 'qablora', method: 'qablora',
    flags: ['--lambda-in', '8', '--lambda-out', '8', '--tile', '4x8'],
    lambda: null, lambdas: [8, 8], block: 32, export: 'exact',
    note: 'The same adapter as (8, 8) on blocks of 64, on a finer base: INT4 blocks of 4 rows x 8 columns, two per 8 x 8 tile, ' +
      'so the update still merges exactly into the blocks\' offsets.',
  },
]);

/** Variants of the planned study that today's command line cannot express, with the reason. */
export const UNSUPPORTED = /** @type {UnsupportedVariant[]} */ ([
  {
    name: 'qablora-4x8-b64', label: 'QA-BLoRA (4, 8) on blocks of 64',
    reason: 'not possible: a 64-element block cannot lie inside an 8 × 4 tile, so the merge into INT4 could not be exact',
  },
]);

/** Default settings of the study (sized for the embedded model on the GPU host; override on the command line). */
export const STUDY_DEFAULTS = Object.freeze({
  device: 'cpu',
  steps: 1000,
  seeds: [1, 2, 3],
  rank: 64,
  lr: 1e-3,
  batch: 16,
  gradAccum: 1,
  mcLimit: 0,
  test: 'cloze',
  evalSize: 64,
});

/**
 * Turns a comma-separated list of patterns (`*` matches any run of characters) into a test on
 * variant names; an empty list selects everything.
 *
 * @param {string | undefined} patterns
 * @returns {(name: string) => boolean}
 */
export function nameFilter(patterns) {
  const parts = (patterns ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  if (!parts.length) return () => true;
  const regexes = parts.map((p) => new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
  return (name) => regexes.some((r) => r.test(name));
}

/**
 * The variants selected by `--only` (all when none is given). Throws when the patterns select
 * nothing, naming the variants there are.
 *
 * @param {string | undefined} only
 * @returns {{ variants: Variant[], unsupported: UnsupportedVariant[] }}
 */
export function selectVariants(only) {
  const keep = nameFilter(only);
  const variants = VARIANTS.filter((v) => keep(v.name));
  const unsupported = UNSUPPORTED.filter((v) => keep(v.name));
  if (!variants.length && !unsupported.length) {
    throw new Error(`--only ${only} matches no variant; there are ${[...VARIANTS, ...UNSUPPORTED].map((v) => v.name).join(', ')}`);
  }
  return { variants, unsupported };
}

/**
 * @typedef {object} Step
 * @property {'finetune' | 'eval' | 'merge' | 'eval-merged'} stage
 * @property {string[]} argv arguments after `blora`
 * @property {string} done the file whose presence means the stage is complete
 */

/**
 * @typedef {object} PlannedRun
 * @property {string} id `<variant>/seed-<seed>`
 * @property {Variant} variant
 * @property {number} seed
 * @property {string} dir the run's directory
 * @property {string} result its result JSON (present when the run is complete)
 * @property {Step[]} steps the commands, in order
 */

/**
 * @typedef {object} StudySettings
 * @property {string} out study directory
 * @property {string} model base checkpoint directory
 * @property {string} mc multiple-choice questions (JSONL)
 * @property {string} device cpu or cuda
 * @property {number} steps
 * @property {number} rank
 * @property {number} lr
 * @property {number} batch
 * @property {number} gradAccum
 * @property {number} mcLimit
 */

/** The files of the study directory that every run shares: the fixed training / held-out split. */
export function dataFiles(/** @type {string} */ out) {
  return { train: join(out, 'data', 'train.jsonl'), heldOut: join(out, 'data', 'heldout.jsonl') };
}

/**
 * The evaluation flags shared by every scored model: the 4-choice test (first `mcLimit`
 * questions; 0 = all) and the held-out loss on the study's fixed held-out split.
 *
 * @param {StudySettings} s
 * @param {string} outFile
 */
function evalFlags(s, outFile) {
  return ['--mc', s.mc, '--mc-limit', String(s.mcLimit), '--data', dataFiles(s.out).heldOut, '--device', s.device, '--out', outFile];
}

/** The adapter's α unless a variant says otherwise (blora finetune's default). */
const ALPHA = 16;

/**
 * The rank (and, for `factorRank` variants, α) flags of a variant at nominal rank `rank`.
 * @param {Variant} variant
 * @param {number} rank
 */
export function rankFlagsOf(variant, rank) {
  if (!variant.factorRank) return ['--rank', String(rank)];
  const lambdaIn = /** @type {[number, number]} */ (variant.lambdas)[0];
  if (rank % lambdaIn !== 0) throw new Error(`${variant.name}: rank ${rank} must be a multiple of λin = ${lambdaIn} (factor rank = rank)`);
  return ['--rank', String(rank / lambdaIn), '--alpha', String(ALPHA / lambdaIn)];
}

/**
 * The commands of one run: fine-tune, score the adapter, make the 4-bit export (exact merge
 * into INT4 for QA variants; dense merge + INT4 re-quantization otherwise), score that.
 *
 * @param {StudySettings} s
 * @param {Variant} variant
 * @param {number} seed
 * @returns {PlannedRun}
 */
export function planRun(s, variant, seed) {
  const id = `${variant.name}/seed-${seed}`;
  const dir = join(s.out, 'runs', variant.name, `seed-${seed}`);
  const adapter = join(dir, 'adapter');
  const merged = join(dir, 'merged-int4');
  const mergeFlags = variant.export === 'exact' ? [] : ['--requantize', 'int4'];
  const rankFlags = rankFlagsOf(variant, s.rank);
  return {
    id, variant, seed, dir, result: join(dir, 'result.json'),
    steps: [
      {
        stage: 'finetune', done: join(adapter, 'summary.json'),
        argv: ['finetune', '--model', s.model, '--data', dataFiles(s.out).train, '--method', variant.method, ...variant.flags,
          ...rankFlags, '--steps', String(s.steps), '--lr', String(s.lr), '--batch', String(s.batch),
          '--grad-accum', String(s.gradAccum), '--seed', String(seed), '--eval-size', '0', '--save-every', '0',
          '--device', s.device, '--quiet', '--out', adapter],
      },
      { stage: 'eval', done: join(dir, 'eval.json'), argv: ['eval', '--adapter', adapter, ...evalFlags(s, join(dir, 'eval.json'))] },
      { stage: 'merge', done: join(merged, 'merge-report.json'), argv: ['merge', '--adapter', adapter, ...mergeFlags, '--out', merged] },
      { stage: 'eval-merged', done: join(dir, 'merged-eval.json'), argv: ['eval', '--model', merged, ...evalFlags(s, join(dir, 'merged-eval.json'))] },
    ],
  };
}

/** The scoring of the base model alone (float32, as stored), once per study. */
export function planBaseEval(/** @type {StudySettings} */ s) {
  const file = join(s.out, 'base-eval.json');
  return { stage: 'eval', done: file, argv: ['eval', '--model', s.model, ...evalFlags(s, file)] };
}

/**
 * Every run of the study: the selected variants × seeds, in grid order (seed-major within a
 * variant).
 *
 * @param {StudySettings} s
 * @param {Variant[]} variants
 * @param {number[]} seeds
 * @returns {PlannedRun[]}
 */
export function planStudy(s, variants, seeds) {
  return variants.flatMap((v) => seeds.map((seed) => planRun(s, v, seed)));
}
