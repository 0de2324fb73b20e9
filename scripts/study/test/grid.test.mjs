import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { nameFilter, planStudy, rankFlagsOf, selectVariants, UNSUPPORTED, VARIANTS } from '../lib/grid.mjs';
import { existsSync } from 'node:fs';
import { parseStudyArgs } from '../run.mjs';

const root = resolve(import.meta.dirname, '..', '..', '..');

/** The value following `flag` in an argument list. */
const flagValue = (/** @type {string[]} */ argv, /** @type {string} */ flag) => argv[argv.indexOf(flag) + 1];

test('the grid holds QLoRA, Q-BLoRA λ 1, 2, 4, 8, QA-LoRA and QA-BLoRA (4, 8) / (8, 8) with their export paths', () => {
  assert.deepEqual(VARIANTS.map((v) => v.name),
    ['qlora', 'qblora-l1', 'qblora-l2', 'qblora-l4', 'qblora-l8', 'qalora-g32', 'qablora-4x8-b32', 'qablora-8x8-b64', 'qablora-8x8-b32']);
  for (const v of VARIANTS) {
    // The exact INT4 merge needs blocks inside the tile λout × λin (the whole tile unless --tile R×C says
    // otherwise); the others re-quantize.
    if (v.lambdas) {
      const [lambdaIn, lambdaOut] = v.lambdas;
      const tile = v.flags.includes('--tile') ? flagValue(v.flags, '--tile').split('x').map(Number) : [lambdaOut, lambdaIn];
      assert.equal(tile[0] * tile[1], v.block, v.name);
      assert.ok(lambdaOut % tile[0] === 0 && lambdaIn % tile[1] === 0, `${v.name}: blocks ${tile.join(' x ')} inside the tile`);
    }
    assert.equal(v.export, v.method === 'qablora' ? 'exact' : 'requantize', v.name);
  }
  const b32 = VARIANTS.find((v) => v.name === 'qablora-8x8-b32');
  assert.deepEqual(b32?.flags, ['--lambda-in', '8', '--lambda-out', '8', '--tile', '4x8']);
  assert.equal(b32?.label, 'QA-BLoRA (8, 8), blocks of 32 (4 x 8)');
  assert.equal(b32?.family, 'qablora');
  assert.deepEqual(UNSUPPORTED.map((u) => u.name), ['qablora-4x8-b64']);
  assert.ok(UNSUPPORTED.every((u) => /^not (yet supported|possible)/.test(u.reason)));
  assert.equal(new Set([...VARIANTS, ...UNSUPPORTED].map((v) => v.name)).size, VARIANTS.length + UNSUPPORTED.length);
});

test('--only takes comma-separated names with * wildcards, and refuses patterns that match nothing', () => {
  const keep = nameFilter('qlora, qablora-*');
  assert.deepEqual(VARIANTS.filter((v) => keep(v.name)).map((v) => v.name), ['qlora', 'qablora-4x8-b32', 'qablora-8x8-b64', 'qablora-8x8-b32']);
  assert.equal(nameFilter('qblora')('qblora-l2'), false); // whole names only
  assert.equal(nameFilter('qblora-l.')('qblora-l2'), false); // a dot is literal
  assert.equal(nameFilter(undefined)('anything'), true);
  assert.deepEqual(selectVariants('qablora-8x8-*').variants.map((v) => v.name), ['qablora-8x8-b64', 'qablora-8x8-b32']);
  assert.deepEqual(selectVariants('qablora-8x8-*').unsupported, []);
  assert.deepEqual(selectVariants('*-b64').unsupported.map((u) => u.name), ['qablora-4x8-b64']);
  assert.throws(() => selectVariants('nope'), /--only nope matches no variant; there are qlora, qblora-l1/);
});

test('each run is finetune, eval, merge, eval of the merged model, with the run settings in the flags', () => {
  const parsed = parseStudyArgs(['--steps', '7', '--seeds', '3,5', '--rank', '8', '--device', 'cuda', '--out', '/tmp/s', '--mc-limit', '10']);
  assert.ok(parsed);
  const runs = planStudy(parsed.settings, selectVariants('qblora-l4,qablora-8x8-*').variants, parsed.seeds);
  assert.deepEqual(runs.map((r) => r.id), ['qblora-l4/seed-3', 'qblora-l4/seed-5', 'qablora-8x8-b64/seed-3', 'qablora-8x8-b64/seed-5',
    'qablora-8x8-b32/seed-3', 'qablora-8x8-b32/seed-5']);
  const [qb, , qa, , qa32] = runs;
  assert.deepEqual(qb.steps.map((s) => s.stage), ['finetune', 'eval', 'merge', 'eval-merged']);
  const ft = qb.steps[0].argv;
  assert.equal(ft[0], 'finetune');
  assert.equal(flagValue(ft, '--method'), 'qblora');
  assert.equal(flagValue(ft, '--lambda'), '4');
  assert.equal(flagValue(ft, '--steps'), '7');
  assert.equal(flagValue(ft, '--seed'), '3');
  assert.equal(flagValue(ft, '--rank'), '8');
  assert.equal(flagValue(ft, '--device'), 'cuda');
  assert.equal(flagValue(ft, '--out'), join('/tmp/s', 'runs', 'qblora-l4', 'seed-3', 'adapter'));
  assert.equal(flagValue(qb.steps[1].argv, '--mc-limit'), '10');
  assert.equal(flagValue(qb.steps[1].argv, '--data'), join('/tmp/s', 'data', 'heldout.jsonl'));
  assert.equal(flagValue(qb.steps[2].argv, '--requantize'), 'int4');
  assert.equal(flagValue(qb.steps[3].argv, '--model'), join(qb.dir, 'merged-int4'));
  assert.equal(flagValue(qa.steps[0].argv, '--lambda-in'), '8');
  assert.equal(flagValue(qa.steps[0].argv, '--lambda-out'), '8');
  assert.ok(!qa.steps[2].argv.includes('--requantize'));
  assert.ok(!qa.steps[0].argv.includes('--tile'));
  // Blocks of 32 inside the 8 x 8 tiles: the finetune says so, and the merge stays exact.
  assert.equal(flagValue(qa32.steps[0].argv, '--tile'), '4x8');
  assert.equal(flagValue(qa32.steps[0].argv, '--lambda-in'), '8');
  assert.equal(flagValue(qa32.steps[0].argv, '--lambda-out'), '8');
  assert.ok(!qa32.steps[2].argv.includes('--requantize'));
});

test('bad settings are refused with the flag named', () => {
  assert.throws(() => parseStudyArgs(['--steps', '0']), /--steps must be an integer >= 1, got '0'/);
  assert.throws(() => parseStudyArgs(['--seeds', '1,1']), /--seeds must be distinct integers/);
  assert.throws(() => parseStudyArgs(['--device', 'tpu']), /--device must be cpu or cuda, got 'tpu'/);
  assert.throws(() => parseStudyArgs(['--lr=-1']), /--lr must be a positive number, got '-1'/);
  assert.throws(() => parseStudyArgs(['--lr', 'abc']), /--lr must be a positive number, got 'abc'/);
  assert.throws(() => parseStudyArgs(['--bogus']), /Unknown option '--bogus'/);
  assert.throws(() => parseStudyArgs(['--test', 'essay']), /--test must be cloze or listed, got 'essay'/);
  assert.equal(parseStudyArgs(['--help']), null);
});

test('--test picks the form of the 4-choice test: cloze by default, listed on request', () => {
  assert.match(parseStudyArgs([])?.settings.mc ?? '', /wordnet-task\/test-mc-cloze\.jsonl$/);
  assert.match(parseStudyArgs(['--test', 'listed'])?.settings.mc ?? '', /wordnet-task\/test-mc\.jsonl$/);
  for (const file of [parseStudyArgs([])?.settings.mc, parseStudyArgs(['--test', 'listed'])?.settings.mc]) assert.ok(existsSync(file ?? ''), `${file} exists`);
});

test('--dry-run prints every planned command and the unsupported variants, and runs nothing', () => {
  const out = '/tmp/blora-study-dry-run-never-created';
  const text = execFileSync(process.execPath, [join(root, 'scripts', 'study', 'run.mjs'), '--dry-run', '--seeds', '1,2', '--steps', '5', '--out', out],
    { cwd: root, encoding: 'utf8' });
  const commands = text.split('\n').filter((l) => l.startsWith('node '));
  // One base evaluation, then four commands per run: 9 variants x 2 seeds.
  assert.equal(commands.length, 1 + 4 * VARIANTS.length * 2);
  assert.match(text, /^# study in .*: 18 runs \(9 variants x 2 seeds\)/);
  assert.ok(commands.every((c) => c.startsWith('node packages/blora/bin/blora.mjs ')));
  assert.equal(commands.filter((c) => / finetune .*--steps 5 /.test(c)).length, 18);
  assert.equal(commands.filter((c) => / finetune .*--tile 4x8 /.test(c)).length, 2);
  assert.equal(commands.filter((c) => / merge .*--requantize int4 /.test(c)).length, 2 * 5);
  for (const u of UNSUPPORTED) assert.ok(text.includes(`# ${u.name} (`), u.name);
  assert.throws(() => execFileSync('ls', [out], { stdio: 'ignore' }));
});

test('a rank some variant cannot take is a clear error (exit 2) unless --only leaves that variant out', () => {
  const run = (/** @type {string[]} */ args) => spawnSync(process.execPath, [join(root, 'scripts', 'study', 'run.mjs'), '--dry-run', '--rank', '4', ...args],
    { cwd: root, encoding: 'utf8' });
  const all = run([]);
  assert.equal(all.status, 2);
  assert.match(all.stderr, /^study: qalora-g32: rank 4 must be a multiple of λin = 32 .*pick the variants that can with --only\n$/);
  const some = run(['--only', 'qlora,qblora-l2']);
  assert.equal(some.status, 0, some.stderr);
  assert.match(some.stdout, / finetune .*--method qblora .*--rank 4 /);
});

test('QA-LoRA trains B·A at factor rank r with QLoRA scaling; other variants pass --rank r', () => {
  const qalora = VARIANTS.find((v) => v.name === 'qalora-g32');
  assert.deepEqual(rankFlagsOf(qalora, 64), ['--rank', '2', '--alpha', '0.5']);
  assert.throws(() => rankFlagsOf(qalora, 48), /rank 48 must be a multiple of λin = 32/);
  assert.deepEqual(rankFlagsOf(VARIANTS.find((v) => v.name === 'qlora'), 64), ['--rank', '64']);
  assert.ok(qalora.flags.includes('--form') && qalora.flags.includes('factors'));
});
