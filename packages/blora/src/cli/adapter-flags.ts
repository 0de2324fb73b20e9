// The flags that blora eval, generate and merge share: which base model and adapter to load,
// and how the base is quantized (by default as the adapter was trained).
import type { FlagSpec } from './args.js';

/** --model: the base checkpoint; by default the adapter's own base, else the embedded model. */
export const BASE_MODEL_FLAG: FlagSpec = { name: 'model', type: 'string', value: 'DIR', help: 'Hugging Face checkpoint directory', defaultText: "the adapter's base model, else the embedded tiny model" };

/** --adapter: a PEFT-layout adapter directory. */
export const ADAPTER_FLAG: FlagSpec = { name: 'adapter', type: 'string', value: 'DIR', help: 'adapter directory (PEFT layout, e.g. the --out of blora finetune)' };

/** --quant: the base format; by default what the adapter's run.json records. */
export const BASE_QUANT_FLAG: FlagSpec = { name: 'quant', type: 'string', value: 'Q', help: 'base format the adapter was trained on: none, nf4 or int4', defaultText: "from the adapter's run.json, else none" };

/** --block: the quantization block of --quant. */
export const BLOCK_FLAG: FlagSpec = { name: 'block', type: 'string', value: 'N', help: 'quantization block (see blora finetune --help)' };
