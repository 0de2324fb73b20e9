// Multiple-choice accuracy scored as lm-evaluation-harness scores such tasks: for each
// question the log-likelihood of every choice as a continuation of the prompt is computed; the
// most likely choice is the prediction (accuracy), and the most likely per character of the
// choice is the length-normalised prediction (acc_norm).
import { readFileSync } from 'node:fs';
import { DataFormatError, forEachJsonLine } from '../data/alpaca.js';
import { formatAlpacaPrompt } from '../data/template.js';
import type { TextTokenizer } from '../data/tokenize.js';
import type { CausalLM } from '../train/model.js';
import { scoreContinuations, type ScoringOptions } from './loglik.js';

/** A question with its choices and the index of the right one. */
export interface MultipleChoiceQuestion {
  /** Optional identifier, reported back per question. */
  id?: string;
  /** The task, put in the Alpaca prompt's instruction. */
  instruction: string;
  /** Context for the instruction ('' when none). */
  input: string;
  /** The candidate answers (at least two). */
  choices: string[];
  /** Index of the correct choice. */
  answer: number;
}

/** A JSON value for an error message: numbers as read (1e400 is Infinity), containers abbreviated (they may nest arbitrarily deep). */
function show(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value !== null && typeof value === 'object') return Array.isArray(value) ? '[...]' : '{...}';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Parses multiple-choice JSONL: `instruction`, optional `input` and `id`, `choices` (strings), `answer` (index). */
export function parseMultipleChoiceJsonl(text: string, file = '<text>'): MultipleChoiceQuestion[] {
  const out: MultipleChoiceQuestion[] = [];
  forEachJsonLine(text, file, (obj, line) => {
    const fail = (problem: string): never => {
      throw new DataFormatError(file, line, problem);
    };
    if (typeof obj.instruction !== 'string') fail('missing string field "instruction"');
    const input = obj.input ?? '';
    if (typeof input !== 'string') fail('field "input" must be a string');
    const choices = obj.choices;
    if (!Array.isArray(choices) || choices.length < 2 || !choices.every((c) => typeof c === 'string' && c !== '')) {
      fail('field "choices" must be an array of at least two non-empty strings');
    }
    const answer = obj.answer;
    if (typeof answer !== 'number' || !Number.isInteger(answer) || answer < 0 || answer >= (choices as string[]).length) {
      fail(`field "answer" must be an index into "choices" (0..${(choices as string[]).length - 1}), got ${show(answer)}`);
    }
    out.push({
      ...(typeof obj.id === 'string' ? { id: obj.id } : {}),
      instruction: obj.instruction as string,
      input: input as string,
      choices: choices as string[],
      answer: answer as number,
    });
  });
  if (out.length === 0) throw new DataFormatError(file, 1, 'the file holds no questions');
  return out;
}

/** Reads a multiple-choice JSONL file (errors name the file and line). */
export function readMultipleChoiceJsonl(path: string): MultipleChoiceQuestion[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read questions file ${path}: ${(error as Error).message}`);
  }
  return parseMultipleChoiceJsonl(text, path);
}

/** The outcome for one question. */
export interface QuestionResult {
  /** The question's id, when it has one. */
  id?: string;
  /** Index of the correct choice. */
  answer: number;
  /** Index with the highest log-likelihood. */
  predicted: number;
  /** Index with the highest log-likelihood per character of the choice. */
  predictedNorm: number;
  /** Log-likelihood of each choice. */
  logLikelihoods: number[];
}

/** Accuracy over a set of questions. */
export interface MultipleChoiceResult {
  /** Fraction answered right by raw log-likelihood (lm-eval's `acc`). */
  accuracy: number;
  /** Fraction answered right by log-likelihood per character (lm-eval's `acc_norm`). */
  accuracyNorm: number;
  /** Number of questions. */
  count: number;
  /** Per-question details. */
  questions: QuestionResult[];
}

/** The index of the largest value (the first one on ties). */
function argmaxOf(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Scores every question. The context is bos + the Alpaca prompt of (instruction, input);
 * each choice is a continuation tokenized on its own, exactly as the trainer tokenizes a
 * response (without the eos). The prompt already ends with a space, so no delimiter is added.
 */
export function evaluateMultipleChoice(
  model: CausalLM,
  tokenizer: TextTokenizer,
  questions: readonly MultipleChoiceQuestion[],
  options: ScoringOptions = {},
): MultipleChoiceResult {
  const requests = questions.flatMap((q) => {
    const context = tokenizer.encode(formatAlpacaPrompt(q));
    if (tokenizer.bosId !== null) context.unshift(tokenizer.bosId);
    return q.choices.map((c) => ({ context, continuation: tokenizer.encode(c) }));
  });
  const scores = scoreContinuations(model, requests, { padId: tokenizer.padId ?? 0, ...options });
  let at = 0;
  let right = 0;
  let rightNorm = 0;
  const results = questions.map((q) => {
    const ll = scores.slice(at, at + q.choices.length).map((s) => s.logLikelihood);
    at += q.choices.length;
    const predicted = argmaxOf(ll);
    const predictedNorm = argmaxOf(ll.map((v, i) => v / q.choices[i]!.length));
    if (predicted === q.answer) right++;
    if (predictedNorm === q.answer) rightNorm++;
    return { ...(q.id !== undefined ? { id: q.id } : {}), answer: q.answer, predicted, predictedNorm, logLikelihoods: ll };
  });
  const n = questions.length;
  return { accuracy: n ? right / n : NaN, accuracyNorm: n ? rightNorm / n : NaN, count: n, questions: results };
}
