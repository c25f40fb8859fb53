// Reading what mirror-synth synthesized: find an object, a ConfigMap key, a container's
// environment as the kubelet would give it, and the cache pod's containers and user. The
// components that run a synthesized pod's containers (registry, front, fill, ...) read them here.
/** A synthesized object, as plain JSON (the shape of src/kube-object.ts's KubeObject). */
export interface ManifestObject {
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly [key: string]: unknown;
}

/** Stand-in for the cluster's Secrets: name -> key -> value. */
export type SecretData = Readonly<Record<string, Readonly<Record<string, string>>>>;

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; [k: string]: unknown };
}
interface Container {
  name: string;
  env?: EnvVar[];
}

/** The object of `kind` named `name`, or a clear error listing what there is. */
export function findObject(objects: readonly ManifestObject[], kind: string, name: string): ManifestObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`no ${kind}/${name} among the synthesized objects (${have})`);
  }
  return found;
}

/** A ConfigMap's data key. */
export function configMapData(objects: readonly ManifestObject[], name: string, key: string): string {
  const data = (findObject(objects, 'ConfigMap', name) as { data?: Record<string, string> }).data ?? {};
  if (!(key in data))
    throw new Error(`ConfigMap/${name} has no data key '${key}' (has ${Object.keys(data).join(', ')})`);
  return data[key];
}

/**
 * The environment of a workload's container as the kubelet would give it: literal values, and
 * secretKeyRef values looked up in `secrets`. Any other source is an error, so a test notices
 * when the synthesized pod depends on something it does not model.
 */
export function containerEnv(
  objects: readonly ManifestObject[],
  kind: 'StatefulSet' | 'DaemonSet',
  name: string,
  container: string,
  secrets: SecretData = {},
): Record<string, string> {
  const workload = findObject(objects, kind, name) as { spec?: { template?: { spec?: { containers?: Container[] } } } };
  const c = workload.spec?.template?.spec?.containers?.find((x) => x.name === container);
  if (!c) throw new Error(`${kind}/${name} has no container '${container}'`);
  const env: Record<string, string> = {};
  for (const v of c.env ?? []) {
    if (v.value !== undefined) {
      env[v.name] = v.value;
    } else if (v.valueFrom?.secretKeyRef) {
      const ref = v.valueFrom.secretKeyRef;
      const value = secrets[ref.name]?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new Error(
          `${kind}/${name} env ${v.name}: Secret ${ref.name} key ${ref.key} is not in the test's secrets`,
        );
      }
      env[v.name] = value;
    } else if (v.valueFrom) {
      throw new Error(`${kind}/${name} env ${v.name}: unsupported source ${JSON.stringify(v.valueFrom)}`);
    } else {
      env[v.name] = '';
    }
  }
  return env;
}

/** A container of the synthesized cache pod: the fields the test support reads. */
export interface CacheContainer {
  readonly name: string;
  readonly command?: string[];
  readonly args?: string[];
  readonly env?: { name: string; value?: string }[];
  readonly ports?: { name: string; containerPort: number }[];
  readonly volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  readonly readinessProbe?: { exec?: { command: string[] } };
}

/** The synthesized cache pod's spec (StatefulSet registry-mirror-<name>): the fields the test support reads. */
export interface CachePod {
  readonly securityContext: { runAsUser: number; runAsGroup: number };
  readonly containers: CacheContainer[];
  readonly volumes?: { name: string; secret?: { secretName: string } }[];
}

export function cachePod(objects: readonly ManifestObject[], name: string): CachePod {
  const sts = findObject(objects, 'StatefulSet', `registry-mirror-${name}`) as unknown as {
    spec: { template: { spec: CachePod } };
  };
  return sts.spec.template.spec;
}

/** One container of the cache pod; throws naming the StatefulSet when it has none of that name. */
export function cacheContainer(objects: readonly ManifestObject[], name: string, container: string): CacheContainer {
  const c = cachePod(objects, name).containers.find((x) => x.name === container);
  if (!c) throw new Error(`StatefulSet/registry-mirror-${name} has no '${container}' container`);
  return c;
}

/** The user and group every container of the cache pod runs as. */
export function cachePodUser(objects: readonly ManifestObject[], name: string): { uid: number; gid: number } {
  const sc = cachePod(objects, name).securityContext;
  return { uid: sc.runAsUser, gid: sc.runAsGroup };
}

/** The name of the Secret the cache pod mounts for the credential helper, if any. */
export function credentialsSecretName(objects: readonly ManifestObject[], name: string): string | undefined {
  return cachePod(objects, name).volumes?.find((v) => v.name === 'credentials')?.secret?.secretName;
}
