/**
 * The `blora` command line as a library: `main(argv)` runs it and returns the exit code.
 *
 * @module
 */
export { main, overview, COMMANDS, type Command } from './main.js';
export { UsageError, NotAvailableError, exitCodeOf } from './errors.js';
export { formatHelp, parseFlags, FlagReader, closestFlag, type CommandSpec, type FlagSpec, type FlagValues } from './args.js';
export { processIO, type CliIO } from './io.js';
export { resolveFinetuneSettings, FINETUNE_SPEC, type FinetuneSettings } from './finetune.js';
export { EVAL_SPEC } from './eval.js';
export { GENERATE_SPEC } from './generate.js';
export { MERGE_SPEC } from './merge.js';
export { QUANTIZE_SPEC } from './quantize.js';
export {
  CLI_METHODS, adapterMethodOf, defaultQuantOf, quantizeOptionsFor, parseBlockShape, loadBaseModel, baseLinearFactory,
  type CliMethod, type BaseQuant, type BaseQuantSettings, type BlockShape, type LoadedModel,
} from './model-io.js';
