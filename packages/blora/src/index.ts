/**
 * @blora/blora: LoRA, Q-BLoRA and QA-BLoRA adapters over frozen dense or 4-bit linear layers.
 *
 * - Adapters: `LoraAdapter` (PEFT's LoRA), `QBLoraAdapter` (average-pool the input over λin
 *   features, repeat each output λout times, rank r·λin at LoRA's parameter count) and
 *   `QABLoraAdapter` (factors aligned with INT4 quantization blocks, one matrix M by default).
 * - Frozen bases: `DenseBase` and `QuantizedBase` (NF4/FP4/INT4/INT8 through the quantized
 *   matmul ops, whose input gradients this package registers).
 * - `attachAdapters` by module-name patterns, `summarizeParameters`, merges (exact into dense
 *   weights or INT4 offsets; dense; re-quantize), and adapter files in PEFT's layout.
 *
 * @packageDocumentation
 */
import './rules/quantized.js';

export {
  Adapter, ADAPTER_METHODS, METHOD_LABELS,
  type AdapterForm, type AdapterGeometry, type AdapterMethod, type AdapterOptions,
} from './adapters/adapter.js';
export { LoraAdapter } from './adapters/lora.js';
export { QBLoraAdapter, QBLORA_DEFAULT_LAMBDA, type QBLoraFactors } from './adapters/qblora.js';
export { QABLoraAdapter, QABLORA_DEFAULTS, assertBlocksInsideTiles, type QABLoraFactors } from './adapters/qablora.js';
export { AdaptedLinear } from './adapters/adapted-linear.js';
export { fusedQuantizedAdapter, setLowRankDecoding, type FusedAdapterParts } from './adapters/fused-quantized.js';
export {
  resolveAdapterConfig, layerHyperparameters, patternKeyFor, fullMatch, DEFAULT_R, DEFAULT_ALPHA, DEFAULT_EXCLUDED_HEAD, MAX_ADAPTER_RANK,
  type AdapterConfig, type ResolvedAdapterConfig,
} from './adapters/config.js';
export { FrozenLinear } from './layers/frozen-linear.js';
export { DenseBase } from './layers/dense-base.js';
export { QuantizedBase } from './layers/quantized-base.js';
export { useDecodeTiles } from './decode-tiles.js';
export { registerQuantizedGradients, QUANTIZED_GRADIENT_OPS } from './rules/quantized.js';
export {
  attachAdapters, AttachedAdapters, createAdapter, frozenBaseOf, moduleAt, replaceModuleAt, type AttachOptions,
} from './attach.js';
export { selectTargets, describeTargets, targetEntryFor, layerIndexOf, isLinearLike, type LinearLike } from './targets.js';
export { quantizeModel, type QuantizeModelOptions } from './quantize-model.js';
export {
  mergeAdapters, mergeLayer, mergedWeight, assertExactlyMergeable, sameFormatAs,
  type MergeMode, type MergeOptions, type LayerMergeReport,
} from './merge.js';
export { summarizeParameters, formatParameterSummary, type ParameterSummary, type LayerParameterSummary } from './summary.js';
export {
  saveAdapter, loadAdapter, readAdapterConfig, adapterConfigFromJson, adapterConfigJson, adapterTensors, peftTensorName,
  writeFileAtomic, ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, PEFT_PREFIX, BLORA_CONFIG_VERSION,
  type BloraConfigSection, type SaveAdapterOptions, type LoadAdapterOptions,
} from './peft.js';
export * from './data/index.js';
export * from './train/index.js';
export * from './eval/index.js';
export * from './checkpoint/index.js';
export * from './cli/index.js';
