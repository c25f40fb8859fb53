/**
 * Whether a mirror serves (pure): read from its workloads' status as their controllers report it,
 * after kstatus's rules for StatefulSets and DaemonSets. `Ready=True` means the cache's ready
 * replicas and the node agent's ready pods reach what is desired, for the current generation.
 */

/** The part of a workload's status the controller keeps in its cache (and compares, to skip flaps). */
export interface WorkloadStatus {
  readonly kind: 'StatefulSet' | 'DaemonSet';
  readonly generation: number;
  readonly observedGeneration: number;
  /** StatefulSet: spec.replicas; DaemonSet: status.desiredNumberScheduled. */
  readonly desired: number;
  readonly ready: number;
  readonly updated: number;
}

interface RawWorkload {
  readonly kind?: string;
  readonly metadata?: { readonly generation?: number };
  readonly spec?: { readonly replicas?: number };
  readonly status?: {
    readonly observedGeneration?: number;
    readonly readyReplicas?: number;
    readonly updatedReplicas?: number;
    readonly currentRevision?: string;
    readonly updateRevision?: string;
    readonly desiredNumberScheduled?: number;
    readonly numberReady?: number;
    readonly updatedNumberScheduled?: number;
  };
}

/** What of a StatefulSet's or DaemonSet's status decides readiness; `undefined` for other kinds. */
export function workloadStatus(obj: RawWorkload): WorkloadStatus | undefined {
  const s = obj.status ?? {};
  const generation = obj.metadata?.generation ?? 0;
  const observedGeneration = s.observedGeneration ?? 0;
  if (obj.kind === 'StatefulSet') {
    const desired = obj.spec?.replicas ?? 1;
    // A StatefulSet whose revisions agree has every pod on the current template (kstatus).
    const updated =
      s.updateRevision !== undefined && s.currentRevision === s.updateRevision ? desired : (s.updatedReplicas ?? 0);
    return { kind: 'StatefulSet', generation, observedGeneration, desired, ready: s.readyReplicas ?? 0, updated };
  }
  if (obj.kind === 'DaemonSet') {
    return {
      kind: 'DaemonSet',
      generation,
      observedGeneration,
      desired: s.desiredNumberScheduled ?? 0,
      ready: s.numberReady ?? 0,
      updated: s.updatedNumberScheduled ?? 0,
    };
  }
  return undefined;
}

/**
 * Whether two observations report the same readiness. `generation` is left out: it moves only
 * with spec writes, and the reconcile that made one already accounts for it.
 */
export function sameWorkloadStatus(a: WorkloadStatus | undefined, b: WorkloadStatus | undefined): boolean {
  const key = (w: WorkloadStatus | undefined) =>
    w === undefined ? 'none' : `${w.kind}|${w.observedGeneration}|${w.desired}|${w.ready}|${w.updated}`;
  return key(a) === key(b);
}

/** Why a mirror does not serve yet, for the Ready and Reconciling conditions. */
export interface Waiting {
  /** PascalCase: CacheNotReady, NodeAgentNotReady, or a container's waiting reason such as CrashLoopBackOff. */
  readonly reason: string;
  readonly message: string;
}

const WHAT: Record<WorkloadStatus['kind'], string> = { StatefulSet: 'cache', DaemonSet: 'node agent' };

/** Why one workload is not ready yet, or `undefined` when it is. */
export function workloadWaiting(
  name: string,
  w: WorkloadStatus | undefined,
  kind: WorkloadStatus['kind'],
): Waiting | undefined {
  const reason = kind === 'StatefulSet' ? 'CacheNotReady' : 'NodeAgentNotReady';
  const what = WHAT[kind];
  if (w === undefined) return { reason, message: `Waiting for ${kind} ${name} to be created.` };
  if (w.observedGeneration < w.generation) {
    return { reason, message: `Waiting for ${kind} ${name} (the ${what}) to observe generation ${w.generation}.` };
  }
  if (w.updated < w.desired) {
    return { reason, message: `Rolling out the ${what} (${kind} ${name}): ${w.updated}/${w.desired} pods updated.` };
  }
  if (w.ready < w.desired) {
    return { reason, message: `Waiting for ${what} pods (${kind} ${name}): ${w.ready}/${w.desired} ready.` };
  }
  return undefined;
}

/** How the mirror's workloads stand, in one line, for Ready=True. */
export function servingMessage(cache: WorkloadStatus | undefined, agent: WorkloadStatus | undefined): string {
  const n = (w: WorkloadStatus | undefined) => `${w?.ready ?? 0}/${w?.desired ?? 0}`;
  return `The cache serves (${n(cache)} pods ready) and the node agent runs on every node (${n(agent)} ready).`;
}

/** A pod's container that does not start, as the kubelet reports it. */
export interface PodProblem {
  readonly pod: string;
  readonly container: string;
  readonly reason: string;
  readonly message?: string;
}

interface RawContainerStatus {
  readonly name?: string;
  readonly state?: { readonly waiting?: { readonly reason?: string; readonly message?: string } };
  readonly lastState?: { readonly terminated?: { readonly reason?: string; readonly exitCode?: number } };
}

interface RawPod {
  readonly metadata?: { readonly name?: string };
  readonly status?: {
    readonly containerStatuses?: readonly RawContainerStatus[];
    readonly initContainerStatuses?: readonly RawContainerStatus[];
  };
}

/** Reasons that need a person (the kubelet keeps retrying, but nothing changes by itself). */
const STUCK = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** The first container of `pods` that is stuck, with the kubelet's reason. */
export function podProblem(pods: readonly RawPod[]): PodProblem | undefined {
  for (const p of pods) {
    for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
      const w = c.state?.waiting;
      if (w?.reason && STUCK.has(w.reason)) {
        const last = c.lastState?.terminated;
        const detail = last ? `last exit ${last.reason ?? ''} (code ${last.exitCode ?? '?'})`.trim() : w.message;
        return {
          pod: p.metadata?.name ?? '',
          container: c.name ?? '',
          reason: w.reason,
          ...(detail ? { message: detail } : {}),
        };
      }
    }
  }
  return undefined;
}

export function podProblemWaiting(p: PodProblem): Waiting {
  return {
    reason: p.reason,
    message: `Pod ${p.pod}: container ${p.container} is in ${p.reason}${p.message ? `: ${p.message}` : ''}. Check its logs and events (kubectl describe pod ${p.pod}).`,
  };
}
