/**
 * @blora/autograd: reverse-mode automatic differentiation over @blora/tensor ops (a tape
 * filled by the op observer, gradient rules registered by op name and written in tensor ops
 * so they run on every device), gradient checking, nn modules, optimizers, learning-rate
 * schedules and activation checkpointing.
 *
 * Importing the package installs the tape recorder and `tensor.backward()`.
 *
 * @packageDocumentation
 */
import { installAutograd } from './engine.js';
import './rules/index.js';
import './rules/nn.js';

installAutograd();

export {
  registerGradient, getGradient, getSaveSpec, listGradients,
  type GradContext, type GradRule, type SaveSpec,
} from './gradients.js';
export { isGradEnabled, setGradEnabled, noGrad, enableGrad } from './grad-mode.js';
export {
  backward, backwardMany, detach, requiresGrad, gradFnName, recordNode, releaseGraph, installAutograd, GraphNode, type SavedTensor,
  type BackwardOptions, type Edge,
} from './engine.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult, type Fn as GradcheckFn } from './gradcheck.js';
export { checkpoint, type CheckpointOptions } from './checkpoint.js';
export { dropout, swiglu, geglu, type DropoutOptions } from './functional.js';
export { assignInPlace } from './inplace.js';
export { sumToShape } from './rules/util.js';
export { Module, type StateDict, type LoadResult } from './nn/module.js';
export { Linear, type LinearOptions } from './nn/linear.js';
export { Embedding, type EmbeddingOptions } from './nn/embedding.js';
export { Dropout } from './nn/dropout.js';
export { uniform, normal, kaimingUniform, fanIn, type InitOptions } from './nn/init.js';
export * from './nn/rmsnorm.js';
export * from './rules/nn.js';
export { Optimizer, type OptimizerStateDict, type ParamGroup, type ParamsInput, type ParamState } from './optim/optimizer.js';
export { AdamW, type AdamWOptions, type AdamWHyper } from './optim/adamw.js';
export { SGD, type SGDOptions, type SGDHyper } from './optim/sgd.js';
export { clipGradNorm, type ClipOptions } from './optim/clip.js';
export { LRScheduler, constantWithWarmup, linearWithWarmup, cosineWithWarmup, type LRLambda, type HasParamGroups } from './optim/schedule.js';
export { recomputeForBackward } from './recompute.js';
