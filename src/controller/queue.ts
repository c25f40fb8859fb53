/**
 * A work queue keyed by mirror name, after client-go's workqueue:
 * - a key is queued at most once however many events arrive before a worker takes it (coalescing);
 * - a key is never processed by two workers at once: an add while it is processed is held
 *   and queued again when the worker calls `done`;
 * - `addRateLimited` re-queues a failed key with per-key exponential backoff and jitter,
 *   `forget` resets it after a success.
 */
import { errorStatus } from '../api/kube-errors.js';
import { WatchIdleError } from './informer.js';

export interface WorkQueueOptions {
  /** First retry delay in milliseconds. @default 500 */
  readonly baseDelayMs?: number;
  /** Longest retry delay in milliseconds (the controller's maxRetryDelayMs). */
  readonly maxDelayMs: number;
  /** Random source in [0, 1) for jitter. @default Math.random */
  readonly random?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private stopped = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly random: () => number;

  constructor(opts: WorkQueueOptions) {
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs;
    this.random = opts.random ?? Math.random;
  }

  /** Queue `key` unless it is already waiting. */
  add(key: string): void {
    if (this.stopped || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // queued again by done()
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Queue `key` after `delayMs`; an earlier pending delayed add of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** The backoff `addRateLimited` would use for the next failure of `key`. */
  nextDelay(key: string): number {
    const n = this.failures.get(key) ?? 0;
    const raw = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(n, 30));
    // Full jitter on the upper half: spreads retries of many keys that failed together.
    return Math.round(raw / 2 + (raw / 2) * this.random());
  }

  /** Queue `key` again after a failure, with exponential backoff. Returns the delay used. */
  addRateLimited(key: string): number {
    const delay = this.nextDelay(key);
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    this.addAfter(key, delay);
    return delay;
  }

  /** Reset the backoff of `key` (after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to process; `undefined` once the queue is shut down. Call `done(key)` after. */
  get(): Promise<string | undefined> {
    if (this.stopped) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Mark `key` processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** Keys waiting to be processed (not counting delayed ones). */
  get length(): number {
    return this.queue.length;
  }

  /** Stop handing out keys; pending `get` calls resolve to `undefined`. */
  shutDown(): void {
    this.stopped = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}

export function jitter(ms: number, fraction = 0.1): number {
  return Math.round(ms * (1 + (Math.random() * 2 - 1) * fraction));
}

/**
 * How long a failed informer waits before it starts again. The API server asking to come back
 * soon (429, e.g. "storage is (re)initializing" right after a CRD is created) gets a short
 * jittered exponential backoff from 500 ms; any other failure (API server down, CRD missing,
 * access denied) waits SECONDS_BETWEEN_STREAMS, jittered by 10%. A watch that went idle on a
 * dead connection starts again after about a second, on a new connection.
 */
export function informerRestartDelayMs(err: unknown, failures: number, secondsBetweenStreams: number): number {
  const cap = secondsBetweenStreams * 1000;
  if (err instanceof WatchIdleError) return Math.min(cap, jitter(1000, 0.2));
  if (errorStatus(err) === 429) return Math.min(cap, jitter(500 * 2 ** Math.min(failures, 10), 0.2));
  return jitter(cap);
}
