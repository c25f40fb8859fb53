// Polling for tests and benchmarks: one helper for every "wait until this is true".
import { setTimeout as sleep } from 'node:timers/promises';

/** Thrown by a waitFor check to give up at once (the process it waits for has exited). */
export class StopWaiting extends Error {}

/**
 * Poll `check` until it returns a value other than undefined, or throw after `timeoutMs`.
 * Errors from `check` are retried (and reported on timeout), except StopWaiting.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
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
