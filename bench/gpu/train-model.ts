// The model of the training-step benchmark, built with random weights directly on the device:
// no checkpoint file is read, and no weight is quantized on the host. An NF4 base gets random
// codes and random absmax values drawn on the device (the step costs the same for any codes);
// a dense base gets normal weights as transformers initialises them. Adapters are then attached
// to every block projection, as PEFT's `target_modules` of the peer lists them.
import { Generator, add, cast, empty, mul, rand, randint, randn, tensor, tidy, type DType, type Tensor } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import { FourBitLinear, blockCount, codeTable, packedLength } from '@blora/quant';
import {
  LlamaForCausalLM, expectedTensors, linearFromWeight, llamaConfig, type LinearFactory, type LlamaConfig,
} from '@blora/models';
import {
  QuantizedBase, attachAdapters, summarizeParameters, type AdapterConfig, type AttachedAdapters,
} from '@blora/blora';
import type { TrainBenchConfig, TrainShape, TrainVariant } from './train-config.js';

/** Standard deviation of fresh weights (transformers' `initializer_range` for Llama). */
export const INIT_STD = 0.02;

/**
 * Root mean square of the 16 NF4 code values: a code drawn uniformly and scaled by absmax has
 * an RMS of about 0.517 · absmax.
 */
const NF4_CODE_RMS = Math.sqrt(Array.from(codeTable('nf4')).reduce((s, v) => s + v * v, 0) / 16);

/** A Llama config with `shape`'s sizes (and transformers' Llama defaults otherwise, as the peer's LlamaConfig). */
export function benchLlamaConfig(shape: TrainShape, layers = shape.layers): LlamaConfig {
  return llamaConfig({
    vocabSize: shape.vocab, hiddenSize: shape.hidden, intermediateSize: shape.intermediate, numHiddenLayers: layers,
    numAttentionHeads: shape.heads, numKeyValueHeads: shape.kvHeads, rmsNormEps: 1e-5, maxPositionEmbeddings: Math.max(2048, shape.seq),
  });
}

/** Where and how random tensors are drawn. */
export interface RandomWeightOptions {
  device: string;
  generator: Generator;
  /** dtype the weight is said to come from (recorded in the NF4 weight, as a checkpoint would). */
  sourceDType?: DType;
}

/**
 * A random NF4 weight [out, in] made on the device: uniform random packed codes and absmax
 * values uniform in ±20 % around the value that gives the weights the RMS of a fresh dense
 * weight (`INIT_STD`). Absmax is stored as float32 (no double quantization).
 */
export function randomNf4Weight(outFeatures: number, inFeatures: number, blocksize: number, options: RandomWeightOptions): FourBitLinear {
  const n = outFeatures * inFeatures;
  const { device, generator } = options;
  const center = INIT_STD / NF4_CODE_RMS;
  return noGrad(() => {
    const packed = randint(0, 256, [packedLength(n)], { dtype: 'uint8', device, generator });
    const u = rand([blockCount(n, blocksize)], { device, generator });
    const scaled = mul(u, 0.4 * center);
    u.dispose();
    const absmax = add(scaled, 0.8 * center);
    scaled.dispose();
    return new FourBitLinear({
      format: 'nf4', outFeatures, inFeatures, blocksize, packed, absmax, doubleQuant: null,
      table: tensor(codeTable('nf4'), { dtype: 'float32', device }),
      sourceDType: options.sourceDType ?? 'bfloat16',
    });
  });
}

/**
 * Normal values with mean 0 and standard deviation `std` in `dtype`, drawn in float32 on the
 * device; the float32 intermediates are freed at once, so building a large model never holds
 * more than one weight's draw beside the weights.
 */
export function normalWeight(shape: readonly number[], std: number, dtype: DType, options: RandomWeightOptions): Tensor {
  return noGrad(() => tidy(() => {
    const scaled = mul(randn(shape, { dtype: 'float32', device: options.device, generator: options.generator }), std);
    return scaled.dtype === dtype ? scaled : cast(scaled, dtype);
  }));
}

/** The base layers a variant uses: NF4 for QLoRA and Q-BLoRA, dense for LoRA. */
export function baseFormatOf(variant: TrainVariant): 'nf4' | 'dense' {
  return variant === 'lora-dense' ? 'dense' : 'nf4';
}

/** The adapter config of a variant: LoRA, or Q-BLoRA with λin = λout = λ (LoRA's parameter count at the same r). */
export function adapterConfigOf(variant: TrainVariant, config: Pick<TrainBenchConfig, 'rank' | 'alpha' | 'lambda'>): AdapterConfig {
  const common = { r: config.rank, alpha: config.alpha, dropout: 0 };
  return variant === 'qblora'
    ? { ...common, method: 'qblora', lambdaIn: config.lambda, lambdaOut: config.lambda }
    : { ...common, method: 'lora' };
}

/** A model ready to train, and what it is made of. */
export interface TrainModel {
  readonly model: LlamaForCausalLM;
  readonly attached: AttachedAdapters;
  readonly layers: number;
  /** Parameter elements that train (the adapters). */
  readonly trainableParams: number;
  /** Every parameter element, a quantized weight counted as out · in. */
  readonly totalParams: number;
  /** E.g. 'nf4 blocksize 64, random codes and absmax (float32)'. */
  readonly base: string;
  /** E.g. 'LoRA rank 64 (r 64, α 16, s 0.25)'. */
  readonly adapter: string;
  /** Frees every tensor of the model, quantized weights included. */
  dispose(): void;
}

/**
 * Builds the variant's model on `config.device` with `layers` decoder layers: embeddings and
 * lm_head normal (std 0.02) in the compute dtype, norms at 1, block projections NF4 (random
 * codes and absmax) or dense normal weights, then adapters on every block projection, every
 * other parameter frozen, training mode on.
 */
export function buildTrainModel(variant: TrainVariant, config: TrainBenchConfig, layers = config.shape.layers): TrainModel {
  const device = config.device;
  const dtype = config.dtype;
  const generator = new Generator(config.seed);
  const llama = benchLlamaConfig(config.shape, layers);
  const format = baseFormatOf(variant);
  const shapes = new Map(expectedTensors(llama));
  const factory: LinearFactory = (name, weight, context) => {
    if (format === 'dense') return linearFromWeight(weight, context.dtype);
    weight.dispose();
    const [outFeatures, inFeatures] = shapes.get(`${name}.weight`) as [number, number];
    return new QuantizedBase(randomNf4Weight(outFeatures, inFeatures, config.blocksize, { device, generator, sourceDType: dtype }));
  };
  const model = new LlamaForCausalLM(llama, (name, shape) => {
    if (name.endsWith('norm.weight')) return null;
    // An NF4 projection is made by the factory from its shape alone; an empty placeholder stands in for its weight.
    if (format === 'nf4' && isBlockProjection(name)) return empty([0], { dtype, device });
    return normalWeight(shape, INIT_STD, dtype, { device, generator });
  }, { dtype, device, linearFactory: factory });
  let attached: AttachedAdapters;
  try {
    attached = attachAdapters(model, adapterConfigOf(variant, config), {
      dtype: config.adapterDType, generator: new Generator(config.seed + 1), dropoutGenerator: new Generator(config.seed + 2),
    });
  } catch (e) {
    disposeModel(model);
    throw e;
  }
  model.train(true);
  model.gradientCheckpointing = config.checkpointing;
  const summary = summarizeParameters(model);
  const first = [...attached.layers.values()][0]!;
  return {
    model, attached, layers,
    trainableParams: summary.trainable,
    totalParams: summary.total,
    base: format === 'dense'
      ? `dense ${dtype}, normal(0, ${INIT_STD}) weights`
      : `nf4 blocksize ${config.blocksize}, random codes and float32 absmax drawn on the device (no double quantization)`,
    adapter: first.adapter.describe(),
    dispose: () => disposeModel(model),
  };
}

/** True for the weight of one of the seven projections of a decoder block. */
function isBlockProjection(name: string): boolean {
  return /\.(self_attn|mlp)\.[a-z_]+_proj\.weight$/.test(name);
}

/** Disposes a model's parameters and buffers and the quantized weights of its NF4 layers. */
export function disposeModel(model: LlamaForCausalLM): void {
  for (const [, m] of model.namedModules()) {
    if (m instanceof QuantizedBase && !m.quantized.codes.isDisposed) m.quantized.dispose();
  }
  model.dispose();
}

/** Token ids [batch, seq], uniform over the vocabulary, made on the device (the step costs the same for any ids). */
export function randomTokenIds(shape: TrainShape, device: string, seed: number): Tensor {
  return randint(0, shape.vocab, [shape.batch, shape.seq], { dtype: 'int32', device, seed });
}
