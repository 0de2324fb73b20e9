// The Alpaca prompt template as the QLoRA training scripts write it. Note the single space
// after "### Response:" (no newline): the response follows on the same line.
import type { AlpacaExample } from './alpaca.js';

/** The prompt for an example with a non-empty `input`. */
export const ALPACA_PROMPT_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response: ';

/** The prompt for an example whose `input` is empty. */
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response: ';

/**
 * The prompt (source text) of an example: `ALPACA_PROMPT_WITH_INPUT` when `input` is not
 * empty, else `ALPACA_PROMPT_NO_INPUT`, with the fields substituted verbatim. The response
 * (`output`) is not part of the prompt.
 */
export function formatAlpacaPrompt(example: Pick<AlpacaExample, 'instruction' | 'input'>): string {
  const template = example.input !== '' ? ALPACA_PROMPT_WITH_INPUT : ALPACA_PROMPT_NO_INPUT;
  // One pass over the template (as Python's str.format): braces or `$` inside the data stay as they are.
  return template.replace(/\{(instruction|input)\}/g, (_match, field: 'instruction' | 'input') => example[field]);
}
