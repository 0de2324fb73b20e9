#!/usr/bin/env node
/**
 * Trains the byte-level BPE tokenizer of the embedded model on the pretraining corpus and
 * writes it in Hugging Face format:
 *   packages/blora/assets/tiny-llama/tokenizer.json
 *   packages/blora/assets/tiny-llama/tokenizer_config.json
 * It then reloads the file and checks that the held-out text round-trips exactly.
 *
 * The tokenizer code is loaded from the @blora/models TypeScript sources (no build needed).
 *
 * Usage: node scripts/data/train-tokenizer.mjs [--vocab-size 4096] [--max-length 512]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTokenizerModule } from './lib/tokenizer-module.mjs';

const assets = join(import.meta.dirname, '..', '..', 'packages', 'blora', 'assets');
const { values } = parseArgs({
  options: {
    'vocab-size': { type: 'string', default: '4096' },
    'max-length': { type: 'string', default: '512' },
  },
});
const vocabSize = Number(values['vocab-size']);
const maxLength = Number(values['max-length']);

const { trainByteLevelBpe, Tokenizer } = await loadTokenizerModule();

const trainText = readFileSync(join(assets, 'corpus', 'train.txt'), 'utf8');
const heldoutText = readFileSync(join(assets, 'corpus', 'heldout.txt'), 'utf8');

let started = Date.now();
const json = trainByteLevelBpe([trainText], { vocabSize });
const trainSeconds = (Date.now() - started) / 1000;

const outDir = join(assets, 'tiny-llama');
mkdirSync(outDir, { recursive: true });
const path = join(outDir, 'tokenizer.json');
Tokenizer.fromJSON(json).save(path);
const tokenizer = Tokenizer.fromFile(path);
const config = { ...tokenizer.configJSON(maxLength), add_bos_token: true, add_eos_token: false };
writeFileSync(join(outDir, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);

started = Date.now();
const heldoutIds = tokenizer.encode(heldoutText);
if (tokenizer.decode(heldoutIds) !== heldoutText) throw new Error('held-out text does not round-trip');
const trainIds = tokenizer.encode(trainText);
const encodeSeconds = (Date.now() - started) / 1000;

const perByte = (/** @type {number[]} */ ids, /** @type {string} */ text) => (ids.length / Buffer.byteLength(text)).toFixed(3);
console.log(`trained ${json.model.merges.length} merges (vocabulary ${tokenizer.vocabSize}) in ${trainSeconds.toFixed(1)} s`);
console.log(`special ids: unk ${tokenizer.unkId}, bos ${tokenizer.bosId}, eos ${tokenizer.eosId}, pad ${tokenizer.padId}`);
console.log(`train.txt: ${trainIds.length} tokens (${perByte(trainIds, trainText)} per byte)`);
console.log(`heldout.txt: ${heldoutIds.length} tokens (${perByte(heldoutIds, heldoutText)} per byte), exact round trip`);
console.log(`encoding both took ${encodeSeconds.toFixed(1)} s`);
console.log(`wrote ${path} (${readFileSync(path).length} bytes) and tokenizer_config.json`);
