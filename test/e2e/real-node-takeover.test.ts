// The takeover from mirror-operator on the real node (test/support/components/node.ts), with the real
// kubelet, scheduler, StatefulSet, DaemonSet and garbage-collector controllers and kube-proxy:
// the original's objects are created as it made them (test/support/kube/legacy-mirror.ts, both
// shapes), the controller moves each mirror over, and all the while the node pulls a new
// upstream-only image every moment through its CRI, as the kubelet does. No pull may fail: each
// is served by a serving cache or falls back to the upstream. Once the mirror is Ready the node's
// pulls go through the new cache.
//
// The original's containers run the busybox stand-in (a shell that sleeps) under the original's
// shape, names and labels: the original never configured containerd (it wrote Docker's /etc/hosts
// entries), so what its pods run does not change what the node pulls through; their readiness,
// ordinals, claims and deletion are the real controllers'.
import { afterAll, describe, expect, it } from 'vitest';

import { NODE_AGENT_IMAGE } from '../../src/construct/images.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import { type NodeCluster, nodeClusterUnavailable } from '../support/components/node.js';
import type { TestImage } from '../support/fixtures/images.js';
import { SLEEP_CMD } from '../support/fixtures/stand-in-images.js';
import {
  type Clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  LogCapture,
  waitForReady,
} from '../support/kube/cluster.js';
import { legacyLeftovers, legacyMirror, monitorTakeover } from '../support/kube/legacy-mirror.js';
import { type NodeUpstream, serviceAnswers } from '../support/kube/node-workloads.js';
import { ensureTool } from '../support/primitives/tools.js';
import { waitFor } from '../support/primitives/wait.js';
import { type RealNode, realNodeTest } from '../support/suites/real-node.js';

const UPSTREAM = 'upstream.test';
const NAMESPACE = 'kube-extra';
const unavailable = await nodeClusterUnavailable();
// the original's claims (and its surge pod's), then the new cache's, for both shapes
const test = realNodeTest({ upstreamHost: UPSTREAM, persistentVolumes: 10, crd: true });

interface Pull {
  readonly ref: string;
  readonly image: TestImage;
  readonly startedAt: number;
  readonly ms: number;
  readonly error?: string;
}

describe.skipIf(unavailable !== undefined)('the takeover from mirror-operator on a real node', () => {
  let node: NodeCluster;
  let c: Clients;
  let upstream: NodeUpstream;
  let criPull: string;
  let ctl: RunningController | undefined;
  let realNode: RealNode;
  const logs = new LogCapture();

  /** One CRI PullImage on the node, as the kubelet asks, of a new image that exists only upstream. */
  async function pullNew(): Promise<Pull> {
    const image = await realNode.newImage('takeover/');
    const ref = image.refByTag(UPSTREAM);
    const startedAt = Date.now();
    try {
      await node.run(criPull, ['-endpoint', node.containerd.address, '-timeout', '90s', ref]);
      return { ref, image, startedAt, ms: Date.now() - startedAt };
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      return { ref, image, startedAt, ms: Date.now() - startedAt, error: (err.stderr || err.message).trim() };
    }
  }

  /** Pulls one new image after another until stopped. */
  function pullWithoutPause(): { stop: () => Promise<Pull[]> } {
    let stopped = false;
    const pulls: Pull[] = [];
    const loop = (async () => {
      while (!stopped) pulls.push(await pullNew());
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        return pulls;
      },
    };
  }

  /** Who fetched the image's own layer from the upstream: the node itself, or a cache pod. */
  async function fetchedBy(image: TestImage): Promise<string[]> {
    const own = image.blobDigests(image.platforms[0].platform).at(-1)!;
    return (await upstream.requests()).filter((r) => r.method === 'GET' && r.path.endsWith(own)).map((r) => r.remote);
  }

  test.beforeAll(async ({ realNode: booted }) => {
    criPull = await ensureTool('cri-pull');
    realNode = booted;
    ({ node, c, upstream } = booted);
    await createMirrorNamespaces(c, NAMESPACE);
  });

  afterAll(async () => {
    await ctl?.stop(); // before the fixture stops the node
  });

  for (const [shape, replicas] of [
    ['seed', 1],
    ['later', 2],
  ] as const) {
    it(`moves the ${shape} shape over while the node pulls without pause, and no pull fails`, async () => {
      const mirror = `legacy-${shape}`;
      await ctl?.stop(); // the original operator ran alone
      ctl = undefined;
      await createMirror(
        c,
        mirror,
        { upstreamUrl: UPSTREAM, volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } } },
        {},
      );
      const sleeper = { image: NODE_AGENT_IMAGE, command: [...SLEEP_CMD] };
      await legacyMirror(c, mirror, {
        namespace: NAMESPACE,
        shape,
        replicas,
        cacheContainer: sleeper,
        nodeContainer: sleeper,
        readyTimeoutMs: 120_000,
      });

      const hostsToml = async () => (await realNode.hostsToml()) ?? '';
      const watch = monitorTakeover(c, NAMESPACE, mirror);
      const pulling = pullWithoutPause();
      let pulls: Pull[] = [];
      try {
        ctl = await startController({
          kubeConfig: c.kc,
          namespace: NAMESPACE,
          secondsBetweenStreams: 1,
          leaderElection: false,
          logLevel: 'debug',
          logDestination: logs,
          takeover: true,
        });
        const m = await waitForReady(c, mirror, 'True', 300_000);
        expect(condition(m, 'Ready')).toMatchObject({ status: 'True', reason: 'Serving' });
        await waitFor(
          `only mirror-synth's objects for ${mirror}`,
          async () => (await legacyLeftovers(c, NAMESPACE, mirror)).length === 0 || undefined,
          120_000,
          500,
        ).catch(async (e: unknown) => {
          throw new Error(`${String(e)}; left: ${(await legacyLeftovers(c, NAMESPACE, mirror)).join(', ')}`);
        });
        await waitFor(
          "the node agent's hosts.toml",
          async () => ((await hostsToml()).includes('[host.') ? true : undefined),
          60_000,
          250,
        );
        // and the node reaches the new cache through the Service: kube-proxy programs the
        // ClusterIP's rules for the new endpoints a sync period after they change, and until then a
        // pull through the mirror would fall back to the upstream (the node itself fetching)
        await serviceAnswers(node, c.core, `registry-mirror-${mirror}`, NAMESPACE, {
          timeoutMs: 30_000,
          why: `once ${mirror} said Ready`,
        });
      } finally {
        // stop pulling, whatever happened: the pull under way finishes, and the one below (after)
        // is wholly after the move
        const more = pulling.stop();
        pulls = await more;
      }
      const after = await pullNew();
      const violations = await watch.stop();

      const steps = logs.lines
        .filter((l) => l.includes('"takeover"') && l.includes(mirror))
        .map((l) => (JSON.parse(l) as { step: string }).step);
      const failed = pulls.filter((p) => p.error !== undefined);
      const slowest = Math.max(...pulls.map((p) => p.ms));
      const direct = (await Promise.all(pulls.map((p) => fetchedBy(p.image)))).filter((by) =>
        by.includes(node.nodeIp),
      ).length;
      console.log(
        `takeover of ${mirror} on a real node: ${steps.join(' -> ')}; ${pulls.length} pulls during it ` +
          `(${direct} fetched by the node itself, ${pulls.length - direct} through a cache), ` +
          `${failed.length} failed, slowest ${slowest} ms`,
      );
      expect(pulls.length).toBeGreaterThan(3);
      expect(
        failed.map((p) => `${p.ref} at +${p.startedAt - pulls[0].startedAt} ms: ${p.error}`),
        'pulls that neither hit a serving cache nor fell back',
      ).toEqual([]);
      expect(violations, violations.slice(0, 5).join('\n')).toEqual([]);
      expect(watch.samples()).toBeGreaterThan(10);

      // once the move is done, the node's pulls go through the new cache
      expect(after.error).toBeUndefined();
      const cachePods = (
        await c.core.listNamespacedPod({
          namespace: NAMESPACE,
          labelSelector: `mirror=${mirror},app.kubernetes.io/component=cache`,
        })
      ).items.map((p) => p.status?.podIP);
      const by = await fetchedBy(after.image);
      expect(by.length).toBeGreaterThan(0);
      expect(cachePods).toEqual(expect.arrayContaining(by));
      expect(by).not.toContain(node.nodeIp);

      // the next shape mirrors the same upstream: this mirror goes, and restores the node's config
      await deleteMirror(c, mirror);
      await waitFor(
        "the node agent to remove the node's hosts.toml",
        async () => ((await hostsToml()) === '' ? true : undefined),
        120_000,
        500,
      );
    });
  }
});

if (unavailable) {
  describe('the takeover from mirror-operator on a real node', () => {
    it.skip(unavailable, () => {});
  });
}
