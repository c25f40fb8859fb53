// The original mirror-operator's objects for a mirror, as it created them, and a monitor of the
// Service and pods during a takeover. Shared by the integration test (real StatefulSet and
// DaemonSet controllers, a stand-in kubelet) and the real-node e2e (a real kubelet).
//
// The original's objects carry app=docker-registry, mirror=<name> and ownerReferences to the
// RegistryMirror without controller=true, in the seed README's shape (DaemonSet
// registry-mirror-<name>, a NodePort Service) or the later one (DaemonSet
// registry-mirror-<name>-utils, an nginx Secret).
import type { V1Container, V1Pod } from '@kubernetes/client-node';

import { waitFor } from '../primitives/wait.js';
import { type Clients, getMirror } from './cluster.js';

export type LegacyShape = 'seed' | 'later';

export interface LegacyMirrorOptions {
  readonly namespace: string;
  readonly shape: LegacyShape;
  readonly replicas: number;
  /** The original cache pod's container. @default - the original's nginx image, never run */
  readonly cacheContainer?: Partial<V1Container>;
  /** The original node pod's container. @default - the original's mirror-hostess image, never run */
  readonly nodeContainer?: Partial<V1Container>;
  /** How long to wait for the original's cache pods to be ready. @default 30 s */
  readonly readyTimeoutMs?: number;
}

export const isReady = (p: V1Pod): boolean =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True');
export const isCachePod = (p: V1Pod): boolean =>
  p.metadata?.labels?.component === 'registry' || p.metadata?.labels?.['app.kubernetes.io/component'] === 'cache';
/** The original's node pod (its DaemonSet's) or the new node agent's. */
export const isNodePod = (p: V1Pod): boolean =>
  p.metadata?.labels?.component === 'hostess-certificate' ||
  p.metadata?.labels?.['app.kubernetes.io/component'] === 'node-agent';

/** Create the original operator's objects for `mirror` (which must exist) and wait for its cache pods. */
export async function legacyMirror(c: Clients, mirror: string, opts: LegacyMirrorOptions): Promise<void> {
  const { namespace, shape, replicas } = opts;
  const m = await getMirror(c, mirror);
  const labels = { app: 'docker-registry', mirror };
  const ownerReferences = [
    { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', name: mirror, uid: m.metadata!.uid! },
  ];
  const meta = (name: string) => ({ name, namespace, labels, ownerReferences });
  const full = `registry-mirror-${mirror}`;
  const fieldManager = 'mirror-operator';
  const ports = [{ name: 'https', port: 443, targetPort: 'https' }];
  await c.core.createNamespacedService({
    namespace,
    fieldManager,
    body: {
      metadata: meta(full),
      spec: shape === 'seed' ? { type: 'NodePort', selector: labels, ports } : { selector: labels, ports },
    },
  });
  await c.core.createNamespacedService({
    namespace,
    fieldManager,
    body: { metadata: meta(`${full}-headless`), spec: { clusterIP: 'None', selector: labels, ports } },
  });
  await c.apps.createNamespacedStatefulSet({
    namespace,
    fieldManager,
    body: {
      metadata: meta(full),
      spec: {
        replicas,
        serviceName: `${full}-headless`,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: labels },
        template: {
          metadata: { labels: { ...labels, component: 'registry' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'registry',
                image: 'nginx:1.22.1-alpine',
                ports: [{ name: 'https', containerPort: 5000 }],
                ...opts.cacheContainer,
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'image-store' },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } } },
          },
        ],
      },
    },
  });
  await c.apps.createNamespacedDaemonSet({
    namespace,
    fieldManager,
    body: {
      metadata: meta(shape === 'seed' ? full : `${full}-utils`),
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels: { ...labels, component: 'hostess-certificate' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'mirror-hostess', image: 'mirror-hostess:1.4.0', ...opts.nodeContainer }],
          },
        },
      },
    },
  });
  if (shape === 'later') {
    await c.core.createNamespacedSecret({
      namespace,
      fieldManager,
      body: { metadata: meta(`${full}-secret`), data: { 'default.conf': Buffer.from('server {}').toString('base64') } },
    });
  }
  await waitFor(
    `the original ${mirror} cache pods to be ready`,
    async () => {
      const pods = (await c.core.listNamespacedPod({ namespace, labelSelector: `mirror=${mirror},component=registry` }))
        .items;
      return pods.filter(isReady).length === replicas;
    },
    opts.readyTimeoutMs ?? 30_000,
  );
}

/** Everything labelled mirror=<name> in the namespace that is not mirror-synth's, as Kind/name. */
export async function legacyLeftovers(c: Clients, namespace: string, mirror: string): Promise<string[]> {
  const labelSelector = `mirror=${mirror}`;
  const ours = (o: { metadata?: { labels?: Record<string, string> } }) =>
    o.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'mirror-synth';
  const out: string[] = [];
  const add = (kind: string, items: Array<{ metadata?: { name?: string; labels?: Record<string, string> } }>) => {
    for (const i of items) if (!ours(i)) out.push(`${kind}/${i.metadata?.name}`);
  };
  add('Service', (await c.core.listNamespacedService({ namespace, labelSelector })).items);
  add('StatefulSet', (await c.apps.listNamespacedStatefulSet({ namespace, labelSelector })).items);
  add('DaemonSet', (await c.apps.listNamespacedDaemonSet({ namespace, labelSelector })).items);
  add('Secret', (await c.core.listNamespacedSecret({ namespace, labelSelector })).items);
  add('PersistentVolumeClaim', (await c.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector })).items);
  // The original's pods are those with app=docker-registry and without our managed-by label (a
  // mirror whose spec.labels sets app=docker-registry gives its new pods both).
  add(
    'Pod',
    (await c.core.listNamespacedPod({ namespace, labelSelector: `app=docker-registry,${labelSelector}` })).items,
  );
  return out;
}

export interface TakeoverMonitor {
  /** Stop sampling; every violation seen, oldest first. */
  stop(): Promise<string[]>;
  samples(): number;
}

/**
 * Samples the Service and the pods every 100 ms until stopped; records every moment it selected
 * no ready cache pod while one existed, and every moment the node had no ready node pod (the
 * original's or the new agent's) after it first had one: the node's configuration has no gap.
 */
export function monitorTakeover(c: Clients, namespace: string, mirror: string): TakeoverMonitor {
  let stopped = false;
  let samples = 0;
  let nodeServed = false;
  const violations: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      try {
        const readService = () => c.core.readNamespacedService({ name: `registry-mirror-${mirror}`, namespace });
        const svc = await readService();
        const all = (await c.core.listNamespacedPod({ namespace, labelSelector: `mirror=${mirror}` })).items;
        // The new node agent's pods run in the node agent namespace.
        const agents = (
          await c.core.listNamespacedPod({ namespace: `${namespace}-node`, labelSelector: `mirror=${mirror}` })
        ).items;
        // The Service and the pods are two reads: a sample taken across a change of the Service
        // is not a moment of the cluster. Take it again.
        if ((await readService()).metadata?.resourceVersion !== svc.metadata?.resourceVersion) continue;
        const pods = all.filter(isCachePod);
        const selector = svc.spec?.selector ?? {};
        const selected = pods.filter((p) => Object.entries(selector).every(([k, v]) => p.metadata?.labels?.[k] === v));
        samples++;
        const nodePods = [...all, ...agents].filter(isNodePod);
        if (nodePods.some(isReady)) nodeServed = true;
        else if (nodeServed)
          violations.push(`no ready node pod on the node: ${nodePods.map((p) => p.metadata?.name).join(', ')}`);
        if (pods.some(isReady) && !selected.some(isReady)) {
          violations.push(
            `selector ${JSON.stringify(selector)} selects no ready pod; ready: ${pods
              .filter(isReady)
              .map((p) => p.metadata?.name)
              .join(', ')}`,
          );
        }
      } catch {
        // the Service is replaced in one write; a read in between is retried
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return violations;
    },
    samples: () => samples,
  };
}
