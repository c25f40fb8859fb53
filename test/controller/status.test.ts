import { describe, expect, it } from 'vitest';

import type { MirrorStatus } from '../../src/api/schema.js';
import {
  desiredConditions,
  eventFor,
  mergeConditions,
  nextStatus,
  type ReconcileOutcome,
  statusChanged,
} from '../../src/controller/status.js';

const applied: ReconcileOutcome = { type: 'Applied', applied: 6, unchanged: 0, pruned: 0, namespace: 'kube-extra' };
const noop: ReconcileOutcome = { type: 'Applied', applied: 0, unchanged: 6, pruned: 0, namespace: 'kube-extra' };
const stalled: ReconcileOutcome = {
  type: 'Stalled',
  reason: 'CredentialsSecretNotFound',
  message: 'Secret kube-extra/quay-creds (spec.credentialsSecret) does not exist.',
};
const retrying: ReconcileOutcome = {
  type: 'Retrying',
  reason: 'ApplyFailed',
  message: 'Applying StatefulSet x failed: 500.',
};
const waiting: ReconcileOutcome = {
  ...applied,
  waiting: {
    reason: 'CacheNotReady',
    message: 'Waiting for cache pods (StatefulSet registry-mirror-quay): 0/1 ready.',
  },
};
const crashing: ReconcileOutcome = {
  ...noop,
  waiting: {
    reason: 'CrashLoopBackOff',
    message: 'Pod registry-mirror-quay-0: container registry is in CrashLoopBackOff.',
  },
};
const t0 = new Date('2025-01-01T00:00:00.123Z');
const t1 = new Date('2025-01-01T00:05:00Z');

function byType(status: MirrorStatus) {
  return Object.fromEntries((status.conditions ?? []).map((c) => [c.type, c]));
}

describe('desiredConditions', () => {
  it('marks an applied mirror whose pods are ready Ready and neither Reconciling nor Stalled', () => {
    const c = Object.fromEntries(desiredConditions(applied, 3).map((x) => [x.type, x]));
    expect(c.Ready).toMatchObject({ status: 'True', reason: 'Serving', observedGeneration: 3 });
    expect(c.Reconciling).toMatchObject({ status: 'False', observedGeneration: 3 });
    expect(c.Stalled).toMatchObject({ status: 'False', observedGeneration: 3 });
    expect(c.Ready.message).toBe('All 6 objects are applied in namespace kube-extra.');
  });

  it('keeps an applied mirror whose pods are not ready Ready=False and Reconciling, saying what it waits for', () => {
    const c = Object.fromEntries(desiredConditions(waiting, 3).map((x) => [x.type, x]));
    expect(c.Ready).toMatchObject({ status: 'False', reason: 'CacheNotReady', message: waiting.waiting!.message });
    expect(c.Reconciling).toMatchObject({ status: 'True', reason: 'Progressing' });
    expect(c.Reconciling.message).toContain('0/1 ready');
    expect(c.Stalled).toMatchObject({ status: 'False' });
  });

  it('marks a mirror that needs a person Stalled, with the reason on Ready too', () => {
    const c = Object.fromEntries(desiredConditions(stalled, 2).map((x) => [x.type, x]));
    expect(c.Stalled).toMatchObject({ status: 'True', reason: 'CredentialsSecretNotFound', message: stalled.message });
    expect(c.Ready).toMatchObject({ status: 'False', reason: 'CredentialsSecretNotFound' });
    expect(c.Reconciling).toMatchObject({ status: 'False' });
  });

  it('marks a transient failure Reconciling, not Stalled', () => {
    const c = Object.fromEntries(desiredConditions(retrying, 1).map((x) => [x.type, x]));
    expect(c.Reconciling).toMatchObject({ status: 'True', reason: 'RetryingAfterError' });
    expect(c.Stalled).toMatchObject({ status: 'False' });
    expect(c.Ready).toMatchObject({ status: 'False', reason: 'ApplyFailed' });
  });

  it('uses PascalCase reasons only', () => {
    for (const o of [applied, stalled, retrying, waiting, crashing]) {
      for (const c of desiredConditions(o, 1)) expect(c.reason).toMatch(/^[A-Z][A-Za-z]*$/);
    }
  });
});

describe('mergeConditions', () => {
  it('keeps lastTransitionTime when a status does not change and stamps it when it does', () => {
    const first = mergeConditions(undefined, desiredConditions(applied, 1), t0);
    expect(first.every((c) => c.lastTransitionTime === '2025-01-01T00:00:00Z')).toBe(true);
    const again = mergeConditions(first, desiredConditions(noop, 2), t1);
    expect(again.every((c) => c.lastTransitionTime === '2025-01-01T00:00:00Z')).toBe(true);
    const broken = Object.fromEntries(
      mergeConditions(again, desiredConditions(stalled, 3), t1).map((c) => [c.type, c]),
    );
    expect(broken.Ready.lastTransitionTime).toBe('2025-01-01T00:05:00Z');
    expect(broken.Stalled.lastTransitionTime).toBe('2025-01-01T00:05:00Z');
    expect(broken.Reconciling.lastTransitionTime).toBe('2025-01-01T00:00:00Z'); // False before and after
  });

  it('keeps conditions of other types untouched', () => {
    const foreign = {
      type: 'Audited',
      status: 'True' as const,
      reason: 'Ok',
      message: '',
      lastTransitionTime: '2020-01-01T00:00:00Z',
    };
    const out = mergeConditions([foreign], desiredConditions(applied, 1), t0);
    expect(out).toContainEqual(foreign);
  });
});

describe('statusChanged', () => {
  it('is false for a steady state, so a no-op resync writes no status', () => {
    const s1 = nextStatus(undefined, applied, 4, t0);
    const s2 = nextStatus(s1, noop, 4, t1);
    expect(statusChanged(s1, s2)).toBe(false);
  });

  it('is true when the generation moves or a condition changes', () => {
    const s1 = nextStatus(undefined, applied, 4, t0);
    expect(statusChanged(s1, nextStatus(s1, noop, 5, t1))).toBe(true);
    expect(statusChanged(s1, nextStatus(s1, stalled, 4, t1))).toBe(true);
    expect(statusChanged(undefined, s1)).toBe(true);
  });

  it('ignores condition order', () => {
    const s1 = nextStatus(undefined, applied, 4, t0);
    const reversed = { ...s1, conditions: [...s1.conditions!].reverse() };
    expect(statusChanged(s1, reversed)).toBe(false);
  });
});

describe('nextStatus', () => {
  it('sets observedGeneration on the status and on every condition', () => {
    const s = nextStatus(undefined, applied, 7, t0);
    expect(s.observedGeneration).toBe(7);
    expect(Object.values(byType(s)).map((c) => c.observedGeneration)).toEqual([7, 7, 7]);
  });
});

describe('eventFor', () => {
  it('records nothing in a steady state', () => {
    const s = nextStatus(undefined, applied, 1, t0);
    expect(eventFor(s, noop)).toBeUndefined();
  });

  it('records a Normal event when objects were written', () => {
    expect(eventFor(undefined, applied)).toEqual({
      type: 'Normal',
      reason: 'Reconciled',
      message: 'Objects in namespace kube-extra: applied 6, unchanged 0.',
    });
  });

  it('records a Warning once per distinct failure', () => {
    expect(eventFor(undefined, stalled)).toMatchObject({ type: 'Warning', reason: 'CredentialsSecretNotFound' });
    const s = nextStatus(undefined, stalled, 1, t0);
    expect(eventFor(s, stalled)).toBeUndefined();
  });

  it('records recovery even when nothing had to be written', () => {
    const s = nextStatus(undefined, stalled, 1, t0);
    expect(eventFor(s, noop)).toMatchObject({ type: 'Normal', reason: 'Serving' });
  });

  it('records when the pods become ready, and a Warning once for a crash-looping container', () => {
    const s = nextStatus(undefined, waiting, 1, t0);
    expect(eventFor(s, noop)).toMatchObject({ type: 'Normal', reason: 'Serving' });
    expect(eventFor(s, crashing)).toMatchObject({ type: 'Warning', reason: 'CrashLoopBackOff' });
    expect(eventFor(nextStatus(s, crashing, 1, t1), crashing)).toBeUndefined();
    expect(eventFor(s, { ...noop, waiting: waiting.waiting })).toBeUndefined();
  });
});
