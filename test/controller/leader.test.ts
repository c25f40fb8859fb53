import { describe, expect, it } from 'vitest';

import { attemptTimeoutMs, leaderTimingsProblem, mayAcquire, observe, recordKey } from '../../src/controller/leader.js';

describe('leader election decisions', () => {
  const me = 'pod-a';
  it('takes a free Lease or keeps its own', () => {
    const o = observe(undefined, undefined, 0);
    expect(mayAcquire(undefined, me, o, 0, 15)).toBe(true);
    expect(mayAcquire({ holderIdentity: '' }, me, o, 0, 15)).toBe(true);
    expect(mayAcquire({ holderIdentity: me, leaseDurationSeconds: 15 }, me, o, 0, 15)).toBe(true);
  });

  it('waits for another holder until the Lease has not changed for its duration, on the local clock', () => {
    const rec = { holderIdentity: 'pod-b', leaseDurationSeconds: 15, renewTime: '2000-01-01T00:00:00.000000Z' };
    let o = observe(undefined, rec, 1_000);
    expect(mayAcquire(rec, me, o, 10_000, 15)).toBe(false);
    // The holder's clock is far in the past; it does not matter, only when we saw the record change.
    o = observe(o, rec, 15_999);
    expect(o.at).toBe(1_000);
    expect(mayAcquire(rec, me, o, 15_999, 15)).toBe(false);
    expect(mayAcquire(rec, me, o, 16_000, 15)).toBe(true);
  });

  it('restarts the wait when the holder renews', () => {
    const rec1 = { holderIdentity: 'pod-b', leaseDurationSeconds: 15, renewTime: '2025-01-01T00:00:00.000000Z' };
    const rec2 = { ...rec1, renewTime: '2025-01-01T00:00:02.000000Z' };
    let o = observe(undefined, rec1, 0);
    o = observe(o, rec2, 14_000);
    expect(mayAcquire(rec2, me, o, 20_000, 15)).toBe(false);
    expect(recordKey(rec2)).not.toBe(recordKey(rec1));
  });
});

describe('leader election deadlines', () => {
  it("accepts client-go's defaults and refuses timings that could let two leaders overlap", () => {
    expect(leaderTimingsProblem(15, 10, 2)).toBeUndefined();
    expect(leaderTimingsProblem(4, 3, 1)).toBeUndefined();
    expect(leaderTimingsProblem(10, 10, 2)).toBe(
      'the lease duration (10s) must be longer than the renew deadline (10s)',
    );
    expect(leaderTimingsProblem(15, 2, 2)).toBe(
      'the renew deadline (2s) must be longer than 1.2 × the retry period (2s)',
    );
    expect(leaderTimingsProblem(15, 10, 0)).toMatch(/retry period must be more than 0s/);
  });

  it('cuts each request of a renew to what is left of the renew deadline, never below 0', () => {
    // renewed at 0 with a 10 s deadline: a request at 2 s may take 8 s, one at 9.5 s only 0.5 s
    expect(attemptTimeoutMs(2_000, 30_000, 10_000)).toBe(8_000);
    expect(attemptTimeoutMs(9_500, 30_000, 10_000)).toBe(500);
    expect(attemptTimeoutMs(10_001, 30_000, 10_000)).toBe(0);
    // a shorter request timeout wins; a standby's attempts have no renew deadline
    expect(attemptTimeoutMs(2_000, 5_000, 10_000)).toBe(5_000);
    expect(attemptTimeoutMs(2_000, 30_000)).toBe(30_000);
  });
});
