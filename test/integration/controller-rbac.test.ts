// The controller runs on the RBAC `controller-manifests` ships, and on nothing more: the
// manifests are applied to a kube-apiserver of this file's own (they hold cluster-wide objects),
// and the controller runs in-process with a token of its ServiceAccount. It takes its Lease,
// reads a credentials Secret that opted in to the mirror, derives, applies and prunes the
// credentials Secret of a dockerconfigjson Secret, and stalls a mirror whose Secret did not opt
// in until the `kubectl annotate` its message gives is run; it applies the NetworkPolicy; no
// request is forbidden. What the Role grants on Secrets is what docs/controller.md says, and no `update`.
// The takeover from mirror-operator is opt-in: off, the original's objects stall their mirror
// (TakeoverDisabled); on, with RBAC from `controller-manifests` without `--takeover`, it stalls
// with TakeoverForbidden; `controller-manifests --takeover`'s Role lets it delete the original's pod.
import { randomBytes } from 'node:crypto';

import {
  ApiException,
  AuthorizationV1Api,
  CoordinationV1Api,
  KubeConfig,
  type KubernetesObject,
  loadYaml,
  NetworkingV1Api,
  PatchStrategy,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { KubeObject } from '../../src/api/kube-object.js';
import { CONTROLLER_NAME, SECRET_MIRRORS_ANNOTATION } from '../../src/api/names.js';
import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import { synthesizeMirror } from '../../src/synth/chart.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import {
  b64,
  type Clients,
  clients,
  condition,
  createMirror,
  getMirror,
  installCrd,
  LogCapture,
  setSpec,
} from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';

const suffix = randomBytes(3).toString('hex');
const namespace = `rbac-${suffix}`;
let controlPlane: ControlPlane;
let admin: Clients;
let ctl: RunningController | undefined;
let sa: KubeConfig;
const logs = new LogCapture();

const objectsOf = (text: string): KubeObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null)
    .map((o) => loadYaml<KubernetesObject>(JSON.stringify(o)) as KubeObject);

async function secret(name: string, body: Record<string, unknown>, optIn?: string): Promise<void> {
  await admin.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name, namespace, ...(optIn ? { annotations: { [SECRET_MIRRORS_ANNOTATION]: optIn } } : {}) },
      ...body,
    },
  });
}

const stalled = async (mirror: string) => {
  const m = await getMirror(admin, mirror);
  return condition(m, 'Stalled')?.status === 'True' ? condition(m, 'Stalled') : undefined;
};
const applied = async (mirror: string) => {
  const m = await getMirror(admin, mirror);
  return m.status?.observedGeneration === m.metadata?.generation && condition(m, 'Ready')?.reason === 'CacheNotReady'
    ? m
    : undefined;
};

beforeAll(async () => {
  controlPlane = await startControlPlane({ controllerManager: false });
  admin = clients(controlPlane.kubeconfigPath);
  await installCrd(admin);
  for (const o of objectsOf(
    controllerManifests({ image: 'registry.example.com/mirror-synth:0.1.0', namespace, log: () => undefined }),
  )) {
    await admin.objects.patch(o, undefined, undefined, 'rbac-test', true, PatchStrategy.ServerSideApply);
  }
  // A token of the controller's ServiceAccount, as the kubelet would mount it.
  const token = await admin.core.createNamespacedServiceAccountToken({
    name: CONTROLLER_NAME,
    namespace,
    body: { spec: { audiences: ['https://kubernetes.default.svc.cluster.local'], expirationSeconds: 3600 } },
  });
  const cluster = admin.kc.getCurrentCluster()!;
  sa = new KubeConfig();
  sa.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'controller', token: token.status!.token }],
    contexts: [{ name: 'controller', cluster: cluster.name, user: 'controller' }],
    currentContext: 'controller',
  });
  ctl = await startController({
    kubeConfig: sa,
    namespace,
    secondsBetweenStreams: 1,
    leaderElection: true,
    logDestination: logs,
  });
  await ctl.running;
});

afterAll(async () => {
  await ctl?.stop();
  await controlPlane?.stop();
});

describe("the controller on controller-manifests' RBAC", () => {
  it('uses an opted-in Secret, derives, applies and prunes a credentials Secret, and is never forbidden', async () => {
    await secret(
      'pull',
      {
        type: 'kubernetes.io/dockerconfigjson',
        data: {
          '.dockerconfigjson': b64(JSON.stringify({ auths: { 'quay.io': { username: 'bot', password: 'pw' } } })),
        },
      },
      'quay@quay.io',
    );
    await secret('plain', { data: { username: b64('bot'), password: b64('pw') } }, 'other@quay.io,quay@quay.io');
    await createMirror(admin, 'quay', { upstreamUrl: 'quay.io', credentialsSecret: 'pull' });
    await waitFor('mirror quay applied', () => applied('quay'));
    const derived = await admin.core.readNamespacedSecret({ name: 'registry-mirror-quay-credentials', namespace });
    expect(Buffer.from(derived.data!.password, 'base64').toString()).toBe('pw');
    // The NetworkPolicy, applied as the controller sends it, keeps its sources (an ingress rule
    // without `from` would admit everyone).
    const policy = await admin.kc
      .makeApiClient(NetworkingV1Api)
      .readNamespacedNetworkPolicy({ name: 'registry-mirror-quay', namespace });
    expect(policy.spec?.ingress?.map((r) => r._from?.length)).toEqual([4, 1]);
    expect(
      (await admin.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: CONTROLLER_NAME, namespace })).spec
        ?.holderIdentity,
    ).toBeTruthy();

    // To a username/password Secret: the derived one is pruned.
    await setSpec(admin, 'quay', { upstreamUrl: 'quay.io', credentialsSecret: 'plain' });
    await waitFor('the derived Secret to be pruned', async () => {
      try {
        await admin.core.readNamespacedSecret({ name: 'registry-mirror-quay-credentials', namespace });
        return false;
      } catch (e) {
        return e instanceof ApiException && e.code === 404;
      }
    });
    await waitFor('mirror quay applied with the plain Secret', () => applied('quay'));
    expect(logs.text()).not.toMatch(/forbidden/i);
  });

  it('stalls a mirror whose Secret did not opt in, until the annotate its message gives is run', async () => {
    await secret('team', { data: { username: b64('bot'), password: b64('team-pw') } });
    await createMirror(admin, 'ghcr', { upstreamUrl: 'ghcr.io', credentialsSecret: 'team' });
    const s = await waitFor('mirror ghcr Stalled', () => stalled('ghcr'));
    expect(s).toMatchObject({ reason: 'CredentialsSecretNotOptedIn' });
    const command = `kubectl -n ${namespace} annotate secret team --overwrite ${SECRET_MIRRORS_ANNOTATION}=ghcr@ghcr.io`;
    expect(s.message).toContain(command);
    expect(s.message).not.toContain('team-pw');
    // What that kubectl annotate does (the Secret had no annotations).
    await admin.core.patchNamespacedSecret({
      name: 'team',
      namespace,
      body: [{ op: 'add', path: '/metadata/annotations', value: { [SECRET_MIRRORS_ANNOTATION]: 'ghcr@ghcr.io' } }],
    });
    await waitFor('mirror ghcr applied after the opt-in', () => applied('ghcr'));
    expect(logs.text()).not.toMatch(/forbidden/i);
  });

  it('stalls a mirror on the original operator’s objects while the takeover is off, and says which RBAC the takeover needs', async () => {
    const mirror = 'legacy';
    const full = `registry-mirror-${mirror}`;
    const labels = { app: 'docker-registry', mirror };
    await createMirror(admin, mirror, { upstreamUrl: 'legacy.example.com' });
    // Two of the original's objects: its Service and a cache pod (no kubelet here: it stays Pending).
    await admin.core.createNamespacedService({
      namespace,
      fieldManager: 'mirror-operator',
      body: {
        metadata: { name: full, namespace, labels },
        spec: { selector: labels, ports: [{ name: 'https', port: 443, targetPort: 'https' }] },
      },
    });
    // The output namespace as `controller-manifests --takeover` makes it: Pod Security `privileged`
    // enforced for the original's pods, which do not meet `restricted` (this one would be refused).
    const takeoverNamespaces = objectsOf(
      controllerManifests({
        image: 'registry.example.com/mirror-synth:0.1.0',
        namespace,
        takeover: true,
        log: () => undefined,
      }),
    ).filter((o) => o.kind === 'Namespace' && o.metadata.name === namespace);
    expect(takeoverNamespaces[0].metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
      'pod-security.kubernetes.io/warn': 'restricted',
    });
    for (const o of takeoverNamespaces)
      await admin.objects.patch(o, undefined, undefined, 'rbac-test', true, PatchStrategy.ServerSideApply);
    await admin.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: `${full}-0`, namespace, labels: { ...labels, component: 'registry' } },
        spec: {
          serviceAccountName: CONTROLLER_NAME,
          automountServiceAccountToken: false,
          containers: [{ name: 'registry', image: 'nginx:1.22.1-alpine' }],
        },
      },
    });
    const reason = async (r: string) => (await stalled(mirror))?.reason === r || undefined;
    await waitFor(`${mirror} to stall with TakeoverDisabled`, () => reason('TakeoverDisabled'));
    expect((await stalled(mirror))!.message).toContain('mirror-synth controller-manifests --takeover');

    // The takeover on, the RBAC still without it: the controller says what to apply.
    await ctl?.stop();
    ctl = await startController({
      kubeConfig: sa,
      namespace,
      secondsBetweenStreams: 1,
      leaderElection: true,
      logDestination: logs,
      takeover: true,
    });
    await waitFor(`${mirror} to stall with TakeoverForbidden`, () => reason('TakeoverForbidden'));
    expect((await stalled(mirror))!.message).toMatch(
      /needs to delete its pods and claims.*controller-manifests --takeover/,
    );
    expect((await admin.core.listNamespacedPod({ namespace, labelSelector: `mirror=${mirror}` })).items).toHaveLength(
      1,
    );

    // controller-manifests --takeover grants it, and the takeover resumes.
    for (const o of objectsOf(
      controllerManifests({
        image: 'registry.example.com/mirror-synth:0.1.0',
        namespace,
        takeover: true,
        log: () => undefined,
      }),
    ).filter((o) => o.kind === 'Role')) {
      await admin.objects.patch(o, undefined, undefined, 'rbac-test', true, PatchStrategy.ServerSideApply);
    }
    await waitFor(`${mirror} to take over`, async () => {
      ctl!.resync();
      const m = await getMirror(admin, mirror);
      return condition(m, 'Ready')?.reason === 'TakingOver' || undefined;
    });
    await waitFor(
      `the original's pod to be deleted`,
      async () =>
        (await admin.core.listNamespacedPod({ namespace, labelSelector: `mirror=${mirror}` })).items.length === 0 ||
        undefined,
    );
  });

  it('moves the node agent an earlier version left in the output namespace into the node agent namespace', async () => {
    const agentNamespace = `${namespace}-node`;
    const logsBefore = logs.lines.length;
    await createMirror(admin, 'moved', { upstreamUrl: 'moved.example.com' });
    await waitFor('mirror moved applied', () => applied('moved'));
    const uid = (await getMirror(admin, 'moved')).metadata!.uid!;
    // What an earlier version applied: the node agent's ConfigMap and DaemonSet in the output
    // namespace, with the managed labels and the mirror as controlling owner.
    const owner = { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', name: 'moved', uid, controller: true };
    const old = synthesizeMirror(
      { name: 'moved', source: 'test', spec: { upstreamUrl: 'moved.example.com' } },
      { namespace, nodeAgentNamespace: namespace },
    ).filter((o) => o.kind === 'DaemonSet' || o.metadata.name === 'registry-mirror-moved-agent');
    expect(old.map((o) => `${o.kind}/${o.metadata.namespace}`)).toEqual([
      `ConfigMap/${namespace}`,
      `DaemonSet/${namespace}`,
    ]);
    for (const o of old) {
      const body = { ...o, metadata: { ...o.metadata, ownerReferences: [owner] } };
      await admin.objects.patch(
        loadYaml<KubernetesObject>(JSON.stringify(body)),
        undefined,
        undefined,
        'mirror-synth',
        true,
        PatchStrategy.ServerSideApply,
      );
    }
    const selector = { labelSelector: 'mirror=moved' };
    const agentsIn = async (ns: string) =>
      (await admin.apps.listNamespacedDaemonSet({ namespace: ns, ...selector })).items.length +
      (await admin.core.listNamespacedConfigMap({ namespace: ns, ...selector })).items.filter(
        (cm) => cm.metadata?.name === 'registry-mirror-moved-agent',
      ).length;
    await waitFor('the old node agent pruned from the output namespace', async () => (await agentsIn(namespace)) === 0);
    expect(await agentsIn(agentNamespace)).toBe(2);
    expect((await admin.apps.listNamespacedStatefulSet({ namespace, ...selector })).items).toHaveLength(1);
    expect(logs.lines.slice(logsBefore).join('\n')).not.toMatch(/forbidden/i);
  });

  it('may manage only the node agents in the node agent namespace', async () => {
    const review = sa.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, resource: string, group = '') =>
      (
        await review.createSelfSubjectAccessReview({
          body: { spec: { resourceAttributes: { verb, group, resource, namespace: `${namespace}-node` } } },
        })
      ).status!.allowed;
    expect(await can('patch', 'daemonsets', 'apps')).toBe(true);
    expect(await can('delete', 'configmaps')).toBe(true);
    expect(await can('get', 'secrets')).toBe(false);
    expect(await can('patch', 'statefulsets', 'apps')).toBe(false);
    expect(await can('create', 'leases', 'coordination.k8s.io')).toBe(false);
  });

  it('may not update Secrets, nor read Secrets outside the output namespace', async () => {
    const review = sa.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, ns = namespace) =>
      (
        await review.createSelfSubjectAccessReview({
          body: { spec: { resourceAttributes: { verb, resource: 'secrets', namespace: ns } } },
        })
      ).status!.allowed;
    expect(
      Object.fromEntries(
        await Promise.all(
          ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'].map(async (v) => [v, await can(v)] as const),
        ),
      ),
    ).toEqual({ get: true, list: true, watch: true, create: true, update: false, patch: true, delete: true });
    expect(await can('get', 'default')).toBe(false);
    // The allowlist ConfigMap it watches (by name) to follow an edit without a restart.
    for (const verb of ['get', 'list', 'watch'])
      expect(
        (
          await review.createSelfSubjectAccessReview({
            body: {
              spec: {
                resourceAttributes: { verb, resource: 'configmaps', namespace, name: 'mirror-synth-allowlist' },
              },
            },
          })
        ).status!.allowed,
      ).toBe(true);
  });
});
