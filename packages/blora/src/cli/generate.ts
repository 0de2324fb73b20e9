// `blora generate`: continue a prompt (raw, or an instruction in the Alpaca template) with a
// base model, alone or with an adapter.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from '@blora/models';
import { useDecodeTiles } from '../decode-tiles.js';
import { formatAlpacaPrompt } from '../data/template.js';
import { loadAdapter, readAdapterConfig } from '../peft.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_MODEL, existing } from './assets.js';
import { UsageError } from './errors.js';
import type { CliIO } from './io.js';
import { adapterBlockSettings, checkModelDir, loadBaseModel, prepareDevice, quantizeOptionsFor, readRunSettings, type BaseQuant } from './model-io.js';
import { BASE_MODEL_FLAG, ADAPTER_FLAG, BASE_QUANT_FLAG, BLOCK_FLAG } from './adapter-flags.js';

/** The flags of `blora generate`. */
export const GENERATE_SPEC: CommandSpec = {
  name: 'generate',
  usage: 'blora generate (--instruction TEXT [--input TEXT] | --prompt TEXT) [--model DIR] [--adapter DIR] [options]',
  summary: 'Generate text: an answer to an instruction (Alpaca template, as in training) or a continuation of a raw prompt.',
  flags: [
    { name: 'instruction', type: 'string', value: 'TEXT', help: 'instruction, put in the Alpaca prompt template' },
    { name: 'input', type: 'string', value: 'TEXT', help: 'optional context for --instruction' },
    { name: 'prompt', type: 'string', value: 'TEXT', help: 'raw prompt (no template)' },
    BASE_MODEL_FLAG,
    ADAPTER_FLAG,
    BASE_QUANT_FLAG,
    BLOCK_FLAG,
    { name: 'max-new-tokens', type: 'string', value: 'N', help: 'most tokens to generate', defaultText: '64' },
    { name: 'temperature', type: 'string', value: 'T', help: 'sampling temperature (0: greedy)', defaultText: '0' },
    { name: 'top-p', type: 'string', value: 'P', help: 'nucleus sampling threshold', defaultText: '1' },
    { name: 'top-k', type: 'string', value: 'K', help: 'sample among the K most likely tokens (0: all)', defaultText: '0' },
    { name: 'seed', type: 'string', value: 'N', help: 'sampling seed', defaultText: '0' },
    { name: 'device', type: 'string', value: 'D', help: 'cpu or cuda', defaultText: 'cpu' },
    { name: 'no-graph', type: 'boolean', help: 'on cuda, run each token op by op instead of replaying a recorded step' },
  ],
};

/** Runs `blora generate`. Returns the exit code. */
export async function generateCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const values = parseFlags(GENERATE_SPEC, argv);
  if (!values) {
    io.stdout.write(formatHelp(GENERATE_SPEC));
    return 0;
  }
  const r = new FlagReader(values);
  const instruction = r.string('instruction');
  const rawPrompt = r.string('prompt');
  if ((instruction === undefined) === (rawPrompt === undefined)) throw new UsageError('give exactly one of --instruction and --prompt');
  if (r.has('input') && instruction === undefined) throw new UsageError('--input goes with --instruction');
  const adapterDir = r.string('adapter');
  if (adapterDir !== undefined && !existsSync(join(adapterDir, 'adapter_config.json'))) {
    throw new UsageError(`--adapter ${adapterDir}: no adapter_config.json there`);
  }
  const run = adapterDir ? readRunSettings(adapterDir) : null;
  const config = adapterDir ? readAdapterConfig(adapterDir) : null;
  const model = r.string('model') ?? (typeof run?.model === 'string' && existsSync(run.model) ? run.model : null) ?? existing(EMBEDDED_MODEL);
  if (!model) throw new UsageError('no --model given and the embedded model is not installed; pass --model DIR');
  checkModelDir(model);
  const quant = r.choice('quant', ['none', 'nf4', 'int4'] as const, (run?.quant as BaseQuant | undefined) ?? 'none');
  const block = r.has('block') ? r.int('block', 0, 1) : typeof run?.block === 'number' ? run.block : undefined;
  const quantOptions = quantizeOptionsFor({ quant, ...(block !== undefined ? { block } : {}), ...adapterBlockSettings(run, config) });
  const maxNewTokens = r.int('max-new-tokens', 64, 0);
  const temperature = r.number('temperature', 0, 0);
  const topP = r.number('top-p', 1, 0, 1, true);
  const topK = r.int('top-k', 0, 0);
  const seed = r.int('seed', 0, 0);
  const device = r.choice('device', ['cpu', 'cuda'] as const, 'cpu');
  await prepareDevice(device);

  const loaded = loadBaseModel(model, quantOptions, device);
  if (adapterDir) loadAdapter(adapterDir, loaded.model, { trainable: false });
  // On a GPU the one-token steps of NF4 bases read the decode tiles (16-bit activations only).
  if (device === 'cuda') useDecodeTiles(loaded.model);
  const tok = loaded.tokenizer;
  const text = instruction !== undefined ? formatAlpacaPrompt({ instruction, input: r.string('input') ?? '' }) : rawPrompt!;
  const prompt = tok.encode(text);
  if (tok.bosId !== null) prompt.unshift(tok.bosId);
  if (prompt.length === 0) throw new UsageError('the prompt is empty');
  const produced: number[] = [];
  let shown = '';
  const result = generate(loaded.model, prompt, {
    ...(r.flag('no-graph') ? { graph: false } : {}),
    maxNewTokens, doSample: temperature > 0, temperature: temperature > 0 ? temperature : 1, topP, topK, seed,
    eosTokenIds: tok.eosId !== null ? [tok.eosId] : loaded.model.config.eosTokenIds,
    onToken: (id) => {
      // Print as soon as the decoded text is stable (no half of a multi-byte character).
      produced.push(id);
      const now = tok.decode(produced, { skipSpecialTokens: true });
      if (!now.endsWith('\uFFFD') && now.startsWith(shown)) {
        io.stdout.write(now.slice(shown.length));
        shown = now;
      }
    },
  });
  const final = tok.decode(result.tokens, { skipSpecialTokens: true });
  if (final.startsWith(shown)) io.stdout.write(final.slice(shown.length));
  io.stdout.write('\n');
  io.stderr.write(`[${result.tokens.length} tokens, stopped by ${result.finishReason}]\n`);
  return 0;
}
