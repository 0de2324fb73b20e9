/**
 * Which WordNet lemmas count as familiar: lower-case words (no proper names) whose every
 * part is common in the training part of the Brown corpus. The corpus glosses and the task
 * questions are limited to synsets with a familiar lemma, so a small model trained on this
 * corpus has seen the words it is asked about.
 *
 * @module
 */

/** A lemma part must occur this often in the Brown training files. */
export const FAMILIAR_MIN_COUNT = 5;

/**
 * @param {string} lemma           as WordNet writes it, spaces for underscores
 * @param {Map<string, number>} counts lower-cased Brown word counts
 * @param {number} [minCount]
 */
export function isFamiliarLemma(lemma, counts, minCount = FAMILIAR_MIN_COUNT) {
  if (!/^[a-z]+(?:[ -][a-z]+){0,2}$/.test(lemma)) return false;
  return lemma.split(/[ -]/).every((part) => (counts.get(part) ?? 0) >= minCount);
}

/**
 * The familiar lemma of a synset that is most common in the corpus (its first part's count
 * for multi-word lemmas; ties go to the earlier lemma), or null.
 * @param {string[]} lemmas
 * @param {Map<string, number>} counts
 * @returns {string | null}
 */
export function bestFamiliarLemma(lemmas, counts) {
  let best = null;
  let bestCount = -1;
  for (const lemma of lemmas) {
    if (!isFamiliarLemma(lemma, counts)) continue;
    const count = Math.min(...lemma.split(/[ -]/).map((part) => counts.get(part) ?? 0));
    if (count > bestCount) {
      best = lemma;
      bestCount = count;
    }
  }
  return best;
}
