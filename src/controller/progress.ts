/**
 * Whether the workers make progress, for /healthz: a controller whose reconciles hang (a call
 * with no deadline, a loop that never ends) is alive to the kernel but does nothing, and only a
 * restart helps. Stalled means either
 * - a reconcile has run longer than the stall time, or
 * - mirrors wait in the queue and no reconcile started or finished for the stall time.
 * (Workers take a queued mirror at once when one is free, so mirrors wait only while every
 * worker is busy.) A reconcile that fails is progress too: it ends, and the mirror is retried.
 */
import { formatSeconds } from './deadline.js';

export class ProgressMonitor {
  private readonly running = new Map<number, { key: string; since: number }>();
  private nextId = 0;
  private lastProgress: number;

  constructor(
    private readonly stallMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.lastProgress = now();
  }

  /** A worker took `key`; returns a token for `finished`. */
  started(key: string): number {
    const id = this.nextId++;
    const at = this.now();
    this.running.set(id, { key, since: at });
    this.lastProgress = at;
    return id;
  }

  /** The reconcile of `started`'s token ended (however it ended). */
  finished(token: number): void {
    this.running.delete(token);
    this.lastProgress = this.now();
  }

  /** Why the workers are stalled, or `undefined` when they are not. `queued`: mirrors waiting for a worker. */
  stalled(queued: number): string | undefined {
    const now = this.now();
    let oldest: { key: string; since: number } | undefined;
    for (const r of this.running.values()) if (oldest === undefined || r.since < oldest.since) oldest = r;
    const limit = formatSeconds(this.stallMs);
    if (oldest !== undefined && now - oldest.since > this.stallMs) {
      const others = this.running.size - 1;
      return (
        `stalled: the reconcile of mirror ${oldest.key} has run for ${formatSeconds(now - oldest.since)}, ` +
        `longer than the stall time (${limit})` +
        (others > 0 ? `; ${others} other reconcile(s) in flight` : '') +
        (queued > 0 ? `; ${queued} mirror(s) waiting` : '')
      );
    }
    if (queued > 0 && now - this.lastProgress > this.stallMs) {
      return `stalled: ${queued} mirror(s) waiting and no reconcile started or finished for ${formatSeconds(now - this.lastProgress)} (stall time ${limit})`;
    }
    return undefined;
  }
}
