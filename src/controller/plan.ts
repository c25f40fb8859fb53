/**
 * What a reconcile must write (pure): which desired children to apply, which to skip because
 * their content hash is unchanged, and which live children to prune.
 */
import { compareForApply, type KubeObject } from '../api/kube-object.js';
import { CONTENT_HASH_ANNOTATION, KIND, MIRROR_API_VERSION } from '../api/names.js';
import type { WorkloadStatus } from './readiness.js';

/** Kinds whose `metadata.generation` moves with spec changes only (status updates do not bump it). */
export const GENERATION_KINDS: ReadonlySet<string> = new Set(['StatefulSet', 'DaemonSet', 'Deployment']);

/** What the controller knows of a live child: its metadata, as the informer cache holds it. */
export interface LiveMeta {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly resourceVersion?: string;
    readonly generation?: number;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly ownerReferences?: ReadonlyArray<{
      readonly apiVersion?: string;
      readonly kind?: string;
      readonly name?: string;
      readonly uid?: string;
      readonly controller?: boolean;
    }>;
    readonly deletionTimestamp?: unknown;
  };
  /** For StatefulSets and DaemonSets: what of their status decides readiness. */
  readonly workload?: WorkloadStatus;
}

/** What the controller itself last wrote to a child (kept in memory only). */
export interface AppliedRecord {
  readonly hash: string;
  /** The apply is in flight: its echo may arrive before the response does. */
  readonly pending?: boolean;
  readonly resourceVersion?: string;
  readonly generation?: number;
}

/**
 * A child's identity: `Kind/namespace/name`. With the namespace: a mirror's children live in two
 * namespaces, and a node agent an earlier version left in the output namespace is not the one in
 * the node agent namespace (the prune removes it).
 */
export function childKey(o: { kind?: string; metadata: { name?: string; namespace?: string } }): string {
  return `${o.kind ?? ''}/${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
}

export function sortForApply<T extends { kind?: string; metadata: { name?: string; namespace?: string } }>(
  objs: readonly T[],
): T[] {
  return [...objs].sort(compareForApply);
}

/** Whether `live` is owned by the RegistryMirror named `mirror` (so the controller may delete it). */
export function ownedBy(live: LiveMeta, mirror: string): boolean {
  return (live.metadata.ownerReferences ?? []).some(
    (r) => r.kind === KIND && r.apiVersion === MIRROR_API_VERSION && r.name === mirror,
  );
}

/**
 * Whether `desired` must be applied. Skip it only when the live child carries the same content
 * hash and, if the controller applied it earlier in this process, nobody changed it since
 * (so a `kubectl edit` is reverted on the next resync).
 */
export function needsApply(
  desired: KubeObject,
  live: LiveMeta | undefined,
  applied: AppliedRecord | undefined,
): boolean {
  if (live === undefined || live.metadata.deletionTimestamp) return true;
  const want = desired.metadata.annotations?.[CONTENT_HASH_ANNOTATION];
  if (want === undefined || live.metadata.annotations?.[CONTENT_HASH_ANNOTATION] !== want) return true;
  if (applied === undefined || applied.hash !== want) return false;
  if (GENERATION_KINDS.has(desired.kind)) {
    return applied.generation !== undefined && live.metadata.generation !== applied.generation;
  }
  return applied.resourceVersion !== undefined && live.metadata.resourceVersion !== applied.resourceVersion;
}

export interface Plan {
  /** Children to server-side apply, in apply order. */
  readonly apply: KubeObject[];
  /** Children whose content is unchanged. */
  readonly unchanged: KubeObject[];
  /** Live children no longer desired, in delete order (workloads first). */
  readonly prune: LiveMeta[];
}

export function planChildren(args: {
  readonly mirror: string;
  readonly desired: readonly KubeObject[];
  /** Every live child labelled with this mirror (from the informer caches). */
  readonly live: readonly LiveMeta[];
  readonly applied: (key: string) => AppliedRecord | undefined;
}): Plan {
  const liveByKey = new Map(args.live.map((l) => [childKey(l), l]));
  const apply: KubeObject[] = [];
  const unchanged: KubeObject[] = [];
  for (const d of sortForApply(args.desired)) {
    const key = childKey(d);
    (needsApply(d, liveByKey.get(key), args.applied(key)) ? apply : unchanged).push(d);
  }
  const desiredKeys = new Set(args.desired.map(childKey));
  const prune = sortForApply(
    args.live.filter((l) => !desiredKeys.has(childKey(l)) && ownedBy(l, args.mirror) && !l.metadata.deletionTimestamp),
  ).reverse();
  return { apply, unchanged, prune };
}
