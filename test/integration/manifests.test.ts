// What we synthesize is what a real kube-apiserver accepts: the CRD (structural schema,
// status subresource), RegistryMirror validation on the server, every child object, and the
// cache pods under Pod Security "restricted".
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  NetworkingV1Api,
  PatchStrategy,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { loadMirrorDir } from '../../src/sources/files.js';
import { controllerObjects, namespaceObjects, synthesizeMirror } from '../../src/synth/chart.js';
import { installCrd } from '../support/kube/crd.js';

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfig'));
const core = kc.makeApiClient(CoreV1Api);
const ext = kc.makeApiClient(ApiextensionsV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const objects = KubernetesObjectApi.makeApiClient(kc);
const suffix = randomBytes(3).toString('hex');
const namespace = `manifests-${suffix}`;
const restricted = `restricted-${suffix}`;
/** As dist/ makes it: the output namespace and, with `-node`, the node agents'. */
const output = `out-${suffix}`;

// Through client-node's typed model, as the controller sends it (kube.ts): a plain object would lose
// the fields whose TypeScript names differ from the wire's (a NetworkPolicy rule's `from`).
const apply = (obj: KubeObject) =>
  objects.patch(
    loadYaml<KubernetesObject>(JSON.stringify(obj)),
    undefined,
    undefined,
    'mirror-synth-test',
    true,
    PatchStrategy.ServerSideApply,
  );

async function createMirror(name: string, spec: Record<string, unknown>): Promise<unknown> {
  return custom.createClusterCustomObject({
    group: 'k8s.osp.tech',
    version: 'v1',
    plural: 'registrymirrors',
    body: { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', metadata: { name }, spec },
  });
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiException) return String(e.body);
    throw e;
  }
  throw new Error('the API server accepted it');
}

async function ensureDefaultServiceAccount(ns: string) {
  await core
    .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } })
    .catch((e: unknown) => {
      if (!(e instanceof ApiException && e.code === 409)) throw e;
    });
}

describe('against a real kube-apiserver', () => {
  beforeAll(async () => {
    await installCrd(kc);
    await core.createNamespace({
      body: { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } },
    });
    await core.createNamespace({
      body: { metadata: { name: restricted, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
    });
    await ensureDefaultServiceAccount(namespace);
    await ensureDefaultServiceAccount(restricted);
  });
  afterAll(async () => {
    for (const name of [namespace, restricted, output, `${output}-node`])
      await core.deleteNamespace({ name }).catch(() => undefined);
    for (const name of [`ok-${suffix}`, `quantity-${suffix}`]) {
      await custom
        .deleteClusterCustomObject({ group: 'k8s.osp.tech', version: 'v1', plural: 'registrymirrors', name })
        .catch(() => undefined);
    }
  });

  it('serves the CRD: cluster-scoped, short name rm, status subresource, printer columns', async () => {
    const crd = await ext.readCustomResourceDefinition({ name: 'registrymirrors.k8s.osp.tech' });
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.spec.names.shortNames).toEqual(['rm']);
    expect(crd.status?.conditions?.find((c) => c.type === 'NonStructuralSchema')).toBeUndefined();
    expect(crd.spec.versions[0].additionalPrinterColumns?.map((c) => c.name)).toEqual([
      'Upstream',
      'Ready',
      'Reason',
      'Age',
      'Message',
    ]);
  });

  it('accepts the original API and the new fields, and validates on the server too', async () => {
    await createMirror(`ok-${suffix}`, {
      upstreamUrl: 'quay.io',
      credentialsSecret: 'quay-creds',
      volumeClaimTemplate: { spec: { resources: { requests: { storage: '20Gi' } } } },
      resources: { limits: { cpu: 2, memory: '1Gi' } },
    });
    await createMirror(`quantity-${suffix}`, { upstreamUrl: 'quay.io', replicas: 2 });
    expect(await rejection(createMirror(`scheme-${suffix}`, { upstreamUrl: 'https://quay.io' }))).toContain(
      'spec.upstreamUrl',
    );
    expect(await rejection(createMirror(`missing-${suffix}`, { credentialsSecret: 'x' }))).toContain(
      'spec.upstreamUrl: Required value',
    );
    expect(await rejection(createMirror(`replicas-${suffix}`, { upstreamUrl: 'quay.io', replicas: 0 }))).toContain(
      'spec.replicas',
    );
    expect(await rejection(createMirror(`Bad_Name`, { upstreamUrl: 'quay.io' }))).toContain('metadata.name');
  });

  it('accepts every child object of a fully specified mirror', async () => {
    const children = synthesizeMirror(
      {
        name: 'full',
        source: 'test',
        spec: {
          upstreamUrl: 'registry.example.com:5443',
          credentialsSecret: 'creds',
          masqueradeUrl: 'mirror.example.internal',
          replicas: 2,
          volumeClaimTemplate: { spec: { storageClassName: 'ssd', resources: { requests: { storage: '50Gi' } } } },
          resources: { requests: { cpu: '250m' }, limits: { cpu: 2, memory: '2Gi' } },
          tolerations: [{ key: 'infra', operator: 'Equal', value: 'true', effect: 'NoSchedule' }],
          nodeSelector: { pool: 'infra' },
          imagePullSecrets: [{ name: 'pull' }],
          labels: { team: 'platform' },
          imageRegistry: 'harbor.example.com/hub',
          networkPolicy: {
            nodeCIDRs: ['10.20.0.0/16', 'fd00:20::/64'],
            monitoring: {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } },
              podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
            },
            egressDeniedCIDRs: ['10.244.0.0/16', '10.96.0.0/12', 'fd00:10::/56'],
            egressAllowedCIDRs: ['10.96.40.12/32', '169.254.169.254/32'],
          },
          fill: 'streaming',
        },
      },
      { namespace, nodeAgentNamespace: namespace, fillImage: 'registry.example.com/platform/mirror-synth:0.1.0' },
    );
    for (const child of children) await apply(child);
    const services = await core.listNamespacedService({ namespace, labelSelector: 'mirror=full' });
    expect(services.items.map((s) => s.metadata!.name).sort()).toEqual([
      'registry-mirror-full',
      'registry-mirror-full-headless',
    ]);
    const policy = await kc
      .makeApiClient(NetworkingV1Api)
      .readNamespacedNetworkPolicy({ name: 'registry-mirror-full', namespace });
    expect(policy.spec?.ingress?.[0]?._from?.map((p) => p.ipBlock?.cidr)).toEqual(['10.20.0.0/16', 'fd00:20::/64']);
    // egress as written: DNS, the replicas, everywhere but the denied ranges, the allowed ones again
    expect(policy.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec?.egress?.map((r) => r.to?.map((p) => p.ipBlock ?? p.podSelector))).toEqual([
      undefined,
      [policy.spec?.podSelector],
      [
        { cidr: '0.0.0.0/0', except: ['169.254.0.0/16', '10.244.0.0/16', '10.96.0.0/12'] },
        { cidr: '::/0', except: ['fe80::/10', 'fd00:10::/56'] },
      ],
      [{ cidr: '10.96.40.12/32' }, { cidr: '169.254.169.254/32' }],
    ]);
  });

  it('runs the cache pods under Pod Security "restricted"', async () => {
    const sts = synthesizeMirror(
      { name: 'psa', source: 'test', spec: { upstreamUrl: 'quay.io' } },
      { namespace: restricted },
    ).find((o) => o.kind === 'StatefulSet') as KubeObject & { spec: { template: { spec: { volumes: object[] } } } };
    // As the StatefulSet controller makes it: the claim from volumeClaimTemplates becomes a volume.
    const spec = {
      ...sts.spec.template.spec,
      volumes: [
        ...sts.spec.template.spec.volumes,
        { name: 'cache', persistentVolumeClaim: { claimName: 'cache-registry-mirror-psa-0' } },
      ],
    };
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cache-pod', namespace: restricted }, spec };
    await expect(core.createNamespacedPod({ namespace: restricted, body: pod as never })).resolves.toBeDefined();
  });

  it('runs every fixture\'s cache pods and the controller under "restricted" (server-side dry run)', async () => {
    // Pod Security admission checks a Pod, not a template: each template as the pod its controller
    // makes. The PriorityClass and the ServiceAccount it names do not exist here, and other admission
    // plugins would refuse them first; Pod Security does not look at either.
    const asPod = (name: string, spec: object) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: restricted },
      spec: { ...spec, priorityClassName: undefined, serviceAccountName: 'default' },
    });
    const dryRun = (name: string, spec: object) =>
      core.createNamespacedPod({ namespace: restricted, body: asPod(name, spec) as never, dryRun: 'All' });
    for (const input of await loadMirrorDir(fileURLToPath(new URL('../fixtures/mirrors', import.meta.url)))) {
      const sts = synthesizeMirror(input, { namespace: restricted }).find(
        (o) => o.kind === 'StatefulSet',
      ) as KubeObject & {
        spec: { template: { spec: { volumes: object[] } } };
      };
      const spec = {
        ...sts.spec.template.spec,
        volumes: [
          ...sts.spec.template.spec.volumes,
          { name: 'cache', persistentVolumeClaim: { claimName: `cache-${sts.metadata.name}-0` } },
        ],
      };
      await expect(dryRun(`${sts.metadata.name}-0`, spec), input.name).resolves.toBeDefined();
    }
    const deployment = controllerObjects({ namespace: restricted, image: 'example.com/mirror-synth:0.1.0' }).find(
      (o) => o.kind === 'Deployment',
    ) as KubeObject & { spec: { template: { spec: object } } };
    await expect(dryRun('controller', deployment.spec.template.spec)).resolves.toBeDefined();
  });

  it('needs a privileged namespace only for the node agent (hostPath), as docs/security.md says', async () => {
    const ds = synthesizeMirror(
      { name: 'psa', source: 'test', spec: { upstreamUrl: 'quay.io' } },
      { namespace: restricted },
    ).find((o) => o.kind === 'DaemonSet') as KubeObject & { spec: { template: { spec: object } } };
    const pod = (ns: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'agent-pod', namespace: ns },
      spec: ds.spec.template.spec,
    });
    expect(
      await rejection(core.createNamespacedPod({ namespace: restricted, body: pod(restricted) as never })),
    ).toContain('hostPath');
    await expect(core.createNamespacedPod({ namespace, body: pod(namespace) as never })).resolves.toBeDefined();
  });

  it("applies dist/'s namespaces, each child into its own, and admits the node agent only in the node agent namespace", async () => {
    for (const ns of namespaceObjects({ namespace: output })) await apply(ns);
    await ensureDefaultServiceAccount(output);
    await ensureDefaultServiceAccount(`${output}-node`);
    const children = synthesizeMirror(
      { name: 'split', source: 'test', spec: { upstreamUrl: 'quay.io' } },
      { namespace: output },
    );
    for (const child of children) await apply(child);
    const ds = await kc
      .makeApiClient(AppsV1Api)
      .readNamespacedDaemonSet({ name: 'registry-mirror-split', namespace: `${output}-node` });
    expect(ds.metadata?.labels?.mirror).toBe('split');
    const asPod = (name: string, ns: string, spec: object) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns },
      spec: { ...spec, serviceAccountName: 'default' },
    });
    const create = (name: string, ns: string, spec: object) =>
      core.createNamespacedPod({ namespace: ns, body: asPod(name, ns, spec) as never, dryRun: 'All' });
    const agent = children.find((o) => o.kind === 'DaemonSet') as KubeObject & { spec: { template: { spec: object } } };
    const sts = children.find((o) => o.kind === 'StatefulSet') as KubeObject & {
      spec: { template: { spec: { volumes: object[] } } };
    };
    const cache = {
      ...sts.spec.template.spec,
      volumes: [
        ...sts.spec.template.spec.volumes,
        { name: 'cache', persistentVolumeClaim: { claimName: 'cache-x-0' } },
      ],
    };
    const controller = controllerObjects({ namespace: output, image: 'example.com/mirror-synth:0.1.0' }).find(
      (o) => o.kind === 'Deployment',
    ) as KubeObject & { spec: { template: { spec: object } } };
    // The output namespace is restricted: the cache and the controller pass, the node agent (root, hostPath) does not.
    await expect(create('cache', output, cache)).resolves.toBeDefined();
    await expect(create('controller', output, controller.spec.template.spec)).resolves.toBeDefined();
    expect(await rejection(create('agent', output, agent.spec.template.spec))).toMatch(
      /violates PodSecurity.*hostPath/s,
    );
    await expect(create('agent', `${output}-node`, agent.spec.template.spec)).resolves.toBeDefined();
  });
});
