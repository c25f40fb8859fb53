// The mission on a real node: dist/ as `kubectl apply -k` applies it to a single-node cluster
// (test/support/components/node.ts: kubelet, containerd's CRI, kube-proxy, the CNI bridge, CoreDNS), whose
// upstream is a real Distribution on the node reached by name, and Pods whose images exist only
// upstream. Nothing is simulated: the StatefulSet is Ready through its own probes, the
// DaemonSet's agent writes the node's certs.d, and the kubelet pulls through the Service's
// ClusterIP. The images the synthesized Pods run are stand-ins built from the real binaries
// (test/support/fixtures/stand-in-images.ts; CONTRIBUTING.md says what that does not prove).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { fillTransfers } from '../support/components/fill.js';
import { type NodeCluster, nodeClusterUnavailable } from '../support/components/node.js';
import type { TestImage } from '../support/fixtures/images.js';
import { CONTROLLER_IMAGE } from '../support/fixtures/stand-in-images.js';
import {
  applyObjects,
  deletePod,
  isDistribution,
  keepKilling,
  type NodeClients,
  type NodeUpstream,
  readyPod,
  runPod,
} from '../support/kube/node-workloads.js';
import { waitFor } from '../support/primitives/wait.js';
import { type RealNode, realNodeTest } from '../support/suites/real-node.js';

const UPSTREAM = 'upstream.test';
const NAME = 'e2e';
const NAMESPACE = 'kube-extra';
const CACHE = `mirror=${NAME},app.kubernetes.io/component=cache`;
const AGENT = `mirror=${NAME},app.kubernetes.io/component=node-agent`;
/** dist/'s node agent namespace: Pod Security privileged; the output namespace is restricted. */
const AGENT_NAMESPACE = `${NAMESPACE}-node`;
const unavailable = await nodeClusterUnavailable();
const test = realNodeTest({ upstreamHost: UPSTREAM });

describe.skipIf(unavailable !== undefined)(
  'the mission on a real node: dist/ applied, Pods pulled through the mirror',
  () => {
    let realNode: RealNode;
    let node: NodeCluster;
    let k: NodeClients;
    let upstream: NodeUpstream;
    /** The image newImage() made last. */
    let last: TestImage;

    /** A new image on the upstream only: a busybox layer and a layer of its own. */
    async function newImage(): Promise<TestImage> {
      last = await realNode.newImage('team/');
      return last;
    }

    async function scaleCache(replicas: number): Promise<void> {
      const name = `registry-mirror-${NAME}`;
      await k.apps.replaceNamespacedStatefulSetScale({
        name,
        namespace: NAMESPACE,
        body: { metadata: { name, namespace: NAMESPACE }, spec: { replicas } },
      });
    }

    const cachePods = async () =>
      (await k.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: CACHE })).items;

    test.beforeAll(async ({ realNode: booted, synthesize }) => {
      realNode = booted;
      ({ node, k, upstream } = booted);
      // dist/ for one mirror of the upstream, as a user's repository has it, applied as `kubectl apply -k`
      const { objects } = await synthesize(
        NAME,
        {
          upstreamUrl: UPSTREAM,
          // the streaming fill: the cache pod runs the mirror-synth image (the controller's) too
          fill: 'streaming',
          volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
        },
        // the fill image named as a platform names it: the image the node has (no default exists)
        { fillImage: CONTROLLER_IMAGE },
      );
      await applyObjects(k.objects, objects, 'mirror-synth-real-node-test');
    });

    it('the cache becomes Ready through its own probes, and the node agent writes the node certs.d', async () => {
      const pod = await readyPod(k.core, NAMESPACE, CACHE, 60_000);
      expect(pod.status?.containerStatuses?.map((c) => [c.name, c.ready])).toEqual(
        expect.arrayContaining([
          ['front', true],
          ['registry', true],
          ['fill', true],
        ]),
      );
      const hostsToml = await waitFor(
        "the node agent to write the node's hosts.toml",
        async () => {
          const text = await readFile(join(node.certsDir, UPSTREAM, 'hosts.toml'), 'utf8').catch(() => '');
          return text.includes('[host.') ? text : undefined;
        },
        120_000,
        500,
      );
      const service = await k.core.readNamespacedService({ name: `registry-mirror-${NAME}`, namespace: NAMESPACE });
      expect(hostsToml).toContain(`${service.spec?.clusterIP}:5000`);
      expect(hostsToml).toContain(`server = "https://${UPSTREAM}"`);
    });

    it('the node agent runs in its own namespace; the output namespace refuses a privileged Pod', async () => {
      const agents = await readyPod(k.core, AGENT_NAMESPACE, AGENT, 60_000);
      expect(agents.metadata?.namespace).toBe(AGENT_NAMESPACE);
      expect((await k.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: AGENT })).items).toEqual([]);
      const refusal = (spec: object) =>
        k.core
          .createNamespacedPod({
            namespace: NAMESPACE,
            body: { metadata: { name: 'root-on-the-node' }, spec } as never,
          })
          .then(
            () => 'admitted',
            // the API server's Status message, as kubectl prints it
            (e: unknown) => (JSON.parse(String((e as { body?: unknown }).body)) as { message: string }).message,
          );
      // The node agent's own pod (root, a hostPath onto the node), and a plainly privileged one.
      const ds = await k.apps.readNamespacedDaemonSet({ name: `registry-mirror-${NAME}`, namespace: AGENT_NAMESPACE });
      expect(await refusal(ds.spec!.template.spec!)).toMatch(/violates PodSecurity "restricted:latest".*hostPath/s);
      const image = ds.spec!.template.spec!.containers[0].image;
      expect(await refusal({ containers: [{ name: 'root', image, securityContext: { privileged: true } }] })).toMatch(
        /violates PodSecurity "restricted:latest".*privileged/s,
      );
      // The cache pod, in that namespace, was admitted and is Ready (the test above).
      expect((await cachePods()).map((p) => p.status?.phase)).toEqual(['Running']);
    });

    it('a Pod whose image exists only upstream starts, pulled through the mirror', async () => {
      const image = await newImage();
      const before = (await upstream.requests()).length;
      const pod = await runPod(k.core, 'first', image.refByTag(UPSTREAM));
      expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(image.digest);

      // the upstream served it to the cache pod, and nothing to the node itself
      const [cache] = await cachePods();
      const served = (await upstream.requests())
        .slice(before)
        .filter((r) => r.path.startsWith(`/v2/${image.repository}/`));
      expect(served.filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).length).toBeGreaterThan(0);
      expect(new Set(served.map((r) => r.remote))).toEqual(new Set([cache.status?.podIP]));
      // and the front logged the node's pulls of it
      const frontLog = await k.core.readNamespacedPodLog({
        name: cache.metadata!.name!,
        namespace: NAMESPACE,
        container: 'front',
      });
      expect(frontLog).toContain(`/v2/${image.repository}/manifests/1.0`);
      expect(frontLog).toContain(`/v2/${image.repository}/blobs/sha256:`);
      // through mirror-synth fill, which checked each blob's digest before its last byte went out
      const own = image.platforms[0].layers.at(-1)!; // the busybox layer below it may be cached already
      const wanted = `/v2/${image.repository}/blobs/${own.digest}`;
      // (the kubelet's copy of the container log can trail the line by a moment)
      const done = await waitFor(
        "the fill's log of the layer's transfer",
        async () => {
          const fillLog = await k.core.readNamespacedPodLog({
            name: cache.metadata!.name!,
            namespace: NAMESPACE,
            container: 'fill',
          });
          const uris = fillTransfers(fillLog.split('\n')).map((t) => t.uri);
          return uris.includes(wanted) ? uris : undefined;
        },
        30_000,
        500,
      ).catch(() => [] as string[]);
      expect(done).toContain(wanted);
    });

    it('a second Pod of that image on a fresh content store is served by the cache: the upstream sends no blob', async () => {
      const ref = last.refByTag(UPSTREAM);
      await deletePod(k.core, 'first');
      await node.ctr(['images', 'rm', '--sync', ref]); // the node forgets it, and its blobs
      const before = (await upstream.requests()).length;
      await runPod(k.core, 'second', ref);
      const served = (await upstream.requests()).slice(before);
      expect(served.filter((r) => r.path.includes('/blobs/'))).toEqual([]);
      expect(served.reduce((sum, r) => sum + r.bytes, 0)).toBeLessThan(8192); // at most the tag's lookup
      await deletePod(k.core, 'second');
    });

    it('with the cache pod gone, a Pod of another upstream-only image still starts, through fallback', async () => {
      const image = await newImage();
      await scaleCache(0);
      await waitFor(
        'the cache pod to be deleted',
        async () => ((await cachePods()).length === 0 ? true : undefined),
        60_000,
        250,
      );
      const before = (await upstream.requests()).length;
      await runPod(k.core, 'fallback', image.refByTag(UPSTREAM));
      // the node fetched it itself: the upstream saw the node's address
      const served = (await upstream.requests()).slice(before).filter((r) => r.path.includes('/blobs/'));
      expect(served.length).toBeGreaterThan(0);
      expect(new Set(served.map((r) => r.remote))).toEqual(new Set([node.nodeIp]));
      await deletePod(k.core, 'fallback');
      await scaleCache(1);
      await readyPod(k.core, NAMESPACE, CACHE);
    });

    it("with the cache pod's Distribution failing, a Pod of another upstream-only image still starts, through fallback", async () => {
      const [cache] = await cachePods();
      // SIGKILL the cache pod's Distribution whenever the kubelet restarts it. Between a restart
      // and the next kill (at most one 200 ms poll) Distribution serves, and a pull in that moment
      // may rightly go through it. So each try pulls a new image right after a kill, while the
      // kubelet backs off, and counts only if no restart fell inside the pull: that pull must have
      // been served to the node by the upstream itself.
      const killer = keepKilling(node, isDistribution);
      try {
        for (let attempt = 1; ; attempt++) {
          const image = await newImage();
          const seen = killer.kills();
          await waitFor('a kill of Distribution', () => (killer.kills() > seen ? true : undefined), 120_000, 50);
          const kills = killer.kills();
          const before = (await upstream.requests()).length;
          await runPod(k.core, 'registry-failing', image.refByTag(UPSTREAM));
          await new Promise((ok) => setTimeout(ok, 2000)); // a restart during the pull is killed by now
          const restarted = killer.kills() !== kills;
          const served = (await upstream.requests()).slice(before).filter((r) => r.path.includes('/blobs/'));
          await deletePod(k.core, 'registry-failing');
          if (restarted && attempt < 4) continue;
          expect(restarted, 'Distribution was restarted during each of 4 pulls').toBe(false);
          expect(served.length).toBeGreaterThan(0);
          expect(new Set(served.map((r) => r.remote))).toEqual(new Set([node.nodeIp]));
          break;
        }
      } finally {
        await killer.stop();
      }
      // a new cache pod, without the old one's crash-loop back-off
      await k.core.deleteNamespacedPod({ name: cache.metadata!.name!, namespace: NAMESPACE });
      await readyPod(k.core, NAMESPACE, CACHE);
    });
  },
);

if (unavailable) {
  describe('the mission on a real node', () => {
    it.skip(unavailable, () => {});
  });
}
