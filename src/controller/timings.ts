/**
 * Leader-election deadline math, pure (no client: the CLI's option checks load it too).
 */

/** client-go's defaults (and the controller's): Lease duration, renew deadline, retry period, in seconds. */
export const DEFAULT_LEASE_DURATION_SECONDS = 15;
export const DEFAULT_RENEW_DEADLINE_SECONDS = 10;
export const DEFAULT_RETRY_PERIOD_SECONDS = 2;

/** client-go's leaderelection.JitterFactor: the renew deadline must leave room for a jittered retry. */
export const JITTER_FACTOR = 1.2;

/**
 * What is wrong with a set of leader-election timings, as client-go checks them, or
 * `undefined`: the Lease must outlast the renew deadline, which must outlast a jittered retry.
 */
export function leaderTimingsProblem(
  leaseDurationSeconds: number,
  renewDeadlineSeconds: number,
  retryPeriodSeconds: number,
): string | undefined {
  if (!(retryPeriodSeconds > 0)) return `the retry period must be more than 0s, got ${retryPeriodSeconds}s`;
  if (!(leaseDurationSeconds > renewDeadlineSeconds))
    return `the lease duration (${leaseDurationSeconds}s) must be longer than the renew deadline (${renewDeadlineSeconds}s)`;
  if (!(renewDeadlineSeconds > JITTER_FACTOR * retryPeriodSeconds))
    return `the renew deadline (${renewDeadlineSeconds}s) must be longer than ${JITTER_FACTOR} × the retry period (${retryPeriodSeconds}s)`;
  return undefined;
}

/**
 * How long a request of a Lease attempt may take: the request timeout, cut to what is left of the
 * renew deadline when there is one (`deadlineAt`, on the clock of `now`). 0 when nothing is left.
 */
export function attemptTimeoutMs(now: number, requestTimeoutMs: number, deadlineAt?: number): number {
  return Math.max(0, Math.min(requestTimeoutMs, deadlineAt === undefined ? Infinity : deadlineAt - now));
}
