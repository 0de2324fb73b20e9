// The `blora` command line: dispatches to the subcommands and turns errors into messages and
// exit codes (0 success, 1 failure, 2 bad command line or a feature not available yet).
import { evalCommand, EVAL_SPEC } from './eval.js';
import { exitCodeOf } from './errors.js';
import { finetuneCommand, FINETUNE_SPEC } from './finetune.js';
import { generateCommand, GENERATE_SPEC } from './generate.js';
import { processIO, type CliIO } from './io.js';
import { mergeCommand, MERGE_SPEC } from './merge.js';
import { quantizeCommand, QUANTIZE_SPEC } from './quantize.js';
import type { CommandSpec } from './args.js';

/** A subcommand: parses its own arguments and resolves to the exit code. */
export type Command = (argv: readonly string[], io: CliIO) => Promise<number>;

/** The subcommands, with their specs (for the overview). */
export const COMMANDS: Readonly<Record<string, { run: Command; spec: CommandSpec }>> = {
  finetune: { run: finetuneCommand, spec: FINETUNE_SPEC },
  eval: { run: evalCommand, spec: EVAL_SPEC },
  generate: { run: generateCommand, spec: GENERATE_SPEC },
  merge: { run: mergeCommand, spec: MERGE_SPEC },
  quantize: { run: quantizeCommand, spec: QUANTIZE_SPEC },
};

/** The top-level help. */
export function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = ['Usage: blora <command> [options]', '', 'Fine-tune 4-bit quantized LLMs with LoRA, Q-BLoRA and QA-BLoRA.', '', 'Commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}  ${c.spec.summary}`);
  lines.push('', "Run 'blora <command> --help' for the options of a command.");
  return `${lines.join('\n')}\n`;
}

/**
 * Runs the command line with `argv` (the arguments after `blora`) and returns the exit code.
 * Output goes to `io` (the process's streams by default); nothing is thrown.
 */
export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(overview());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`blora: unknown command '${name}'\n\n${overview()}`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    const e = error as Error;
    io.stderr.write(`blora ${name}: error: ${e?.message ?? String(error)}\n`);
    if (process.env.BLORA_DEBUG && e?.stack) io.stderr.write(`${e.stack}\n`);
    return exitCodeOf(error);
  }
}
