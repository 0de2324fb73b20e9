/**
 * Llama-family causal language models (LLaMA, LLaMA-2, Mistral, Gemma) from Hugging Face
 * `config.json` and safetensors checkpoints: the model with Hugging Face's module names,
 * loading (with a factory hook for the block projections, e.g. to quantize them as they are
 * read) and saving, KV-cached generation and log-likelihood scoring.
 *
 * @module
 */
export {
  SUPPORTED_ARCHITECTURES, CONFIG_LIMITS, LlamaConfigError, parseLlamaConfig, readLlamaConfig, llamaConfigToJson, llamaConfig,
  type LlamaArchitecture, type LlamaFamily, type MlpActivation, type RopeScaling, type ConfigJson, type LlamaConfig,
  type LlamaConfigInit,
} from './config.js';
export { ropeInverseFrequencies, ropeTablesFor, type RopeTables } from './rope.js';
export {
  TokenEmbedding, denseLinearFactory, linearFromWeight, toDType,
  type LinearLayer, type LinearModule, type LinearContext, type LinearFactory,
} from './layers.js';
export { KVCache, type KVCacheOptions, type LayerKV } from './kv-cache.js';
export { DecodeStep, type DecodeStepOptions } from './decode-step.js';
export { LlamaAttention, type AttentionProjections, type AttentionCache } from './attention.js';
export { LlamaMLP, type MlpProjections } from './mlp.js';
export { LlamaDecoderLayer } from './block.js';
export {
  LlamaForCausalLM, LlamaModel, LayerList, expectedTensors, toIdTensor, ATTENTION_PROJECTIONS, MLP_PROJECTIONS,
  type TokenIds, type ForwardOptions, type DeviceStep, type ParameterSource, type BuildOptions,
} from './model.js';
export { createLlama, type CreateOptions } from './create.js';
export { CheckpointFiles, CheckpointError, SINGLE_FILE, INDEX_FILE, type StoredTensor } from './checkpoint-files.js';
export { loadLlama, validateCheckpoint, type LoadOptions } from './loader.js';
export { saveLlama, shardFileName, type SaveOptions } from './saver.js';
export {
  parseQuantizationConfig, quantizationConfigJson, quantizationConfigOf, readCheckpointConfig, findQuantizedWeights,
  readQuantizedWeights, holdsQuantizedWeight, INT_QUANT_METHOD,
  type QuantizationConfig, type BnbFourBitConfig, type IntBlockConfig, type QuantizedWeightHolder, type QuantizedLinearFactory,
  type StoredQuantizedWeight,
} from './quantized-checkpoint.js';
export {
  generate, chooseToken, argmaxOf, type SamplingOptions, type GenerateOptions, type GenerateResult,
} from './generate.js';
export {
  scoreContinuation, scoreContinuations, type ScoreRequest, type ContinuationScore, type ScoreOptions,
} from './score.js';
