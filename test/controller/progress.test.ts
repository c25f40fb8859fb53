import { describe, expect, it } from 'vitest';

import { ProgressMonitor } from '../../src/controller/progress.js';

describe('ProgressMonitor', () => {
  const clock = () => {
    const c = { t: 1_000_000, now: () => c.t };
    return c;
  };

  it('is not stalled while idle, however long, nor when work arrives after a quiet spell', () => {
    const c = clock();
    const p = new ProgressMonitor(10_000, c.now);
    c.t += 3_600_000;
    expect(p.stalled(0)).toBeUndefined();
    const t = p.started('quay'); // a worker took it at once: progress
    c.t += 9_000;
    expect(p.stalled(3)).toBeUndefined();
    p.finished(t);
    expect(p.stalled(0)).toBeUndefined();
  });

  it('names the reconcile that has run longer than the stall time', () => {
    const c = clock();
    const p = new ProgressMonitor(10_000, c.now);
    p.started('quay');
    c.t += 2_000;
    const b = p.started('docker');
    c.t += 8_000;
    expect(p.stalled(0)).toBeUndefined(); // exactly the stall time: not yet
    c.t += 500;
    expect(p.stalled(2)).toBe(
      'stalled: the reconcile of mirror quay has run for 10.5s, longer than the stall time (10s); ' +
        '1 other reconcile(s) in flight; 2 mirror(s) waiting',
    );
    p.finished(b); // another worker finishing does not unstick the one that hangs
    expect(p.stalled(0)).toMatch(/^stalled: the reconcile of mirror quay has run for 10.5s/);
  });

  it('counts a failed reconcile as progress: it ended and the mirror is retried', () => {
    const c = clock();
    const p = new ProgressMonitor(10_000, c.now);
    for (let i = 0; i < 5; i++) {
      const t = p.started('quay');
      c.t += 9_000;
      p.finished(t); // each one timed out on a dead connection
    }
    expect(p.stalled(1)).toBeUndefined();
  });

  it('is stalled when mirrors wait and nothing started or finished for the stall time', () => {
    const c = clock();
    const p = new ProgressMonitor(10_000, c.now);
    p.finished(p.started('a'));
    c.t += 10_001;
    expect(p.stalled(0)).toBeUndefined();
    expect(p.stalled(4)).toBe(
      'stalled: 4 mirror(s) waiting and no reconcile started or finished for 10s (stall time 10s)',
    );
  });
});
