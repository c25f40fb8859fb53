import { describe, expect, it } from 'vitest';

import {
  podProblem,
  podProblemWaiting,
  sameWorkloadStatus,
  workloadStatus,
  workloadWaiting,
} from '../../src/controller/readiness.js';

const sts = (status: Record<string, unknown>, generation = 2, replicas = 2) =>
  workloadStatus({ kind: 'StatefulSet', metadata: { generation }, spec: { replicas }, status })!;
const ds = (status: Record<string, unknown>, generation = 1) =>
  workloadStatus({ kind: 'DaemonSet', metadata: { generation }, status })!;

describe('workload readiness (kstatus rules)', () => {
  it('is ready only when the current generation is observed and every desired pod is updated and ready', () => {
    const ready = sts({ observedGeneration: 2, readyReplicas: 2, currentRevision: 'r2', updateRevision: 'r2' });
    expect(workloadWaiting('c', ready, 'StatefulSet')).toBeUndefined();
    expect(workloadWaiting('c', sts({ observedGeneration: 1, readyReplicas: 2 }), 'StatefulSet')).toMatchObject({
      reason: 'CacheNotReady',
      message: expect.stringContaining('observe generation 2') as unknown,
    });
    expect(
      workloadWaiting(
        'c',
        sts({ observedGeneration: 2, readyReplicas: 1, currentRevision: 'r', updateRevision: 'r' }),
        'StatefulSet',
      )?.message,
    ).toBe('Waiting for cache pods (StatefulSet c): 1/2 ready.');
    expect(
      workloadWaiting(
        'c',
        sts({ observedGeneration: 2, readyReplicas: 2, updatedReplicas: 1, currentRevision: 'a', updateRevision: 'b' }),
        'StatefulSet',
      )?.message,
    ).toContain('1/2 pods updated');
    expect(workloadWaiting('c', undefined, 'StatefulSet')?.message).toContain('to be created');
  });

  it('counts a DaemonSet against the pods it should run', () => {
    const full = ds({ observedGeneration: 1, desiredNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 3 });
    expect(workloadWaiting('a', full, 'DaemonSet')).toBeUndefined();
    const partly = ds({ observedGeneration: 1, desiredNumberScheduled: 3, numberReady: 2, updatedNumberScheduled: 3 });
    expect(workloadWaiting('a', partly, 'DaemonSet')).toEqual({
      reason: 'NodeAgentNotReady',
      message: 'Waiting for node agent pods (DaemonSet a): 2/3 ready.',
    });
  });

  it('compares only what decides readiness (a status flap that changes none of it is the same)', () => {
    const raw = (collisionCount: number) => ({
      kind: 'StatefulSet',
      metadata: { generation: 1 },
      spec: { replicas: 1 },
      status: { observedGeneration: 1, readyReplicas: 1, collisionCount },
    });
    const a = workloadStatus(raw(0));
    const b = workloadStatus(raw(3));
    expect(sameWorkloadStatus(a, b)).toBe(true);
    expect(sameWorkloadStatus(a, { ...a!, ready: 0 })).toBe(false);
    expect(workloadStatus({ kind: 'ConfigMap' })).toBeUndefined();
  });

  it("names a stuck container with the kubelet's reason", () => {
    const pods: Parameters<typeof podProblem>[0] = [
      { metadata: { name: 'p-0' }, status: { containerStatuses: [{ name: 'registry', state: {} }] } },
      {
        metadata: { name: 'p-1' },
        status: {
          containerStatuses: [
            {
              name: 'registry',
              state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 5m0s' } },
              lastState: { terminated: { reason: 'Error', exitCode: 1 } },
            },
          ],
        },
      },
    ];
    const p = podProblem(pods)!;
    expect(p).toEqual({
      pod: 'p-1',
      container: 'registry',
      reason: 'CrashLoopBackOff',
      message: 'last exit Error (code 1)',
    });
    expect(podProblemWaiting(p).reason).toBe('CrashLoopBackOff');
    expect(
      podProblem([{ status: { containerStatuses: [{ state: { waiting: { reason: 'ContainerCreating' } } }] } }]),
    ).toBeUndefined();
  });
});
