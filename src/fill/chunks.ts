/**
 * The buffers the fill feeds its clients from: taken for a read from the spool, given back once
 * the socket has sent them, and reused. Left to the garbage collector instead, the buffers of many
 * clients pile up between collections.
 *
 * Two sizes: `large` while the large buffers out stay within `budget`, else `small`. A buffer is
 * made only when none of its size is free, so there are never more large ones than fit in
 * `budget`, nor more small ones than were ever out at once (one per client at most): the buffers
 * take at most `budget` plus `small` per client, free or out, and no garbage.
 */
export class ChunkPool {
  private largeOut = 0;
  private readonly free: { small: Buffer[]; large: Buffer[] } = { small: [], large: [] };
  /** Buffers taken, and buffers made (the others were reused). */
  readonly counts = { taken: 0, made: 0 };

  constructor(
    readonly small: number,
    readonly large: number,
    readonly budget: number,
  ) {}

  /** A buffer for up to `wanted` bytes (`buffer.length` may be less, or more). */
  take(wanted: number): Chunk {
    const kind = wanted > this.small && (this.largeOut + 1) * this.large <= this.budget ? 'large' : 'small';
    const reused = this.free[kind].pop();
    const buffer = reused ?? Buffer.allocUnsafeSlow(this[kind]);
    this.counts.taken++;
    if (!reused) this.counts.made++;
    if (kind === 'large') this.largeOut++;
    let returned = false;
    return {
      buffer,
      release: (reuse = true) => {
        if (returned) return;
        returned = true;
        if (kind === 'large') this.largeOut--;
        if (reuse) this.free[kind].push(buffer);
      },
    };
  }
}

/** A buffer out of a ChunkPool. */
export interface Chunk {
  readonly buffer: Buffer;
  /**
   * Gives it back (only the first call counts). `reuse: false` when something may still read it
   * (a write not sent yet, when its client is gone): then it is only no longer counted, and left
   * to the garbage collector.
   */
  release(reuse?: boolean): void;
}
