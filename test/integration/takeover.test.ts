// Taking over from the original mirror-operator, on a control plane of its own that runs the
// StatefulSet and DaemonSet controllers (and the garbage collector), so pods, ordinals, orphaning
// and claims behave as in a cluster. There is no scheduler and no kubelet: a stand-in marks every
// pod Ready as soon as it exists (pod status patched), as a kubelet would once its containers ran.
//
// The original's objects are recreated as it made them (labels app=docker-registry,
// mirror=<name>; ownerReferences to the RegistryMirror without controller=true), in the seed
// README's shape (DaemonSet registry-mirror-<name>, one replica here to exercise the surge) and in
// the later shape (DaemonSet registry-mirror-<name>-utils, an nginx Secret, two replicas).
// Throughout the move a monitor checks, every 100 ms, that the mirror's Service selects a ready
// cache pod whenever one exists.
//
// test/e2e/real-node-takeover.test.ts moves both shapes with the real kubelet, scheduler and
// controllers while a node pulls. This one keeps the stand-in kubelet for what a real node cannot
// be made to do on demand: hold the new node agent un-Ready, to show the original's node agent
// stays until the new one is Ready.
import { setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningController, startController } from '../../src/controller/controller.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import {
  type Clients,
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
  installCrd,
  LogCapture,
  waitForReady,
} from '../support/kube/cluster.js';
import { isReady, legacyLeftovers, legacyMirror, monitorTakeover } from '../support/kube/legacy-mirror.js';
import { waitFor } from '../support/primitives/wait.js';

const own = !process.env.MIRROR_SYNTH_TEST_KUBECONFIG;
const namespace = 'kube-extra';
const mergePatch = setHeaderOptions('Content-Type', 'application/merge-patch+json');
let cp: ControlPlane;
let c: Clients;
let ctl: RunningController | undefined;
let kubelet: { stop: () => Promise<void> } | undefined;
const logs = new LogCapture();

/** While true, the stand-in kubelet leaves the new node agent's pods not ready. */
let holdNodeAgents = false;

/** Stand-in for the kubelet: every pod in the namespace and the node agent namespace is Running and Ready (but see holdNodeAgents). */
function fakeKubelet(): { stop: () => Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const pods = [
          ...(await c.core.listNamespacedPod({ namespace })).items,
          ...(await c.core.listNamespacedPod({ namespace: `${namespace}-node` })).items,
        ];
        for (const p of pods) {
          if (p.metadata?.deletionTimestamp) continue;
          if (holdNodeAgents && p.metadata?.labels?.['app.kubernetes.io/component'] === 'node-agent') continue;
          if ((p.status?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True')) continue;
          const now = new Date();
          await c.core
            .patchNamespacedPodStatus(
              {
                name: p.metadata!.name!,
                namespace: p.metadata!.namespace!,
                body: {
                  status: {
                    phase: 'Running',
                    podIP: '10.0.0.1',
                    conditions: [
                      { type: 'Ready', status: 'True', lastTransitionTime: now },
                      { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
                    ],
                  },
                },
              },
              mergePatch,
            )
            .catch(() => undefined);
        }
      } catch {
        // try again
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

describe.runIf(own)('takeover from mirror-operator', () => {
  beforeAll(async () => {
    cp = await startControlPlane({
      controllers: ['garbagecollector', 'namespace', 'serviceaccount', 'statefulset', 'daemonset', 'pvc-protection'],
    });
    c = clients(cp.kubeconfigPath);
    await installCrd(c);
    await createMirrorNamespaces(c, namespace);
    await c.core.createNode({ body: { metadata: { name: 'node-a', labels: { 'kubernetes.io/hostname': 'node-a' } } } });
    // A Ready node, as its kubelet and the node lifecycle controller would leave it: without the
    // not-ready taint the API server puts on a new node, so both DaemonSets run a pod on it.
    await c.core.patchNode({ name: 'node-a', body: { spec: { taints: [] } } }, mergePatch);
    await c.core.patchNodeStatus(
      {
        name: 'node-a',
        body: {
          status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'stand-in' }] },
        },
      },
      mergePatch,
    );
    kubelet = fakeKubelet();
  });

  afterAll(async () => {
    await ctl?.stop();
    await kubelet?.stop();
    await cp?.stop();
  });

  for (const [shape, replicas] of [
    ['seed', 1],
    ['later', 2],
  ] as const) {
    it(`moves the ${shape} shape over with a ready cache pod behind the Service throughout`, async () => {
      const mirror = `legacy-${shape}`;
      // The original operator ran alone: no mirror-synth controller until its objects exist.
      await ctl?.stop();
      ctl = undefined;
      await createMirror(c, mirror, { upstreamUrl: `${shape}.example.com` }, {});
      await legacyMirror(c, mirror, { namespace, shape, replicas });
      const watch = monitorTakeover(c, namespace, mirror);
      holdNodeAgents = true;
      ctl = await startController({
        kubeConfig: c.kc,
        namespace,
        secondsBetweenStreams: 1,
        leaderElection: false,
        logLevel: 'debug',
        logDestination: logs,
        takeover: true,
      });
      // While the new node agent is not ready, the original's node pod stays, and the mirror says why.
      await waitFor(
        `${mirror} to wait for the new node agent`,
        async () => condition(await getMirror(c, mirror), 'Ready')?.message?.includes('waiting for the new node agent'),
        60_000,
      );
      const originalNodePods = async () =>
        (
          await c.core.listNamespacedPod({ namespace, labelSelector: `mirror=${mirror},component=hostess-certificate` })
        ).items.filter(isReady);
      expect(await originalNodePods()).toHaveLength(1);
      holdNodeAgents = false;
      const m = await waitForReady(c, mirror, 'True', 120_000);
      expect(await originalNodePods()).toHaveLength(0);
      await waitFor(
        `only mirror-synth's objects for ${mirror}`,
        async () => (await legacyLeftovers(c, namespace, mirror)).length === 0 || undefined,
        60_000,
      ).catch(async (e: unknown) => {
        throw new Error(`${String(e)}; left: ${(await legacyLeftovers(c, namespace, mirror)).join(', ')}`);
      });
      const violations = await watch.stop();
      const steps = logs.lines
        .filter((l) => l.includes('"takeover"') && l.includes(mirror))
        .map((l) => (JSON.parse(l) as { step: string }).step);
      console.log(`takeover of ${mirror}: ${steps.join(' -> ')}`);
      // the original's node pod went only after the new node agent was ready on the node
      expect(steps.filter((x) => x.startsWith('delete the original node pod'))).toHaveLength(1);
      expect(watch.samples()).toBeGreaterThan(10);
      expect(violations, violations.slice(0, 5).join('\n')).toEqual([]);
      expect(condition(m, 'Ready')).toMatchObject({ status: 'True', reason: 'Serving' });
      const svc = await c.core.readNamespacedService({ name: `registry-mirror-${mirror}`, namespace });
      expect(svc.spec?.selector).toEqual({ mirror, 'app.kubernetes.io/component': 'cache' });
      expect(svc.spec?.type).toBe('ClusterIP');
      expect(svc.spec?.ports?.map((p) => p.port)).toEqual([5000]);
    });
  }

  it('deletes the cache claims with the mirror', async () => {
    const mirror = 'legacy-later';
    const claims = async () =>
      (await c.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `mirror=${mirror}` })).items;
    await waitFor('the new cache claim', async () => (await claims()).length > 0);
    await deleteMirror(c, mirror);
    await waitFor('the claims to be deleted', async () => (await claims()).length === 0, 60_000);
  });

  it("keeps the new cache's claims of a mirror whose spec.labels says app: docker-registry, and objects of other names", async () => {
    // The user kept the original's label on the mirror: the new children carry app=docker-registry,
    // mirror=<name> too, and so do two objects that are not the original's (other names).
    const mirror = 'legacy-labels';
    const full = `registry-mirror-${mirror}`;
    await ctl?.stop();
    ctl = undefined;
    await createMirror(c, mirror, { upstreamUrl: 'labels.example.com', labels: { app: 'docker-registry' } }, {});
    await legacyMirror(c, mirror, { namespace, shape: 'later', replicas: 2 });
    const labels = { app: 'docker-registry', mirror };
    const notes = await c.core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: `${full}-notes`, namespace, labels }, stringData: { note: 'not the operator’s' } },
    });
    const data = await c.core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name: `data-${full}-0`, namespace, labels },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    const unrelated = [`Secret/${full}-notes`, `PersistentVolumeClaim/data-${full}-0`];
    const from = logs.lines.length;
    ctl = await startController({
      kubeConfig: c.kc,
      namespace,
      secondsBetweenStreams: 1,
      leaderElection: false,
      logLevel: 'debug',
      logDestination: logs,
      takeover: true,
    });
    await waitForReady(c, mirror, 'True', 120_000);
    await waitFor(
      `only mirror-synth's objects and the unrelated ones for ${mirror}`,
      async () =>
        (await legacyLeftovers(c, namespace, mirror)).filter((l) => !unrelated.includes(l)).length === 0 || undefined,
      60_000,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}; left: ${(await legacyLeftovers(c, namespace, mirror)).join(', ')}`);
    });
    const steps = logs.lines
      .slice(from)
      .filter((l) => l.includes('"takeover"') && l.includes(mirror))
      .map((l) => (JSON.parse(l) as { step: string }).step);
    // Only the original's claims (its volumeClaimTemplate image-store) and its Secret went.
    expect(steps.filter((x) => x.startsWith('delete the original claim')).sort()).toEqual([
      `delete the original claim image-store-${full}-0`,
      `delete the original claim image-store-${full}-1`,
    ]);
    expect(steps.filter((x) => x.startsWith('delete the original Secret'))).toEqual([
      `delete the original Secret ${full}-secret`,
    ]);
    const claims = async () =>
      new Map(
        (await c.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `mirror=${mirror}` })).items.map(
          (x) => [x.metadata?.name, x],
        ),
      );
    const cacheClaims = [`cache-${full}-0`]; // one replica by default
    await waitFor(`the new cache claims of ${mirror}`, async () => {
      const m = await claims();
      return cacheClaims.every((n) => m.has(n)) || undefined;
    });
    const byName = await claims();
    for (const n of cacheClaims) {
      expect(byName.get(n)?.metadata?.deletionTimestamp, n).toBeUndefined();
      expect(byName.get(n)?.metadata?.labels).toMatchObject({ app: 'docker-registry', mirror });
    }
    expect(byName.get(`data-${full}-0`)?.metadata?.uid).toBe(data.metadata?.uid);
    const kept = await c.core.readNamespacedSecret({ name: `${full}-notes`, namespace });
    expect(kept.metadata?.uid).toBe(notes.metadata?.uid);
  });

  it('never takes over an object it did not create and that is not the original operator’s', async () => {
    const mirror = 'foreign';
    await c.core.createNamespacedService({
      namespace,
      fieldManager: 'someone',
      body: {
        metadata: { name: `registry-mirror-${mirror}`, namespace },
        spec: { selector: { app: 'something-else' }, ports: [{ port: 80 }] },
      },
    });
    await createMirror(c, mirror, { upstreamUrl: 'foreign.example.com' }, {});
    const m = await waitForReady(c, mirror, 'False', 60_000);
    expect(condition(m, 'Stalled')).toMatchObject({ status: 'True', reason: 'ForeignObject' });
    expect(condition(m, 'Stalled')!.message).toContain(
      `kubectl -n ${namespace} delete service registry-mirror-${mirror}`,
    );
    const svc = await c.core.readNamespacedService({ name: `registry-mirror-${mirror}`, namespace });
    expect(svc.spec?.selector).toEqual({ app: 'something-else' });
  });
});
