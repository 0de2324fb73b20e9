// Dataset and multiple-choice JSONL from untrusted sources: damaged copies of a small file
// (one line damaged at the JSON level, or the whole file's bytes flipped or cut) either parse
// to consistent records or fail with a DataFormatError naming the file and the line.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fuzzJson, mutateJson, type JsonMutation } from '@blora/tensor/testing';
import { DataFormatError, readAlpacaJsonl } from '../src/data/index.js';
import { readMultipleChoiceJsonl } from '../src/eval/multiple-choice.js';

const workDir = mkdtempSync(join(tmpdir(), 'blora-data-fuzz-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const ALPACA_LINES = [
  { instruction: 'Give the meaning of this word.', input: 'sweet-scented', output: 'having a natural fragrance' },
  { instruction: 'Name a kind of letter.', output: 'e' },
  { instruction: 'What is this a kind of?', input: 'red gram', output: 'bush' },
  { instruction: 'Which word matches?', input: 'used to form the superlative\nOptions: most, rather', output: 'most', extra: [1, { a: null }] },
];
const MC_LINES = [
  { id: 'q1', instruction: 'Which of these is a way to accept?', input: 'Options: a, b', choices: ['crash land', 'touch', 'appear', 'believe'], answer: 3 },
  { instruction: 'Name a kind of letter.', choices: ['e', 'dog'], answer: 0 },
  { id: 'q3', instruction: 'What is this a kind of?', input: 'loss leader', choices: ['feature', 'tree', 'song'], answer: 1, synsets: ['v0', 'v1'] },
];
const jsonl = (rows: readonly object[]): string => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

/** Damages one line at the JSON level (byte flips and truncations hit the whole file). */
function mutateJsonl(text: string, kind: JsonMutation, random: () => number): Uint8Array {
  if (kind === 'bytes' || kind === 'truncate') return mutateJson(text, kind, random);
  const lines = text.trimEnd().split('\n');
  const at = Math.floor(random() * lines.length);
  lines[at] = new TextDecoder().decode(mutateJson(lines[at]!, kind, random));
  return new TextEncoder().encode(`${lines.join('\n')}\n`);
}

/** Non-blank lines of a file, as the readers count them. */
function recordLines(bytes: Uint8Array): number {
  return new TextDecoder().decode(bytes).replace(/^\uFEFF/, '').split('\n').filter((l) => l.replace(/\r$/, '').trim() !== '').length;
}

const cleanFor = (path: string) => (e: unknown): boolean =>
  e instanceof DataFormatError && e.file === path && Number.isInteger(e.line) && e.line >= 1 && e.message.startsWith(`${path}:${e.line}: `);

describe('dataset JSONL fuzzing', () => {
  it('damaged Alpaca files parse to string records, one per line, or fail naming the file and line', () => {
    const path = join(workDir, 'train.jsonl');
    const report = fuzzJson(jsonl(ALPACA_LINES), { iterations: 3000, seed: 5, mutate: mutateJsonl }, (bytes) => {
      writeFileSync(path, bytes);
      const examples = readAlpacaJsonl(path);
      if (examples.length !== recordLines(bytes)) return `${examples.length} examples from ${recordLines(bytes)} lines`;
      const bad = examples.find((e) => ![e.instruction, e.input, e.output].every((v) => typeof v === 'string'));
      return bad ? `non-string field in ${JSON.stringify(bad).slice(0, 100)}` : null;
    }, cleanFor(path));
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBeGreaterThan(300);
    expect(report.rejected).toBeGreaterThan(1000);
  });

  it('damaged multiple-choice files parse to valid questions or fail naming the file and line', () => {
    const path = join(workDir, 'mc.jsonl');
    const report = fuzzJson(jsonl(MC_LINES), { iterations: 3000, seed: 6, mutate: mutateJsonl }, (bytes) => {
      writeFileSync(path, bytes);
      const questions = readMultipleChoiceJsonl(path);
      if (questions.length !== recordLines(bytes)) return `${questions.length} questions from ${recordLines(bytes)} lines`;
      for (const q of questions) {
        const ok = typeof q.instruction === 'string' && typeof q.input === 'string' && q.choices.length >= 2 &&
          q.choices.every((c) => typeof c === 'string' && c !== '') && Number.isInteger(q.answer) && q.answer >= 0 &&
          q.answer < q.choices.length && (q.id === undefined || typeof q.id === 'string');
        if (!ok) return `invalid question ${JSON.stringify(q).slice(0, 100)}`;
      }
      return null;
    }, cleanFor(path));
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBeGreaterThan(300);
    expect(report.rejected).toBeGreaterThan(1000);
  });
});

describe('hostile JSONL lines', () => {
  const deep = '['.repeat(20_000) + ']'.repeat(20_000);
  const alpaca: [string, string, string][] = [
    ['a line nested 20 000 deep', deep, ':1: expected a JSON object, got an array'],
    ['a deeply nested field', `{"instruction":${deep},"output":"x"}`, ':1: field "instruction" must be a string, got object'],
    ['a number for a string', '{"instruction":1e400,"output":"x"}', ':1: field "instruction" must be a string, got number'],
    ['a missing output', '{"instruction":"x"}', ':1: missing field "output"'],
    ['a bare string', '"just text"', ':1: expected a JSON object, got "just text"'],
    ['invalid UTF-8 bytes', '{"instruction":"\uFFFD","output":', ':1: not valid JSON'],
  ];
  it.each(alpaca)('Alpaca: %s', (_what, line, message) => {
    const path = join(workDir, 'hostile.jsonl');
    writeFileSync(path, `${line}\n`);
    expect(() => readAlpacaJsonl(path)).toThrow(DataFormatError);
    expect(() => readAlpacaJsonl(path)).toThrow(`${path}${message}`);
  });

  const mc: [string, string, string][] = [
    ['a deeply nested answer', `{"instruction":"q","choices":["a","b"],"answer":${deep}}`, ':1: field "answer" must be an index into "choices" (0..1), got [...]'],
    ['an answer of 1e12', '{"instruction":"q","choices":["a","b"],"answer":1e12}', ':1: field "answer" must be an index into "choices" (0..1), got 1000000000000'],
    ['an answer of 1e400', '{"instruction":"q","choices":["a","b"],"answer":1e400}', ':1: field "answer" must be an index into "choices" (0..1), got Infinity'],
    ['a negative answer', '{"instruction":"q","choices":["a","b"],"answer":-1}', ':1: field "answer" must be an index into "choices" (0..1), got -1'],
    ['choices nested deeply', `{"instruction":"q","choices":${deep},"answer":0}`, ':1: field "choices" must be an array of at least two non-empty strings'],
    ['one choice', '{"instruction":"q","choices":["a"],"answer":0}', ':1: field "choices" must be an array of at least two non-empty strings'],
  ];
  it.each(mc)('multiple choice: %s', (_what, line, message) => {
    const path = join(workDir, 'hostile-mc.jsonl');
    writeFileSync(path, `${line}\n`);
    expect(() => readMultipleChoiceJsonl(path)).toThrow(DataFormatError);
    expect(() => readMultipleChoiceJsonl(path)).toThrow(`${path}${message}`);
  });
});
