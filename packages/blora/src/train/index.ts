/**
 * Training: the causal-LM loss, the trainer (AdamW with the released recipe's schedule and
 * clipping, gradient accumulation, a non-finite guard, evaluation, JSONL log, atomic
 * checkpoints, exact resume), progress reporting and the loss-curve SVG.
 *
 * @module
 */
export { causalLmLoss, trainableParameters, type CausalLM } from './model.js';
export {
  DEFAULT_TRAINING_CONFIG, resolveTrainingConfig, warmupSteps, type TrainingConfig, type NonFinitePolicy,
} from './config.js';
export { Trainer, describeEval, type TrainerOptions, type TrainResult, type WeightsIO } from './trainer.js';
export { NonFiniteError, allFinite, firstNonFinite, firstNonFiniteGradient } from './guard.js';
export { JsonlLog, readLog, truncateLog, type LogRecord, type StepRecord, type EvalRecord } from './log.js';
export {
  TRAINER_STATE_FORMAT, checkpointName, listCheckpoints, latestCheckpoint, writeCheckpoint, pruneCheckpoints,
  readTrainerState, readOptimizerState, type TrainerState, type CheckpointContents,
} from './checkpoint.js';
export { ProgressReporter, formatDuration, type ProgressSink } from './progress.js';
export { lineChartSvg, lossCurveSvg, niceTicks, escapeXml, type ChartSeries, type ChartOptions } from './svg.js';
