// Polling for tests and benchmarks: one helper for every "wait until this is true".
import { setTimeout as sleep } from 'node:timers/promises';

/** Thrown by a waitFor check to give up at once (the process it waits for has exited). */
export class StopWaiting extends Error {}

/**
 * Poll `check` until it returns a value other than undefined or false, or throw after
 * `timeoutMs`, naming `what` it waited for. Errors from `check` are retried (and reported on
 * timeout), except StopWaiting. The one polling helper of the tests and benchmarks.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * `read()` once its `byDigest` counts reach each digest of `digests` as often as it is listed
 * there (a server's log lines can land after the client read the last byte). On timeout, one more
 * `read()`, for the caller's assertion to show what was logged.
 */
export async function waitForDigests<T extends { readonly byDigest: ReadonlyMap<string, number> }>(
  who: string,
  digests: readonly string[],
  read: () => Promise<T> | T,
  timeoutMs = 30_000,
): Promise<T> {
  const want = new Map<string, number>();
  for (const d of digests) want.set(d, (want.get(d) ?? 0) + 1);
  return waitFor(
    `${who} to log the GETs of ${want.size} blob(s)`,
    async () => {
      const got = await read();
      return [...want].every(([d, n]) => (got.byDigest.get(d) ?? 0) >= n) ? got : undefined;
    },
    timeoutMs,
  ).catch(() => read());
}
