// The mission on a real cluster of several nodes (test/support/components/node.ts with `nodes`): each node its
// own kubelet, containerd and kube-proxy in namespaces of its own, joined by a fabric bridge, the
// control plane on the first. Pods reach Pods and Services on other nodes; a mirror synthesized by
// synthesizeMirror and applied as `kubectl apply --server-side` serves a DaemonSet whose image
// exists only upstream to every node at once, and the upstream sends each blob once; stop()
// leaves the host as it found it.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NODE_AGENT_IMAGE } from '../../src/construct/images.js';
import { DEFAULT_NAMESPACE } from '../../src/construct/platform.js';
import { hostState, type NodeCluster, nodeClusterUnavailable } from '../support/components/node.js';
import { runnableTestImage } from '../support/fixtures/stand-in-images.js';
import {
  applyMirror,
  createDaemonSet,
  type NodeClients,
  nodeClients,
  type NodeUpstream,
  podEvents,
  readyPod,
  runningPods,
  serviceAnswers,
  startNodeUpstream,
  startStandInNode,
} from '../support/kube/node-workloads.js';
import { waitFor } from '../support/primitives/wait.js';

const NODES = 3;
const UPSTREAM = 'upstream.test';
const NAME = 'multi';
const NAMESPACE = DEFAULT_NAMESPACE;
const CACHE = `mirror=${NAME},app.kubernetes.io/component=cache`;
const unavailable = await nodeClusterUnavailable();

/** A Pod on one node (`nodeName`, past the scheduler). */
function pinnedPod(name: string, nodeName: string, command: string[], restartPolicy = 'Always'): V1Pod {
  return {
    metadata: { name, labels: { app: name } },
    spec: {
      nodeName,
      restartPolicy,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'main', image: NODE_AGENT_IMAGE, command }],
    },
  };
}

describe.skipIf(unavailable !== undefined)(`the mission on a real cluster of ${NODES} nodes`, () => {
  let cluster: NodeCluster;
  let k: NodeClients;
  let upstream: NodeUpstream;
  let before: Awaited<ReturnType<typeof hostState>>;

  beforeAll(async () => {
    before = await hostState();
    const t0 = Date.now();
    cluster = await startStandInNode({ nodes: NODES, hostNames: [UPSTREAM] });
    process.stderr.write(`[real-nodes] ${NODES} nodes Ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    k = nodeClients(cluster);
    upstream = await startNodeUpstream(cluster, UPSTREAM);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('every node is Ready with its own IP and Pod range; a Pod reaches a Pod and a Service on another node', async () => {
    const nodes = (await k.core.listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(cluster.nodes.map((n) => n.name).sort());
    for (const n of cluster.nodes) {
      const node = nodes.find((x) => x.metadata?.name === n.name);
      expect(node?.status?.addresses).toContainEqual({ type: 'InternalIP', address: n.ip });
      // as on a real cluster, where kube-controller-manager gives each node its range
      expect(node?.spec?.podCIDR).toBe(n.podCidr);
      expect(node?.spec?.podCIDRs).toEqual([n.podCidr]);
    }

    const [, serverNode, clientNode] = cluster.nodes;
    await k.core.createNamespacedPod({
      namespace: 'default',
      body: pinnedPod('web', serverNode.name, [
        'sh',
        '-c',
        'mkdir -p /tmp/www && echo "hello from $(hostname)" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
      ]),
    });
    await k.core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
    });
    const web = await readyPod(k.core, 'default', 'app=web', 120_000);
    const podIp = web.status!.podIP!;
    expect(podIp.startsWith(serverNode.podCidr.split('.').slice(0, 3).join('.') + '.')).toBe(true);
    const service = await k.core.readNamespacedService({ name: 'web', namespace: 'default' });
    const clusterIp = service.spec!.clusterIP!;
    // from a node that runs neither the Pod nor the control plane: the route through the fabric
    await serviceAnswers(clientNode, k.core, 'web', 'default', { port: 80, path: '/index.html', timeoutMs: 60_000 });

    const get = (ip: string, port: number) => `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${ip} ${port}`;
    await k.core.createNamespacedPod({
      namespace: 'default',
      body: pinnedPod('client', clientNode.name, ['sh', '-c', `${get(podIp, 8080)} && ${get(clusterIp, 80)}`], 'Never'),
    });
    const phase = await waitFor(
      'the client Pod to finish',
      async () => {
        const pod = await k.core.readNamespacedPod({ name: 'client', namespace: 'default' });
        return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed' ? pod.status.phase : undefined;
      },
      120_000,
      250,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await podEvents(k.core, 'client', 'default')}`);
    });
    const log = await k.core.readNamespacedPodLog({ name: 'client', namespace: 'default' });
    expect(phase, log).toBe('Succeeded');
    expect(log.match(/hello from web/g)?.length, log).toBe(2);
    for (const name of ['client', 'web']) {
      await k.core.deleteNamespacedPod({ name, namespace: 'default', gracePeriodSeconds: 0 });
    }
    await k.core.deleteNamespacedService({ name: 'web', namespace: 'default' });
  });

  it('a DaemonSet whose image exists only upstream starts on every node through the mirror; the upstream sends each blob once', async () => {
    await applyMirror(k, { name: NAME, upstream: UPSTREAM });
    const cache = await readyPod(k.core, NAMESPACE, CACHE, 180_000);
    // the node agent on every node, and every node's kube-proxy sending the Service to the cache
    for (const node of cluster.nodes) {
      await waitFor(
        `the node agent to write hosts.toml on ${node.name}`,
        async () =>
          (await readFile(join(node.certsDir, UPSTREAM, 'hosts.toml'), 'utf8').catch(() => '')).includes('[host.'),
        120_000,
        500,
      );
      await serviceAnswers(node, k.core, `registry-mirror-${NAME}`, NAMESPACE, { timeoutMs: 60_000 });
    }

    const image = await runnableTestImage({ repository: 'team/everywhere', tag: '1.0' });
    await upstream.client.push(image);
    const from = (await upstream.requests()).length;
    const t0 = Date.now();
    await createDaemonSet(k.apps, 'everywhere', image.refByTag(UPSTREAM));
    const pods = await runningPods(k.core, 'everywhere', NODES);
    process.stderr.write(`[real-nodes] DaemonSet running on ${NODES} nodes in ${Date.now() - t0} ms\n`);
    expect(pods.map((p) => p.spec?.nodeName).sort()).toEqual(cluster.nodes.map((n) => n.name).sort());
    for (const pod of pods) expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(image.digest);

    // every blob the upstream sent went to the cache pod, once; the nodes asked it nothing
    const served = (await upstream.requests()).slice(from).filter((r) => r.path.startsWith(`/v2/${image.repository}/`));
    expect(
      new Set(served.map((r) => r.remote)),
      served.map((r) => `${r.remote} ${r.method} ${r.path} ${r.status}`).join('\n'),
    ).toEqual(new Set([cache.status?.podIP]));
    const blobGets = served.filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).map((r) => r.path);
    const own = image.platforms[0].layers.at(-1)!.digest; // the busybox layer below it the nodes may hold already
    const config = image.platforms[0].config.digest;
    expect(blobGets.filter((p) => p.endsWith(own))).toHaveLength(1);
    expect(blobGets.filter((p) => p.endsWith(config))).toHaveLength(1);
    expect(blobGets.length).toBe(new Set(blobGets).size);
    await k.apps.deleteNamespacedDaemonSet({ name: 'everywhere', namespace: 'default' });
  });

  it('with 2 cache replicas, one of them deleted as the nodes pull, every node still starts its Pod without a failed pull', async () => {
    await applyMirror(k, { name: NAME, upstream: UPSTREAM, replicas: 2 });
    const cachePods = async () =>
      (await k.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: CACHE })).items.filter(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
    await waitFor(
      '2 Ready cache pods',
      async () => ((await cachePods()).length === 2 ? true : undefined),
      180_000,
      500,
    );
    for (const node of cluster.nodes) {
      await serviceAnswers(node, k.core, `registry-mirror-${NAME}`, NAMESPACE, { timeoutMs: 60_000 });
    }

    // a layer large enough that the pulls are still going when the cache pod goes
    const image = await runnableTestImage({ repository: 'team/rollout', tag: '1.0', payloadBytes: 64 * 1024 * 1024 });
    await upstream.client.push(image);
    const from = (await upstream.requests()).length;
    await createDaemonSet(k.apps, 'rollout', image.refByTag(UPSTREAM));
    const pulling = await waitFor(
      "a node to start pulling the DaemonSet's image",
      async () => {
        const events = await k.core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'reason=Pulling' });
        return events.items.find((e) => e.involvedObject.name?.startsWith('rollout-'));
      },
      60_000,
      100,
    );
    const [victim] = await cachePods();
    await k.core.deleteNamespacedPod({ name: victim.metadata!.name!, namespace: NAMESPACE });
    process.stderr.write(
      `[real-nodes] deleted cache pod ${victim.metadata!.name} as ${pulling.involvedObject.name} pulls\n`,
    );

    const pods = await runningPods(k.core, 'rollout', NODES);
    expect(pods.map((p) => p.spec?.nodeName).sort()).toEqual(cluster.nodes.map((n) => n.name).sort());
    for (const pod of pods) {
      expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(image.digest);
      expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      const events = await k.core.listNamespacedEvent({
        namespace: 'default',
        fieldSelector: `involvedObject.name=${pod.metadata!.name}`,
      });
      // a pull that failed is a Failed (ErrImagePull) event, then BackOff
      const failed = events.items.filter((e) => e.reason === 'Failed' || e.reason === 'BackOff');
      expect(
        failed.map((e) => e.message),
        pod.metadata!.name,
      ).toEqual([]);
    }
    // who fetched the large layer from the upstream: cache pods, or a node falling back (either may be right)
    const own = image.platforms[0].layers.at(-1)!.digest;
    const by = (await upstream.requests())
      .slice(from)
      .filter((r) => r.method === 'GET' && r.path.endsWith(own))
      .map((r) => r.remote);
    process.stderr.write(`[real-nodes] the large layer was sent by the upstream to ${by.join(', ')}\n`);
    await k.apps.deleteNamespacedDaemonSet({ name: 'rollout', namespace: 'default' });
  });

  it('stops leaving no process, mount, namespace, interface, rule or cgroup behind', async () => {
    const pids = (await Promise.all(cluster.nodes.map((n) => n.containerProcesses()))).flat().map((p) => p.pid);
    expect(pids.length).toBeGreaterThan(0);
    await cluster.stop();
    // other clusters (another test file's, on the same host) may come and go meanwhile
    const id = cluster.netns.replace(/^ms-node-/, '');
    const ours = (state: Awaited<ReturnType<typeof hostState>>) =>
      Object.fromEntries(
        Object.entries(state).map(([k, lines]) => [
          k,
          lines.filter((l) => [...l.matchAll(/ms-node-([0-9a-f]{6})/g)].every((m) => m[1] === id)),
        ]),
      );
    expect(ours(await hostState())).toEqual(ours(before));
    expect(existsSync(cluster.root)).toBe(false);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`), `container process ${pid}`).toBe(false);
    for (const node of cluster.nodes) {
      const cgroups = (await readdir('/sys/fs/cgroup')).filter((h) =>
        existsSync(join('/sys/fs/cgroup', h, node.cgroupRoot)),
      );
      expect(cgroups, node.name).toEqual([]);
    }
  });
});

if (unavailable) {
  describe(`the mission on a real cluster of ${NODES} nodes`, () => {
    it.skip(unavailable, () => {});
  });
}
