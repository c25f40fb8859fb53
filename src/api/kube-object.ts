/** Apply order: what others refer to (or mount, or select) comes first, workloads last. */
export const KIND_ORDER: readonly string[] = [
  'CustomResourceDefinition',
  'Namespace',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'Secret',
  'ConfigMap',
  'Service',
  'NetworkPolicy',
  'StatefulSet',
  'DaemonSet',
  'Deployment',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
];
/** Rank of a kind in KIND_ORDER; unknown kinds go last. */
export function kindRank(kind: string | undefined): number {
  const i = KIND_ORDER.indexOf(kind ?? '');
  return i === -1 ? KIND_ORDER.length : i;
}

/** A Kubernetes object as plain JSON, the shape every synthesized manifest has. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** Return a copy of a JSON value with object keys sorted, so serialization is byte-stable. */
export function sortKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => sortKeys(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out as T;
  }
  return value;
}

/** Code-unit order: the same on every machine, whatever its locale (unlike localeCompare). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The one order objects are written and applied in, by synth and by the controller alike:
 * KIND_ORDER (namespaces and CRDs before what lives in them), then kind, name and namespace.
 */
export function compareForApply(
  a: { kind?: string; metadata: { name?: string; namespace?: string } },
  b: { kind?: string; metadata: { name?: string; namespace?: string } },
): number {
  return (
    kindRank(a.kind) - kindRank(b.kind) ||
    compareStrings(a.kind ?? '', b.kind ?? '') ||
    compareStrings(a.metadata.name ?? '', b.metadata.name ?? '') ||
    compareStrings(a.metadata.namespace ?? '', b.metadata.namespace ?? '')
  );
}

/** A RegistryMirror's name: the queue key and the `mirror` label (one from a cache or a list always has one). */
export function mirrorName(obj: { metadata?: { name?: string } } | undefined): string {
  return obj?.metadata?.name ?? '';
}
