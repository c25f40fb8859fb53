/**
 * The original mirror-operator's objects, recognised. Objects that are not the original
 * operator's are never taken over: they stall the mirror (ForeignObject) with the command that
 * resolves it. "The original's" is decided per object from its labels, its name (exactly what
 * mirror-operator named that kind for this mirror, see legacyNamed) and its ownerReferences (none
 * but the original's kind), never from labels alone: a mirror whose `spec.labels` keeps
 * `app: docker-registry` gives its new children the original's labels too, and another object may
 * carry them.
 */
import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';

import { childName } from '../api/children.js';
import { KIND, MANAGED_BY_LABEL, MIRROR_API_VERSION, MIRROR_LABEL } from '../api/names.js';

/** The original operator's labels on every object it made. */
export const LEGACY_APP_LABEL = 'app';
export const LEGACY_APP = 'docker-registry';

export function legacySelector(mirror: string): string {
  return `${LEGACY_APP_LABEL}=${LEGACY_APP},${MIRROR_LABEL}=${mirror}`;
}

/** Kinds of the original operator's objects the takeover reads or deletes. */
export type LegacyKind = 'StatefulSet' | 'DaemonSet' | 'Service' | 'Secret' | 'PersistentVolumeClaim' | 'Pod';

/** The original's StatefulSet volumeClaimTemplate: its claims are `image-store-<StatefulSet>-<ordinal>`. */
export const LEGACY_CLAIM_TEMPLATE = 'image-store';

/** The characters of the suffix the API server appends to a generateName (apimachinery's rand.String: no vowels). */
const GENERATED_NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Whether `name` is a name mirror-operator gave an object of `kind` for this mirror: StatefulSet
 * `registry-mirror-<name>`; DaemonSet that name (its README) or `-utils` (later versions);
 * Services that name and `-headless`; Secret `-secret` (its nginx config); the StatefulSet's claims
 * `image-store-registry-mirror-<name>-<ordinal>`; pods `registry-mirror-<name>-<ordinal>` (the
 * StatefulSet's) or a DaemonSet's name plus the 5 characters the API server generates. It made
 * no ConfigMap. (With `addressingScheme: services` it also made a cert-manager Certificate, whose
 * `-tls` Secret cert-manager owns: neither is touched.)
 */
export function legacyNamed(kind: LegacyKind, name: string, mirror: string): boolean {
  const full = childName(mirror);
  switch (kind) {
    case 'StatefulSet':
      return name === full;
    case 'DaemonSet':
      return name === full || name === `${full}-utils`;
    case 'Service':
      return name === full || name === `${full}-headless`;
    case 'Secret':
      return name === `${full}-secret`;
    case 'PersistentVolumeClaim':
      return new RegExp(`^${escapeRegExp(`${LEGACY_CLAIM_TEMPLATE}-${full}`)}-\\d+$`).test(name);
    case 'Pod':
      return new RegExp(`^${escapeRegExp(full)}-(\\d+|(utils-)?[${GENERATED_NAME_CHARS}]{5})$`).test(name);
  }
}

/**
 * Whether every ownerReference of `obj` is one mirror-operator's objects have: to the RegistryMirror
 * without `controller` (it set those on everything it made), and, on a pod, to the original's
 * StatefulSet or DaemonSet (until the orphaning delete removes it). Ours are controller references;
 * a claim of a StatefulSet with a retention policy (ours) is owned by that StatefulSet.
 */
function legacyOwners(kind: LegacyKind, obj: KubernetesObject, mirror: string): boolean {
  return (obj.metadata?.ownerReferences ?? []).every((r) => {
    if (r.apiVersion === MIRROR_API_VERSION && r.kind === KIND && r.name === mirror) return r.controller !== true;
    if (kind !== 'Pod' || r.apiVersion !== 'apps/v1') return false;
    return (
      (r.kind === 'StatefulSet' || r.kind === 'DaemonSet') &&
      legacyNamed(r.kind, r.name, mirror) &&
      r.controller === true
    );
  });
}

/**
 * Whether an object of `kind` is the original operator's child of this mirror: its labels, a name
 * it gave that kind (legacyNamed), no managed-by label of ours, and no ownerReference but its own.
 */
export function isLegacy(kind: LegacyKind, obj: KubernetesObject | undefined, mirror: string): boolean {
  if (!obj) return false;
  const labels = obj.metadata?.labels ?? {};
  return (
    labels[LEGACY_APP_LABEL] === LEGACY_APP &&
    labels[MIRROR_LABEL] === mirror &&
    !labels[MANAGED_BY_LABEL] &&
    legacyNamed(kind, obj.metadata?.name ?? '', mirror) &&
    legacyOwners(kind, obj, mirror)
  );
}

export function isLegacyKind(kind: string): kind is LegacyKind {
  return ['StatefulSet', 'DaemonSet', 'Service', 'Secret', 'PersistentVolumeClaim', 'Pod'].includes(kind);
}

/** The StatefulSet ordinal in a pod name `registry-mirror-<name>-<n>`, or undefined. */
export function ordinal(pod: string, statefulSet: string): number | undefined {
  const m = new RegExp(`^${escapeRegExp(statefulSet)}-(\\d+)$`).exec(pod);
  return m ? Number(m[1]) : undefined;
}

export function podReady(p: V1Pod): boolean {
  return (
    !p.metadata?.deletionTimestamp &&
    (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}
