// The tokenizer and generation files that travel with a checkpoint directory.
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

/** Files next to the weights that a written checkpoint takes over from its source when present. */
export const TOKENIZER_FILES: readonly string[] = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** Copies the `TOKENIZER_FILES` that exist in `from` into `to`. Returns the names copied. */
export function copyTokenizerFiles(from: string, to: string): string[] {
  const copied = TOKENIZER_FILES.filter((file) => existsSync(join(from, file)));
  for (const file of copied) copyFileSync(join(from, file), join(to, file));
  return copied;
}
