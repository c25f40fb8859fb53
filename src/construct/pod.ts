/** Pieces of pod specs the parts of a mirror share: quantities and the Pod Security "restricted" settings. */
import { createHash } from 'node:crypto';

import { k8s } from './k8s.js';

export function quantity(value: string | number): k8s.Quantity {
  return typeof value === 'number' ? k8s.Quantity.fromNumber(value) : k8s.Quantity.fromString(value);
}

export function quantities(map: Record<string, string | number> | undefined): Record<string, k8s.Quantity> | undefined {
  if (map === undefined) return undefined;
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [k, quantity(v)]));
}

/** A container that meets Pod Security "restricted" (with a non-root pod). */
export const RESTRICTED_CONTAINER = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
} satisfies k8s.SecurityContext;

/** The pod-level part of "restricted" every pod of a mirror gets. */
export const RUNTIME_DEFAULT_SECCOMP = { seccompProfile: { type: 'RuntimeDefault' } } satisfies k8s.PodSecurityContext;

/**
 * The pod-level part of "restricted" for a pod whose containers run as `uid` (non-root, RuntimeDefault
 * seccomp); `extra` adds what one pod needs besides (the cache's fsGroup, so its volume is writable).
 */
export function restrictedPod(uid: number, extra: k8s.PodSecurityContext = {}): k8s.PodSecurityContext {
  return { ...RUNTIME_DEFAULT_SECCOMP, runAsNonRoot: true, runAsUser: uid, runAsGroup: uid, ...extra };
}

/** The items that are there: a list built from functions that return undefined for what a spec leaves out. */
export function defined<T>(items: readonly (T | undefined)[]): T[] {
  return items.filter((item): item is T => item !== undefined);
}

/** The config-hash annotation's value: pods roll when the config they mount changes. */
export function configHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
