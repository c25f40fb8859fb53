// Clients and helpers for tests and benchmarks against a real API server: RegistryMirrors, their status, logs.
import { Writable } from 'node:stream';

import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
} from '@kubernetes/client-node';

import type { KubeObject } from '../../../src/api/kube-object.js';
import { waitFor } from '../primitives/wait.js';
import { installCrd as installCrdWith } from './crd.js';

export { StopWaiting } from '../primitives/wait.js';

export const GROUP = { group: 'k8s.osp.tech', version: 'v1', plural: 'registrymirrors' } as const;

export interface Clients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  custom: CustomObjectsApi;
  ext: ApiextensionsV1Api;
  objects: KubernetesObjectApi;
}

export function clients(kubeconfigPath: string): Clients {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    ext: kc.makeApiClient(ApiextensionsV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

/** Install the RegistryMirror CRD (as test/support/kube/crd.ts does) and wait until it is Established. */
export async function installCrd(c: Clients): Promise<void> {
  await installCrdWith(c.kc);
}

export interface Mirror extends KubernetesObject {
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; reason: string; message: string; observedGeneration?: number }>;
  };
}

export async function createMirror(
  c: Clients,
  name: string,
  spec: Record<string, unknown>,
  labels: Record<string, string> = {},
): Promise<Mirror> {
  return (await c.custom.createClusterCustomObject({
    ...GROUP,
    body: { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', metadata: { name, labels }, spec },
  })) as Mirror;
}

export async function getMirror(c: Clients, name: string): Promise<Mirror> {
  return (await c.custom.getClusterCustomObject({ ...GROUP, name })) as Mirror;
}

export async function setSpec(c: Clients, name: string, spec: Record<string, unknown>): Promise<Mirror> {
  return (await c.custom.patchClusterCustomObject({
    ...GROUP,
    name,
    body: [{ op: 'replace', path: '/spec', value: spec }],
  })) as Mirror;
}

export async function deleteMirror(c: Clients, name: string): Promise<void> {
  await c.custom.deleteClusterCustomObject({ ...GROUP, name }).catch(() => undefined);
}

export function condition(m: Mirror | undefined, type: string) {
  return m?.status?.conditions?.find((x) => x.type === type);
}

/** The mirror once its status reports the current generation with Ready=`status`. */
export async function waitForReady(
  c: Clients,
  name: string,
  status: 'True' | 'False' = 'True',
  timeoutMs = 30_000,
): Promise<Mirror> {
  return waitFor(
    `mirror ${name} Ready=${status}`,
    async () => {
      const m = await getMirror(c, name);
      const ready = condition(m, 'Ready');
      return m.status?.observedGeneration === m.metadata?.generation &&
        ready?.status === status &&
        ready.observedGeneration === m.metadata?.generation
        ? m
        : undefined;
    },
    timeoutMs,
  );
}

/**
 * Every object labelled mirror=<name> in the namespace and the node agent's kinds in the node agent
 * namespace (`<namespace>-node`), as `Kind/name` → object.
 */
export async function children(c: Clients, namespace: string, mirror: string): Promise<Map<string, KubeObject>> {
  const labelSelector = `mirror=${mirror},app.kubernetes.io/managed-by=mirror-synth`;
  const out = new Map<string, KubeObject>();
  const add = (kind: string, items: KubernetesObject[]) => {
    for (const i of items) out.set(`${kind}/${i.metadata?.name}`, i as unknown as KubeObject);
  };
  add('ConfigMap', (await c.core.listNamespacedConfigMap({ namespace, labelSelector })).items);
  add('Service', (await c.core.listNamespacedService({ namespace, labelSelector })).items);
  add('Secret', (await c.core.listNamespacedSecret({ namespace, labelSelector })).items);
  add('StatefulSet', (await c.apps.listNamespacedStatefulSet({ namespace, labelSelector })).items);
  add('DaemonSet', (await c.apps.listNamespacedDaemonSet({ namespace, labelSelector })).items);
  const agentNamespace = nodeAgentNamespaceOf(namespace);
  add('ConfigMap', (await c.core.listNamespacedConfigMap({ namespace: agentNamespace, labelSelector })).items);
  add('DaemonSet', (await c.apps.listNamespacedDaemonSet({ namespace: agentNamespace, labelSelector })).items);
  return out;
}

/** The node agent namespace of an output namespace (the default, `<namespace>-node`). */
export function nodeAgentNamespaceOf(namespace: string): string {
  return `${namespace}-node`;
}

/** An output namespace and its node agent namespace, as a test's own. */
export async function createMirrorNamespaces(c: Clients, namespace: string): Promise<void> {
  await c.core.createNamespace({ body: { metadata: { name: namespace } } });
  await c.core.createNamespace({ body: { metadata: { name: nodeAgentNamespaceOf(namespace) } } });
}

/** A pino destination that keeps every line, to check what the controller logged. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line) this.lines.push(line);
    cb();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

export function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}
