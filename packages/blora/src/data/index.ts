/**
 * Instruction data: Alpaca JSONL reading, the QLoRA prompt template, tokenization with
 * prompt tokens masked out of the loss, padded batches and a seeded, resumable order.
 *
 * @module
 */
export { readAlpacaJsonl, parseAlpacaJsonl, forEachJsonLine, parseJsonObjectLine, DataFormatError, type AlpacaExample } from './alpaca.js';
export { ALPACA_PROMPT_WITH_INPUT, ALPACA_PROMPT_NO_INPUT, formatAlpacaPrompt } from './template.js';
export {
  IGNORE_INDEX, DEFAULT_LIMITS, encodeExample,
  type TextTokenizer, type SequenceLimits, type EncodedExample,
} from './tokenize.js';
export { collate, type Batch, type CollateOptions } from './batch.js';
export { DataOrder, shuffledIndices, type DataOrderOptions } from './order.js';
export { InstructionDataset, type InstructionDatasetOptions, type BatchPlan } from './dataset.js';
export { splitHeldOut } from './split.js';
