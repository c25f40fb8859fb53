/**
 * Whether a mirror serves: its cache's and node agent's workload status as the caches hold it,
 * and, while they are not ready, why (a stuck container's reason, in the kubelet's words).
 */
import type { Logger } from 'pino';

import { describeError } from '../api/kube-errors.js';
import type { KubeObject } from '../api/kube-object.js';
import type { ChildIndex } from './caches.js';
import type { KubeClient } from './kube.js';
import { childKey } from './plan.js';
import { podProblem, podProblemWaiting, type Waiting, type WorkloadStatus, workloadWaiting } from './readiness.js';

export interface ServingOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly children: ChildIndex;
  /** The generation the controller last applied of a child (`Kind/name`) of a mirror. */
  appliedGeneration(mirror: string, key: string): number | undefined;
}

/** The cache's and the node agent's status as the caches hold it (at least at the generation last applied). */
export function workloads(
  known: ServingOptions,
  name: string,
  desired: readonly KubeObject[],
): [WorkloadStatus | undefined, WorkloadStatus | undefined] {
  const live = new Map(known.children.of(name).map((c) => [childKey(c), c]));
  const find = (kind: 'StatefulSet' | 'DaemonSet'): WorkloadStatus | undefined => {
    const d = desired.find((o) => o.kind === kind);
    if (!d) return undefined;
    const w = live.get(childKey(d))?.workload;
    const applied = known.appliedGeneration(name, childKey(d));
    if (w === undefined && applied !== undefined) {
      // Just created: the cache has not seen it yet, and no controller has observed it.
      const desired = kind === 'StatefulSet' ? ((d.spec as { replicas?: number }).replicas ?? 1) : 0;
      return { kind, generation: applied, observedGeneration: 0, desired, ready: 0, updated: 0 };
    }
    return w && applied !== undefined && applied > w.generation ? { ...w, generation: applied } : w;
  };
  return [find('StatefulSet'), find('DaemonSet')];
}

/** Why the mirror does not serve yet: its cache or node agent pods, with a stuck container's reason when there is one. */
export async function waitingFor(
  known: ServingOptions,
  name: string,
  desired: readonly KubeObject[],
  log: Logger,
): Promise<Waiting | undefined> {
  const [cache, agent] = workloads(known, name, desired);
  const sts = desired.find((o) => o.kind === 'StatefulSet');
  const ds = desired.find((o) => o.kind === 'DaemonSet');
  const waiting =
    (sts && workloadWaiting(sts.metadata.name, cache, 'StatefulSet')) ??
    (ds && workloadWaiting(ds.metadata.name, agent, 'DaemonSet'));
  if (!waiting) return undefined;
  // Pods that will not start: say why, in the kubelet's words. Only once the workload's
  // controller has observed it (before that no pod can have a reason), and not for a
  // workload that was just created.
  const w = waiting.reason === 'CacheNotReady' ? cache : agent;
  if (w === undefined || w.observedGeneration < w.generation) return waiting;
  const selector = (waiting.reason === 'CacheNotReady' ? sts : ds)?.spec as
    { selector?: { matchLabels?: Record<string, string> } } | undefined;
  const labels = selector?.selector?.matchLabels;
  if (!labels) return waiting;
  try {
    const pods = await known.client.listPods(
      (waiting.reason === 'CacheNotReady' ? sts : ds)?.metadata.namespace ?? known.namespace,
      Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    );
    const problem = podProblem(pods);
    return problem ? podProblemWaiting(problem) : waiting;
  } catch (err) {
    log.debug({ err: describeError(err) }, 'could not list pods');
    return waiting;
  }
}
