import { afterEach, describe, expect, it, vi } from 'vitest';

import { CONTROLLER_DEFAULTS } from '../../src/controller/config.js';
import { informerRestartDelayMs, WorkQueue } from '../../src/controller/queue.js';

const MAX_DELAY_MS = CONTROLLER_DEFAULTS.maxRetryDelayMs;

afterEach(() => {
  vi.useRealTimers();
});

describe('WorkQueue', () => {
  it('coalesces repeated adds of a waiting key', async () => {
    const q = new WorkQueue({ maxDelayMs: MAX_DELAY_MS });
    for (let i = 0; i < 100; i++) q.add('quay');
    q.add('docker');
    q.add('quay');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('quay');
    expect(await q.get()).toBe('docker');
  });

  it('never hands out a key that is being processed; an add meanwhile queues it once after done', async () => {
    const q = new WorkQueue({ maxDelayMs: MAX_DELAY_MS });
    q.add('quay');
    const key = await q.get();
    q.add('quay');
    q.add('quay');
    expect(q.length).toBe(0); // held while processing
    q.done(key!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('quay');
    q.done('quay');
    expect(q.length).toBe(0);
  });

  it('wakes a waiting worker on add', async () => {
    const q = new WorkQueue({ maxDelayMs: MAX_DELAY_MS });
    const pending = q.get();
    q.add('ghcr');
    expect(await pending).toBe('ghcr');
  });

  it('resolves waiting workers with undefined on shutdown and ignores later adds', async () => {
    const q = new WorkQueue({ maxDelayMs: MAX_DELAY_MS });
    const pending = q.get();
    q.shutDown();
    expect(await pending).toBeUndefined();
    q.add('x');
    expect(await q.get()).toBeUndefined();
  });

  it('backs off exponentially per key, with jitter, up to a maximum, and forget resets it', () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000, random: () => 1 });
    expect(q.nextDelay('a')).toBe(100);
    q.addRateLimited('a');
    expect(q.nextDelay('a')).toBe(200);
    q.addRateLimited('a');
    q.addRateLimited('a');
    q.addRateLimited('a');
    expect(q.nextDelay('a')).toBe(1000);
    expect(q.nextDelay('b')).toBe(100);
    q.forget('a');
    expect(q.nextDelay('a')).toBe(100);
    const low = new WorkQueue({ baseDelayMs: 100, maxDelayMs: MAX_DELAY_MS, random: () => 0 });
    expect(low.nextDelay('a')).toBe(50);
    q.shutDown();
  });

  it('adds a delayed key when its time comes, keeping the earliest of two delays', async () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ maxDelayMs: MAX_DELAY_MS });
    q.addAfter('a', 1000);
    q.addAfter('a', 5000);
    vi.advanceTimersByTime(999);
    expect(q.length).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    vi.advanceTimersByTime(10_000);
    expect(q.length).toBe(0); // the later delay was dropped
  });
});

describe('informerRestartDelayMs', () => {
  it('waits SECONDS_BETWEEN_STREAMS (±10%) after a failure, and backs off briefly on 429', () => {
    for (const err of [new Error('connect ECONNREFUSED'), { code: 404 }, { code: 403 }, { code: 500 }]) {
      const d = informerRestartDelayMs(err, 0, 30);
      expect(d).toBeGreaterThanOrEqual(27_000);
      expect(d).toBeLessThanOrEqual(33_000);
    }
    const first = informerRestartDelayMs({ code: 429 }, 0, 30);
    expect(first).toBeGreaterThanOrEqual(400);
    expect(first).toBeLessThanOrEqual(600);
    expect(informerRestartDelayMs({ code: 429 }, 20, 30)).toBe(30_000);
  });
});
