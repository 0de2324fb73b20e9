// tokenizer.json from untrusted sources: thousands of damaged copies of the two fixture
// layouts either load into a tokenizer that encodes, decodes and saves consistently, or fail
// with a TokenizerFormatError; a few hostile documents are checked by name.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fuzzJson } from '@blora/tensor/testing';
import { Tokenizer, TokenizerFormatError } from '../src/index.js';

const fixtureDir = new URL('./fixtures/tokenizer/', import.meta.url);
const fixtureText = (name: string): string => readFileSync(new URL(name, fixtureDir), 'utf8');
const workDir = mkdtempSync(join(tmpdir(), 'tokenizer-fuzz-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));
// The pipeline library warns on the console about patterns it does not know (and ignores them).
beforeAll(() => {
  vi.spyOn(console, 'warn').mockImplementation(() => {});
});
afterAll(() => vi.restoreAllMocks());

/** Text exercising words, bytes outside the vocabulary, a newline and a special token. */
const SAMPLE = 'hello the cat é\n<s> lll';

/** Checks that a loaded tokenizer holds together; returns what is wrong, or null. */
function inconsistency(tok: Tokenizer): string | null {
  if (!Number.isSafeInteger(tok.vocabSize) || tok.vocabSize < 0 || tok.vocabSize > 2 ** 31) return `vocabulary size ${tok.vocabSize}`;
  for (const id of [tok.bosId, tok.eosId, tok.padId, tok.unkId]) {
    if (id !== null && (typeof id !== 'number' || tok.idToToken(id) === undefined)) return `special id ${String(id)} has no token`;
  }
  const ids = tok.encode(SAMPLE);
  const unknown = ids.find((id) => typeof id !== 'number' || tok.idToToken(id) === undefined);
  if (unknown !== undefined) return `encode gave id ${String(unknown)}, which has no token`;
  if (ids.length > 0 && typeof tok.decode(ids) !== 'string') return 'decode gave no text';
  const again = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())) as unknown);
  if (JSON.stringify(again.encode(SAMPLE)) !== JSON.stringify(ids)) return 'the saved document encodes differently';
  return null;
}

const isClean = (e: unknown): boolean => e instanceof TokenizerFormatError && e.message.startsWith('tokenizer.json: ');

describe('tokenizer.json fuzzing', () => {
  it.each(['sentencepiece-bpe.json', 'byte-level-bpe.json'])('damaged copies of %s load consistently or fail with a TokenizerFormatError', (name) => {
    const path = join(workDir, 'tokenizer.json');
    const report = fuzzJson(fixtureText(name), { iterations: 1000, seed: name.length }, (bytes) => {
      writeFileSync(path, bytes);
      return inconsistency(Tokenizer.fromFile(path));
    }, isClean);
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBeGreaterThan(50);
    expect(report.rejected).toBeGreaterThan(400);
  });
});

describe('hostile tokenizer.json', () => {
  const base = (): Record<string, unknown> => JSON.parse(fixtureText('sentencepiece-bpe.json')) as Record<string, unknown>;
  const nested = (depth: number): unknown => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown;
  const model = (json: Record<string, unknown>): Record<string, unknown> => json.model as Record<string, unknown>;
  const cases: [string, (json: Record<string, unknown>) => void, string][] = [
    ['deep nesting in an unknown field', (j) => (j.truncation = nested(20_000)), 'the document is nested more than 64 levels deep'],
    ['deep nesting in a merge', (j) => (model(j).merges as unknown[]).push(nested(20_000)), 'the document is nested more than 64 levels deep'],
    ['a huge vocabulary id', (j) => ((model(j).vocab as Record<string, number>).x = 1e12),
      'model.vocab["x"] must be a non-negative integer id (at most 2147483647), got 1000000000000'],
    ['an id past 2^53', (j) => ((model(j).vocab as Record<string, number>).x = 2 ** 60), 'model.vocab["x"] must be a non-negative integer id (at most 2147483647), got 1152921504606847000'],
    ['a huge added-token id', (j) => (j.added_tokens as { id: number }[]).push({ id: 2 ** 40, content: '<big>' } as { id: number }),
      'added_tokens[3] ("<big>") must have a non-negative integer "id" (at most 2147483647), got 1099511627776'],
    ['an unknown normalizer', (j) => (j.normalizer = { type: 'Lowercase2' }), 'the tokenizer pipeline cannot be built from this document (Unknown Normalizer type: Lowercase2)'],
    ['a decoder sequence that is not a list', (j) => (j.decoder = { type: 'Sequence', decoders: 5 }), 'the tokenizer pipeline cannot be built from this document'],
  ];
  it.each(cases)('%s', (_what, change, message) => {
    const json = base();
    change(json);
    expect(() => Tokenizer.fromJSON(json)).toThrow(TokenizerFormatError);
    expect(() => Tokenizer.fromJSON(json)).toThrow(`tokenizer.json: ${message}`);
  });

  it('a hostile tokenizer_config.json is refused with a clear message', () => {
    const dir = mkdtempSync(join(workDir, 'config-'));
    writeFileSync(join(dir, 'tokenizer.json'), fixtureText('sentencepiece-bpe.json'));
    const configPath = join(dir, 'tokenizer_config.json');
    for (const [text, message] of [
      ['null', `${configPath} must hold a JSON object`],
      ['[1]', `${configPath} must hold a JSON object`],
      ['{"bos_token": 5}', 'tokenizer_config bos_token must be a string, an object with a string "content", or null'],
      ['{"eos_token": {"content": 7}}', 'tokenizer_config eos_token must be a string, an object with a string "content", or null'],
      ['{"pad_token": ["<s>"]}', 'tokenizer_config pad_token must be a string, an object with a string "content", or null'],
    ] as const) {
      writeFileSync(configPath, text);
      expect(() => Tokenizer.fromFile(join(dir, 'tokenizer.json'))).toThrow(TokenizerFormatError);
      expect(() => Tokenizer.fromFile(join(dir, 'tokenizer.json'))).toThrow(`tokenizer.json: ${message}`);
    }
  });
});
