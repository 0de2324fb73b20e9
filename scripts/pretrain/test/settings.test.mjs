import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NUMERIC, fittedSteps, mergeResumed, parseSettings } from '../lib/settings.mjs';

test('defaults fill every setting; kv heads default to the heads', () => {
  const { values, given } = parseSettings([]);
  for (const [name, [fallback]] of Object.entries(NUMERIC)) {
    if (name !== 'kv-heads') assert.equal(values[name], fallback, name);
  }
  assert.equal(values['kv-heads'], values.heads);
  assert.equal(values.untied, false);
  assert.equal(values.out, 'runs/pretrain');
  assert.equal(values.device, 'cpu');
  assert.equal(given.size, 0);
  assert.equal(parseSettings(['--help']), null);
});

test('flags are parsed and checked, with the flag named in the error', () => {
  const { values, given } = parseSettings(['--hidden', '64', '--heads', '4', '--kv-heads', '2', '--lr', '1e-3', '--untied']);
  assert.equal(values.hidden, 64);
  assert.equal(values['kv-heads'], 2);
  assert.equal(values.lr, 1e-3);
  assert.equal(values.untied, true);
  assert.deepEqual([...given].sort(), ['heads', 'hidden', 'kv-heads', 'lr', 'untied']);
  assert.throws(() => parseSettings(['--steps', '1.5']), /--steps must be an integer >= 1/);
  assert.throws(() => parseSettings(['--lr', 'abc']), /--lr must be a number/);
  assert.throws(() => parseSettings(['--hidden', '100', '--heads', '3']), /multiple of --heads/);
  assert.throws(() => parseSettings(['--heads', '4', '--kv-heads', '3']), /--kv-heads 3 must divide/);
  assert.throws(() => parseSettings(['--hidden', '12', '--heads', '4']), /must be even/);
  assert.throws(() => parseSettings(['--context', '1024']), /exceeds --max-positions/);
  assert.throws(() => parseSettings(['--beta2', '1']), /below 1/);
  assert.throws(() => parseSettings(['--bogus', '1']), /bogus/);
  assert.throws(() => parseSettings(['--device', 'tpu']), /--device must be cpu or cuda, got 'tpu'/);
  assert.equal(parseSettings(['--device', 'cuda']).values.device, 'cuda');
});

test('a resumed run keeps its saved settings, may extend its steps, and refuses a changed model', () => {
  const saved = parseSettings(['--hidden', '64', '--steps', '10', '--pause-at', '5']).values;
  const same = mergeResumed(saved, parseSettings(['--resume']));
  assert.equal(same.hidden, 64);
  assert.equal(same.steps, 10);
  assert.equal(same['pause-at'], 0, 'a pause applies to the run that asked for it only');
  assert.equal(same.resume, true);
  assert.equal(mergeResumed(saved, parseSettings(['--resume', '--steps', '20'])).steps, 20);
  assert.equal(mergeResumed(saved, parseSettings(['--resume', '--hidden', '64'])).hidden, 64);
  assert.throws(() => mergeResumed(saved, parseSettings(['--resume', '--hidden', '128'])), /--hidden 128 differs from the run being resumed \(64\)/);
  assert.throws(() => mergeResumed(saved, parseSettings(['--resume', '--untied'])), /--untied true differs/);
});

test('--fit-minutes: the steps that fit the time left, never fewer than the warmup plus one', () => {
  assert.equal(parseSettings(['--fit-minutes', '4.5']).values['fit-minutes'], 4.5);
  assert.equal(fittedSteps({ minutes: 1, elapsedSeconds: 10, secondsPerStep: 0.5, step: 40, warmup: 20 }), 140);
  assert.equal(fittedSteps({ minutes: 0.1, elapsedSeconds: 10, secondsPerStep: 0.5, step: 40, warmup: 300 }), 301);
  assert.equal(fittedSteps({ minutes: 0.1, elapsedSeconds: 100, secondsPerStep: 0.5, step: 40, warmup: 10 }), 40);
  assert.throws(() => fittedSteps({ minutes: 1, elapsedSeconds: 0, secondsPerStep: 0, step: 0, warmup: 1 }), /must be > 0/);
});
