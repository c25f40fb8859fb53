import { describe, expect, it } from 'vitest';

import { mayAcquire, observe, recordKey } from '../../src/controller/leader.js';

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
