/**
 * Evaluation: continuation log-likelihoods, multiple-choice accuracy (raw and
 * length-normalised, as lm-evaluation-harness reports them), held-out loss and perplexity.
 *
 * @module
 */
export { scoreContinuations, inEvalMode, type ScoringRequest, type ContinuationScore, type ScoringOptions } from './loglik.js';
export {
  evaluateMultipleChoice, parseMultipleChoiceJsonl, readMultipleChoiceJsonl,
  type MultipleChoiceQuestion, type MultipleChoiceResult, type QuestionResult,
} from './multiple-choice.js';
export { heldOutLoss, textPerplexity, type LossResult, type TextPerplexityOptions } from './perplexity.js';
