// Whether operations are recorded for differentiation. One global switch, scoped with
// noGrad / enableGrad so it is restored even when the function throws.

let enabled = true;

/** True when ops on tensors that require grad are recorded on the tape. */
export function isGradEnabled(): boolean {
  return enabled;
}

/** Turns recording on or off globally; returns the previous setting. Prefer `noGrad` / `enableGrad`. */
export function setGradEnabled(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

function withGradMode<T>(on: boolean, fn: () => T): T {
  const prev = setGradEnabled(on);
  try {
    const result = fn();
    if (result instanceof Promise) throw new Error('grad mode scopes must be synchronous (the function returned a Promise)');
    return result;
  } finally {
    enabled = prev;
  }
}

/**
 * Runs `fn` without recording: its results do not require grad and no graph is kept.
 * Use it for evaluation, parameter updates and anything else that must not be differentiated.
 */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with recording on, even inside a `noGrad` scope. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
