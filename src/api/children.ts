/**
 * What a mirror has in the cluster, decided once: the kinds of its children (CHILD_KINDS, from which
 * the controller's watches and its RBAC are built) and the name of each child by role (from which
 * the constructs name their objects and the name-collision check compares two mirrors).
 */
import { MIRROR_APP_NAME } from './names.js';

/** Children are `registry-mirror-<name>` (and `-headless`, `-config`, `-agent`). */
export function childName(mirror: string): string {
  return `${MIRROR_APP_NAME}-${mirror}`;
}

/**
 * The name of each child a mirror may have, by role. The constructs and the controller name
 * their objects from here, so what two mirrors would both create can be found from their
 * names alone (mirrorChildren), before anything is synthesized or applied.
 */
export function mirrorChildNames(mirror: string) {
  const base = childName(mirror);
  return {
    cacheConfig: `${base}-config`,
    agentConfig: `${base}-agent`,
    service: base,
    headlessService: `${base}-headless`,
    statefulSet: base,
    daemonSet: base,
    networkPolicy: base,
    /** `spec.cache.pinned`: the list `mirror-synth warm` reads, changed without rolling the pods. */
    pinnedConfig: `${base}-pinned`,
    /** Only in the controller, for a dockerconfigjson credentials Secret. */
    credentialsSecret: `${base}-credentials`,
  } as const;
}

/** One object a mirror may create in the output namespace (or, for the node agent's, in the node agent namespace). */
export interface ChildRef {
  readonly kind: string;
  readonly name: string;
  /** What it is to the mirror, in words for a message. */
  readonly role: string;
}

/**
 * Every object a mirror may create (each kind and name lives in one namespace, the output
 * namespace or the node agent namespace, the same for every mirror of a set, so kind and name
 * identify each). A unit test holds the constructs to it.
 */
export function mirrorChildren(mirror: string): readonly ChildRef[] {
  const n = mirrorChildNames(mirror);
  return [
    { kind: 'ConfigMap', name: n.cacheConfig, role: "cache's ConfigMap" },
    { kind: 'ConfigMap', name: n.agentConfig, role: "node agent's ConfigMap" },
    { kind: 'ConfigMap', name: n.pinnedConfig, role: "pinned images' ConfigMap" },
    { kind: 'Service', name: n.service, role: 'Service' },
    { kind: 'Service', name: n.headlessService, role: 'headless Service' },
    { kind: 'StatefulSet', name: n.statefulSet, role: 'cache StatefulSet' },
    { kind: 'DaemonSet', name: n.daemonSet, role: 'node agent DaemonSet' },
    { kind: 'NetworkPolicy', name: n.networkPolicy, role: 'cache NetworkPolicy' },
    { kind: 'Secret', name: n.credentialsSecret, role: 'derived credentials Secret' },
  ];
}
