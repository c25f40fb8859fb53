// The controller chart (charts/mirror-synth/) installed with the real Helm on the real node
// (test/support/components/node.ts), as a platform team would: `helm install` brings up the CRD and the
// controller, a RegistryMirror created with the API goes Ready and a Pod pulls through it; `helm
// upgrade` rolls only what the changed values reach; `helm uninstall` leaves the node's containerd
// config as it was before the install, and nothing of mirror-synth's in the cluster but the CRD
// (kept by Helm's convention) and the user's own RegistryMirror.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  CoordinationV1Api,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CONTROLLER_CHART_DIR } from '../../src/synth/controller-chart.js';
import { type NodeCluster, nodeClusterUnavailable } from '../support/components/node.js';
import { CONTROLLER_IMAGE, runnableTestImage } from '../support/fixtures/stand-in-images.js';
import { type Clients, clients, condition, createMirror, getMirror, GROUP } from '../support/kube/cluster.js';
import {
  type NodeClients,
  nodeClients,
  type NodeUpstream,
  pullThroughMirror,
  startNodeUpstream,
  startStandInNode,
} from '../support/kube/node-workloads.js';
import { repoRoot } from '../support/primitives/repo-root.js';
import { ensureTool } from '../support/primitives/tools.js';
import { waitFor } from '../support/primitives/wait.js';

const exec = promisify(execFile);
const UPSTREAM = 'upstream.test';
const NAME = 'charted';
const NAMESPACE = 'kube-extra';
const AGENT_NAMESPACE = 'kube-extra-node';
const RELEASE = 'mirror-synth';
const CONTROLLER = 'app.kubernetes.io/name=mirror-synth,app.kubernetes.io/component=controller';
/** The node's own registry config for the upstream, there before the chart: uninstall must give it back. */
const NODE_OWN_HOSTS_TOML = `# the node's own config, not mirror-synth's\nserver = "https://${UPSTREAM}"\n`;
const unavailable = await nodeClusterUnavailable();

describe.skipIf(unavailable !== undefined)('the controller chart with helm on a real node', () => {
  let node: NodeCluster;
  let k: NodeClients;
  let c: Clients;
  let upstream: NodeUpstream;
  let helm: string;
  let home: string;

  const chart = join(repoRoot, CONTROLLER_CHART_DIR);
  const hostsToml = () => readFile(join(node.certsDir, UPSTREAM, 'hosts.toml'), 'utf8').catch(() => undefined);
  const runHelm = async (...args: string[]) =>
    (
      await exec(helm, [...args, '--kubeconfig', node.kubeconfigPath], {
        env: { ...process.env, HOME: home },
        maxBuffer: 16 * 1024 * 1024,
      })
    ).stdout;
  const controllerPod = async () =>
    (await k.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: CONTROLLER })).items.filter(
      (p) => !p.metadata?.deletionTimestamp,
    );
  /** resourceVersion of every object the release holds, by kind/namespace/name. */
  const releaseVersions = async () => {
    const manifest = await runHelm('get', 'manifest', RELEASE);
    const versions = new Map<string, string>();
    for (const doc of manifest.split(/^---$/m)) {
      const kind = /^kind: (\S+)$/m.exec(doc)?.[1];
      const name = /^ {2}name: (\S+)$/m.exec(doc)?.[1];
      if (!kind || !name) continue;
      const namespace = /^ {2}namespace: (\S+)$/m.exec(doc)?.[1];
      const apiVersion = /^apiVersion: (\S+)$/m.exec(doc)![1];
      const live = await k.objects.read({ apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) } });
      versions.set(`${kind}/${namespace ?? ''}/${name}`, live.metadata!.resourceVersion!);
    }
    return versions;
  };
  /** What a mirror's pods run: the cache StatefulSet's and node agent DaemonSet's generation, their pods' uids. */
  const mirrorState = async () => {
    const sts = await k.apps.readNamespacedStatefulSet({ name: `registry-mirror-${NAME}`, namespace: NAMESPACE });
    const ds = await k.apps.readNamespacedDaemonSet({ name: `registry-mirror-${NAME}`, namespace: AGENT_NAMESPACE });
    const uids = async (namespace: string) =>
      (await k.core.listNamespacedPod({ namespace, labelSelector: `mirror=${NAME}` })).items
        .map((p) => p.metadata!.uid!)
        .sort();
    return {
      statefulSet: sts.metadata!.generation,
      daemonSet: ds.metadata!.generation,
      cachePods: await uids(NAMESPACE),
      agentPods: await uids(AGENT_NAMESPACE),
    };
  };
  /** The controller pod `name` holds the Lease: it has listed every mirror and reconciled it. */
  const leaderIs = (name: string) =>
    waitFor(
      `controller ${name} to hold the Lease`,
      async () => {
        const lease = await k.kc
          .makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ name: 'mirror-synth-controller', namespace: NAMESPACE })
          .catch(() => undefined);
        return lease?.spec?.holderIdentity?.startsWith(name) ? true : undefined;
      },
      120_000,
      500,
    );
  const ready = () =>
    waitFor(
      `RegistryMirror ${NAME} to be Ready`,
      async () => (condition(await getMirror(c, NAME), 'Ready')?.status === 'True' ? true : undefined),
      240_000,
      500,
    );

  beforeAll(async () => {
    helm = await ensureTool('helm');
    home = await mkdtemp(join(tmpdir(), 'real-node-chart-'));
    node = await startStandInNode({ hostNames: [UPSTREAM] });
    k = nodeClients(node);
    c = clients(node.kubeconfigPath);
    upstream = await startNodeUpstream(node, UPSTREAM);
    await mkdir(join(node.certsDir, UPSTREAM), { recursive: true });
    await writeFile(join(node.certsDir, UPSTREAM, 'hosts.toml'), NODE_OWN_HOSTS_TOML);
  });

  afterAll(async () => {
    await node?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('helm install: the CRD and the controller come up, a RegistryMirror goes Ready and a Pod pulls through it', async () => {
    // the stand-in controller image is mirror-synth.test/mirror-synth:<package version>, the chart's appVersion
    const repository = CONTROLLER_IMAGE.slice(0, CONTROLLER_IMAGE.lastIndexOf(':'));
    const out = await runHelm(
      'install',
      RELEASE,
      chart,
      '--set',
      `image.repository=${repository}`,
      '--wait',
      '--timeout',
      '4m',
    );
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain('kubectl wait --for=condition=Ready registrymirror/quay'); // NOTES.txt: what to do next
    const [pod] = await controllerPod();
    expect(pod.spec!.containers[0].image).toBe(CONTROLLER_IMAGE);

    await createMirror(c, NAME, {
      upstreamUrl: UPSTREAM,
      volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
    });
    await ready();
    const image = await runnableTestImage({ repository: 'team/charted', tag: '1.0' });
    await upstream.client.push(image);
    const pulled = await pullThroughMirror({
      core: k.core,
      upstream,
      hostsToml,
      pod: 'through-chart',
      image: image.refByTag(UPSTREAM),
      namespace: NAMESPACE,
      mirror: NAME,
    });
    expect(pulled.blobRequests).toBeGreaterThan(0);
    expect(pulled.fetchers).toEqual(new Set([pulled.cacheIP]));
  });

  it('helm upgrade rolls what the changed values reach and nothing else', async () => {
    // resources: the controller's Deployment alone, and no pod of the mirror
    const versions = await releaseVersions();
    const mirror = await mirrorState();
    const [oldPod] = await controllerPod();
    await runHelm(
      'upgrade',
      RELEASE,
      chart,
      '--reuse-values',
      '--set',
      'resources.limits.memory=300Mi',
      '--wait',
      '--timeout',
      '4m',
    );
    const after = await releaseVersions();
    const changed = [...after].filter(([key, v]) => versions.get(key) !== v).map(([key]) => key);
    expect(changed).toEqual([`Deployment/${NAMESPACE}/mirror-synth-controller`]);
    const pods = await waitFor(
      'the old controller pod to be gone',
      async () => {
        const now = await controllerPod();
        return now.length === 1 && now[0].metadata!.uid !== oldPod.metadata!.uid ? now : undefined;
      },
      120_000,
      500,
    );
    expect(pods[0].spec!.containers[0].resources?.limits).toEqual({ memory: '300Mi' });
    // the new controller has reconciled the mirror (it holds the Lease and the mirror is Ready) and changed nothing of it
    await leaderIs(pods[0].metadata!.name!);
    await ready();
    expect(await mirrorState()).toEqual(mirror);

    // the allowlist: its ConfigMap alone; the controller reads it live, so no pod rolls
    const before2 = await releaseVersions();
    await runHelm(
      'upgrade',
      RELEASE,
      chart,
      '--reuse-values',
      '--set',
      `allowlist.allowedUpstreams={${UPSTREAM}}`,
      '--wait',
    );
    const changed2 = [...(await releaseVersions())].filter(([key, v]) => before2.get(key) !== v).map(([key]) => key);
    expect(changed2).toEqual([`ConfigMap/${NAMESPACE}/mirror-synth-allowlist`]);
    expect((await controllerPod()).map((p) => p.metadata!.uid)).toEqual([pods[0].metadata!.uid]);
    await ready();
    expect(await mirrorState()).toEqual(mirror);
  });

  it("helm uninstall gives the node its own containerd config back and leaves only the CRD and the user's RegistryMirror", async () => {
    expect(await hostsToml()).toContain('[host.'); // the mirror's, while installed
    const out = await runHelm('uninstall', RELEASE, '--wait', '--timeout', '4m');
    expect(out).toContain(`release "${RELEASE}" uninstalled`);
    await waitFor(
      'the namespaces to be gone',
      async () => {
        const names = (await k.core.listNamespace()).items.map((n) => n.metadata!.name);
        return names.includes(NAMESPACE) || names.includes(AGENT_NAMESPACE) ? undefined : true;
      },
      180_000,
      500,
    );
    // the node agent put back the file it found, and left nothing of its own
    expect(await hostsToml()).toBe(NODE_OWN_HOSTS_TOML);
    expect(await readdir(node.certsDir)).toEqual([UPSTREAM]);
    expect(await readdir(join(node.certsDir, UPSTREAM))).toEqual(['hosts.toml']);

    const managed = 'app.kubernetes.io/managed-by=mirror-synth';
    const rbac = k.kc.makeApiClient(RbacAuthorizationV1Api);
    const admission = k.kc.makeApiClient(AdmissionregistrationV1Api);
    expect((await rbac.listClusterRole({ labelSelector: managed })).items).toEqual([]);
    expect((await rbac.listClusterRoleBinding({ labelSelector: managed })).items).toEqual([]);
    expect((await rbac.listRoleForAllNamespaces({ labelSelector: managed })).items).toEqual([]);
    expect((await rbac.listRoleBindingForAllNamespaces({ labelSelector: managed })).items).toEqual([]);
    expect((await admission.listValidatingAdmissionPolicy({ labelSelector: managed })).items).toEqual([]);
    expect((await admission.listValidatingAdmissionPolicyBinding({ labelSelector: managed })).items).toEqual([]);
    expect((await k.core.listNamespace({ labelSelector: managed })).items).toEqual([]);
    expect((await k.core.listPodForAllNamespaces({ labelSelector: `mirror=${NAME}` })).items).toEqual([]);
    expect((await k.core.listSecretForAllNamespaces({ labelSelector: 'owner=helm' })).items).toEqual([]);
    // Helm keeps what crds/ installed, and the RegistryMirror is the user's: a new install picks it up again
    const crd = await k.kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: `${GROUP.plural}.${GROUP.group}` });
    expect(crd.metadata?.name).toBe('registrymirrors.k8s.osp.tech');
    expect((await getMirror(c, NAME)).metadata?.name).toBe(NAME);
  });
});

if (unavailable) {
  describe('the controller chart with helm on a real node', () => {
    it.skip(unavailable, () => {});
  });
}
