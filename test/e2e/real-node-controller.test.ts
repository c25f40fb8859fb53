// The controller as users run it: a Deployment of the image `npm run build:image` makes, with the
// RBAC `controller-manifests` prints, on the real node (test/support/components/node.ts). A RegistryMirror
// created with kubectl (with the streaming fill, which runs from the controller's own image) says
// what it waits for and goes Ready only once its cache pod really serves through the Service, a
// Pod then pulls through it, a crash-looping cache container's reason is the kubelet's own, and
// deleting the RegistryMirror restores the node's containerd config. Nothing stands in for the
// kubelet or the workload controllers here.
import { readdir } from 'node:fs/promises';

import { describe, expect, it } from 'vitest';

import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { type NodeCluster, nodeClusterUnavailable } from '../support/components/node.js';
import { CONTROLLER_IMAGE } from '../support/fixtures/stand-in-images.js';
import { type Clients, condition, createMirror, deleteMirror, getMirror } from '../support/kube/cluster.js';
import {
  applyObjects,
  isDistribution,
  keepKilling,
  type NodeClients,
  type NodeUpstream,
  objectsOf,
  pullThroughMirror,
  readyPod,
  serviceAnswers,
} from '../support/kube/node-workloads.js';
import { waitFor } from '../support/primitives/wait.js';
import { type RealNode, realNodeTest } from '../support/suites/real-node.js';

const UPSTREAM = 'upstream.test';
const NAME = 'ctl';
const NAMESPACE = 'kube-extra';
const unavailable = await nodeClusterUnavailable();
const test = realNodeTest({ upstreamHost: UPSTREAM, crd: true });

describe.skipIf(unavailable !== undefined)('the controller as a Deployment on a real node', () => {
  let node: NodeCluster;
  let k: NodeClients;
  let c: Clients;
  let upstream: NodeUpstream;
  let realNode: RealNode;

  const hostsToml = () => realNode.hostsToml();

  test.beforeAll(async ({ realNode: booted }) => {
    realNode = booted;
    ({ node, k, c, upstream } = booted);
    let yaml = '';
    controllerManifests({ image: CONTROLLER_IMAGE, log: (text) => (yaml += text) });
    await applyObjects(k.objects, objectsOf(yaml), 'mirror-synth-real-node-test');
    await readyPod(
      k.core,
      NAMESPACE,
      'app.kubernetes.io/name=mirror-synth,app.kubernetes.io/component=controller',
      120_000,
    ).catch(async (err: Error) => {
      const pods = await k.core.listNamespacedPod({ namespace: NAMESPACE });
      throw new Error(
        `${err.message}\n${JSON.stringify(
          pods.items.map((p) => p.status),
          null,
          1,
        )}`,
      );
    });
  });

  it('a RegistryMirror created with kubectl goes Ready only once its cache pod serves through the Service', async () => {
    expect(await hostsToml()).toBeUndefined(); // the node sends nothing anywhere yet
    await createMirror(c, NAME, {
      upstreamUrl: UPSTREAM,
      // the streaming fill: its image is the controller's own (controller-manifests' FILL_IMAGE), the
      // only mirror-synth image this node has
      fill: 'streaming',
      volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
    });
    // the API equivalent of `kubectl wait --for=condition=Ready`, checking the Service the moment it
    // says so, and keeping what the mirror said while it waited: the real controllers' progress
    const said: { reason?: string; message?: string }[] = [];
    const readyAt = await waitFor(
      `RegistryMirror ${NAME} to be Ready`,
      async () => {
        const m = await getMirror(c, NAME);
        const ready = condition(m, 'Ready');
        if (ready && ready.status !== 'True' && said.at(-1)?.reason !== ready.reason) said.push(ready);
        return ready?.status === 'True' ? m : undefined;
      },
      240_000,
      200,
    );
    expect(said.find((r) => r.reason === 'CacheNotReady')?.message).toContain(`StatefulSet registry-mirror-${NAME}`);
    expect(condition(readyAt, 'Ready')).toMatchObject({ status: 'True', reason: 'Serving' });
    expect(condition(readyAt, 'Reconciling')).toMatchObject({ status: 'False' });
    const sts = await k.apps.readNamespacedStatefulSet({ name: `registry-mirror-${NAME}`, namespace: NAMESPACE });
    expect(sts.spec?.template.spec?.containers.find((x) => x.name === 'fill')?.image).toBe(CONTROLLER_IMAGE);
    // Ready follows the pods' readiness; kube-proxy programs the ClusterIP's rules when it sees the
    // EndpointSlice change, a sync period later. A user's `curl` right after `kubectl wait` works
    // within those few seconds, never needing the cache to settle any further.
    const code = await serviceAnswers(node, k.core, `registry-mirror-${NAME}`, NAMESPACE, {
      timeoutMs: 10_000,
      why: `once ${NAME} said Ready`,
    });
    expect(code).toBe('200');

    // a Pod of an upstream-only image then pulls through it
    const image = await realNode.newImage('team/ctl');
    const pulled = await pullThroughMirror({
      core: k.core,
      upstream,
      hostsToml,
      pod: 'through-controller',
      image: image.refByTag(UPSTREAM),
      namespace: NAMESPACE,
      mirror: NAME,
    });
    expect(pulled.blobRequests).toBeGreaterThan(0);
    expect(pulled.fetchers).toEqual(new Set([pulled.cacheIP]));
  });

  it('gives the reason of a crash-looping cache container, as the kubelet reports it, and recovers', async () => {
    const [cache] = (
      await k.core.listNamespacedPod({
        namespace: NAMESPACE,
        labelSelector: `mirror=${NAME},app.kubernetes.io/component=cache`,
      })
    ).items;
    const pod = cache.metadata!.name!;
    // SIGKILL the cache pod's Distribution whenever the kubelet restarts it, until it backs off
    const killer = keepKilling(node, isDistribution);
    try {
      const m = await waitFor(
        `${NAME} to say its cache container crash-loops`,
        async () => {
          const x = await getMirror(c, NAME);
          return condition(x, 'Ready')?.reason === 'CrashLoopBackOff' ? x : undefined;
        },
        120_000,
        250,
      );
      expect(condition(m, 'Ready')).toMatchObject({ status: 'False' });
      expect(condition(m, 'Ready')!.message).toContain(`Pod ${pod}: container registry is in CrashLoopBackOff`);
      const warnings = await waitFor(
        `the CrashLoopBackOff Event of ${NAME}`,
        async () => {
          const list = await k.core.listNamespacedEvent({
            namespace: 'default',
            fieldSelector: `involvedObject.name=${NAME},type=Warning`,
          });
          return list.items.some((e) => e.reason === 'CrashLoopBackOff') ? list : undefined;
        },
        60_000,
        250,
      );
      expect(warnings.items.map((e) => e.reason)).toContain('CrashLoopBackOff');
    } finally {
      await killer.stop();
    }
    // a new cache pod, without the old one's back-off: the mirror is Ready again by itself
    await k.core.deleteNamespacedPod({ name: pod, namespace: NAMESPACE });
    await waitFor(
      `${NAME} to be Ready again`,
      async () => (condition(await getMirror(c, NAME), 'Ready')?.status === 'True' ? true : undefined),
      180_000,
      500,
    );
  });

  it("deleting the RegistryMirror restores the node's containerd config", async () => {
    await deleteMirror(c, NAME);
    await waitFor(
      "the node agent to remove the node's hosts.toml",
      async () => ((await hostsToml()) === undefined ? true : undefined),
      120_000,
      500,
    );
    expect(await readdir(node.certsDir)).toEqual([]);
    await waitFor(
      "the mirror's DaemonSet to be gone",
      async () =>
        (await k.apps.listNamespacedDaemonSet({ namespace: `${NAMESPACE}-node` })).items.length === 0
          ? true
          : undefined,
      60_000,
      500,
    );
  });
});

if (unavailable) {
  describe('the controller as a Deployment on a real node', () => {
    it.skip(unavailable, () => {});
  });
}
