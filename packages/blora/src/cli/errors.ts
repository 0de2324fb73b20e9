// Errors the command line turns into exit codes: a bad command line (2), a feature that is
// not available yet (2), and everything else (1).

/** A mistake on the command line (unknown flag, bad value, missing file). Exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A feature the command line cannot offer yet. Exit code 2. */
export class NotAvailableError extends Error {
  override readonly name = 'NotAvailableError';
}

/** The exit code for an error thrown by a command. */
export function exitCodeOf(error: unknown): number {
  return error instanceof UsageError || error instanceof NotAvailableError ? 2 : 1;
}
