/**
 * @blora/models: Llama-family architectures (LLaMA, LLaMA-2, Mistral, Gemma) built from
 * Hugging Face checkpoints, their tokenizers, and text generation.
 *
 * @packageDocumentation
 */
export * from './tokenizer/index.js';
export * from './llama/index.js';
