// Quantized checkpoints: frozen bases read from them, INT scale widening, output comparison.
export { quantizedBaseFactory, widenIntScales, storedFormats } from './bases.js';
export { sequenceLogits, compareLogits, type OutputDifference } from './output-check.js';
export { TOKENIZER_FILES, copyTokenizerFiles } from './tokenizer-files.js';
