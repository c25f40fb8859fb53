/**
 * Arbitration between mirrors: the older mirror keeps a node host and a child's name
 * (api/seniority.ts), and no mirror applies over an object another mirror controls.
 */
import { findHostConflicts, type HostConflict } from '../api/hosts.js';
import { type KubeObject, mirrorName } from '../api/kube-object.js';
import { KIND, MIRROR_API_VERSION } from '../api/names.js';
import { holdsClaims, olderFirst, type Seniority } from '../api/seniority.js';
import { findNameCollisions, type NameCollision } from '../api/validate.js';
import type { Cache, ChildIndex } from './caches.js';
import type { RegistryMirrorObject } from './kube.js';
import { childKey, type LiveMeta } from './plan.js';
import type { ReconcileOutcome } from './status.js';

/** A RegistryMirror as "the older mirror wins" (api/seniority.ts) compares it. */
export function seniorityOf(m: RegistryMirrorObject): Seniority {
  const c = m.metadata?.creationTimestamp as Date | string | undefined;
  return {
    name: mirrorName(m),
    ...(c === undefined ? {} : { creationTimestamp: c instanceof Date ? c.toISOString() : String(c) }),
    holdsClaims: holdsClaims(m.status),
  };
}

/** Mirrors oldest first: the order in which they keep node hosts and names (api/seniority.ts). */
export function byAge(a: RegistryMirrorObject, b: RegistryMirrorObject): number {
  return olderFirst(seniorityOf(a), seniorityOf(b));
}

/** The host conflict that stalls `name`, if an older mirror configures one of its node hosts. */
export function hostConflictOf(name: string, mirrors: readonly RegistryMirrorObject[]): HostConflict | undefined {
  const hosted = [...mirrors]
    .filter(
      (m) => !m.metadata?.deletionTimestamp && typeof (m.spec as { upstreamUrl?: unknown })?.upstreamUrl === 'string',
    )
    .sort(byAge)
    .map((m) => ({
      name: mirrorName(m),
      source: `RegistryMirror ${mirrorName(m)}`,
      spec: m.spec as { upstreamUrl: string; masqueradeUrl?: string },
    }));
  return findHostConflicts(hosted).find((c) => c.mirror === name);
}

/**
 * The name collision that stalls `name`, if an older mirror creates an object of the kind and
 * name one of its children would have. A mirror being deleted still counts: its children are
 * there until the garbage collector removes them.
 */
export function nameCollisionOf(name: string, mirrors: readonly RegistryMirrorObject[]): NameCollision | undefined {
  const named = [...mirrors]
    .sort(byAge)
    .map((m) => ({ name: mirrorName(m), source: `RegistryMirror ${mirrorName(m)}` }));
  return findNameCollisions(named).find((c) => c.mirror === name);
}

/** The outcome when an older mirror holds one of `name`'s node hosts or children's names; else undefined. */
export function arbitrate(name: string, mirrors: readonly RegistryMirrorObject[]): ReconcileOutcome | undefined {
  const conflict = hostConflictOf(name, mirrors);
  if (conflict) {
    return {
      type: 'Stalled',
      reason: 'HostConflict',
      message: `${conflict.field} configures node host ${conflict.host}, which the older mirror '${conflict.other}' already configures; two mirrors may not configure the same registry host. Delete one of them or change its ${conflict.field}.`,
    };
  }
  const collision = nameCollisionOf(name, mirrors);
  if (collision) {
    return {
      type: 'Stalled',
      reason: 'NameCollision',
      message: `Its ${collision.object} would be the same object as the older mirror '${collision.other}'s; two mirrors may not create the same object. Delete one of them and recreate it under another name.`,
    };
  }
  return undefined;
}

/** The RegistryMirror that controls `obj` through its ownerReferences, if any. */
export function controllingMirror(obj: LiveMeta): string | undefined {
  return (obj.metadata.ownerReferences ?? []).find(
    (r) => r.controller === true && r.kind === KIND && r.apiVersion === MIRROR_API_VERSION,
  )?.name;
}

/**
 * The outcome when a child to apply is an object another RegistryMirror controls: a Stalled
 * NameCollision while that mirror exists, a retry while its children wait for the garbage
 * collector; else undefined.
 */
export function takenByAnotherMirror(
  name: string,
  apply: readonly KubeObject[],
  live: readonly LiveMeta[],
  known: { readonly namespace: string; readonly children: ChildIndex; readonly mirrors: Cache<RegistryMirrorObject> },
): ReconcileOutcome | undefined {
  const liveByKey = new Map(live.map((l) => [childKey(l), l]));
  for (const child of apply) {
    const key = childKey(child);
    const existing = liveByKey.get(key) ?? known.children.get(key);
    const owner = existing && controllingMirror(existing);
    if (owner === undefined || owner === name) continue;
    const what = `${child.kind} ${child.metadata.namespace ?? known.namespace}/${child.metadata.name}`;
    if (known.mirrors.get(owner)) {
      return {
        type: 'Stalled',
        reason: 'NameCollision',
        message: `${what} belongs to mirror '${owner}' (its controlling ownerReference); two mirrors may not create the same object. Delete one of them and recreate it under another name.`,
      };
    }
    return {
      type: 'Retrying',
      reason: 'ApplyFailed',
      message: `${what} still belongs to the deleted mirror '${owner}'; waiting for the garbage collector to remove it.`,
    };
  }
  return undefined;
}
