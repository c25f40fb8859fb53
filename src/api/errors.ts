/**
 * Errors a user can act on. Commands throw them; only the CLI entry point (cli/main.ts)
 * catches them, prints the message without a stack trace and picks the exit code.
 */

/** Exit codes, as the README lists them. */
export const EXIT_OK = 0;
/** Invalid specs, a stale dist/, or a cluster that cannot be read. */
export const EXIT_INVALID = 1;
/** Bad flags, arguments or environment. */
export const EXIT_USAGE = 2;
/** A bug (EX_SOFTWARE): printed with its stack trace. */
export const EXIT_INTERNAL = 70;

/** Wrong flags, arguments or environment. Exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** One problem in one mirror spec: where it is, which mirror, which field. */
export interface SpecProblem {
  /** The file (or `cluster:registrymirror/<name>`) the spec came from. */
  readonly source: string;
  /** The mirror's name, when it is known. */
  readonly mirror?: string;
  /** Dotted field path such as `spec.upstreamUrl`, when the problem is in one field. */
  readonly field?: string;
  /** What is wrong and what is allowed. Never contains a secret value. */
  readonly message: string;
}

export function formatProblem(p: SpecProblem): string {
  const where = [p.source, p.mirror !== undefined ? `mirror '${p.mirror}'` : undefined].filter(Boolean).join(': ');
  return `${where}: ${p.message}`;
}

/** Invalid mirror specs. Exit code 1. Holds every problem found, so a user fixes them in one pass. */
export class SpecError extends Error {
  override readonly name = 'SpecError';
  constructor(readonly problems: readonly SpecProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** dist/ differs from what the mirrors synthesize to. Exit code 1. */
export class StaleOutputError extends Error {
  override readonly name = 'StaleOutputError';
}

/** The cluster could not be read: unreachable, CRD missing, or access denied. Exit code 1. */
export class ClusterError extends Error {
  override readonly name: string = 'ClusterError';
}
