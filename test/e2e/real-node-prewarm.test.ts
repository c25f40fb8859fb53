// spec.cache.pinned on a real node (test/support/components/node.ts): a mirror pinning an image that exists
// only upstream pre-warms it as soon as its cache pod runs (its warm container, the mirror-synth
// image, fetching through the pod's own front), says so on /status through the API server's pod
// proxy (kubectl get --raw), and after the upstream is stopped a Pod of that image
// still starts, pulled by the kubelet through the mirror's Service.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_NAMESPACE } from '../../src/construct/platform.js';
import { WARM_PORT } from '../../src/construct/ports.js';
import { namespaceObjects, synthesizeMirror } from '../../src/synth/chart.js';
import type { PinnedImageStatus } from '../../src/warm/warm.js';
import { type NodeCluster, nodeClusterUnavailable } from '../support/components/node.js';
import type { TestImage } from '../support/fixtures/images.js';
import { CONTROLLER_IMAGE, runnableTestImage } from '../support/fixtures/stand-in-images.js';
import {
  applyObjects,
  deletePod,
  type NodeClients,
  nodeClients,
  type NodeUpstream,
  objectsOf,
  readyPod,
  runPod,
  startNodeUpstream,
  startStandInNode,
} from '../support/kube/node-workloads.js';
import { waitFor } from '../support/primitives/wait.js';

const UPSTREAM = 'upstream.test';
const NAME = 'prewarm';
const NAMESPACE = DEFAULT_NAMESPACE;
const CACHE = `mirror=${NAME},app.kubernetes.io/component=cache`;
const unavailable = await nodeClusterUnavailable();

/** The pids of the node's upstream (Distribution serving `<root>/upstream/config.yml`), which this test's harness started. */
async function upstreamPids(node: NodeCluster): Promise<number[]> {
  const config = join(node.root, 'upstream', 'config.yml');
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[1] === 'serve' && argv[2] === config) pids.push(Number(entry));
  }
  return pids;
}

describe.skipIf(unavailable !== undefined)('pinned images on a real node', () => {
  let node: NodeCluster;
  let k: NodeClients;
  let upstream: NodeUpstream;
  let image: TestImage;

  beforeAll(async () => {
    node = await startStandInNode({ hostNames: [UPSTREAM] });
    k = nodeClients(node);
    upstream = await startNodeUpstream(node, UPSTREAM);
    image = await runnableTestImage({ repository: 'team/pinned', tag: '1.0' });
    await upstream.client.push(image);
    // the mirror as dist/ has it, the mirror-synth image named as a platform names it
    const objects = synthesizeMirror(
      {
        name: NAME,
        source: 'test',
        spec: {
          upstreamUrl: UPSTREAM,
          cache: { pinned: [`${image.repository}:${image.tag}`] },
          volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
        },
      },
      { fillImage: CONTROLLER_IMAGE },
    );
    const yaml = [...namespaceObjects(), ...objects].map((o) => JSON.stringify(o)).join('\n---\n');
    await applyObjects(k.objects, objectsOf(yaml), 'mirror-synth-real-node-test');
  });

  afterAll(async () => {
    await node?.stop();
  });

  it('pre-warms the image, says so through the pod proxy, and a Pod of it starts with the upstream stopped', async () => {
    const cache = await readyPod(k.core, NAMESPACE, CACHE, 120_000);
    const pod = cache.metadata!.name!;
    // /status of the warm container, read through the API server's pod proxy
    let last: unknown;
    const status = await waitFor(
      'the warm container to pre-warm the pinned image',
      async () => {
        last = await k.core
          .connectGetNamespacedPodProxyWithPath({ name: `${pod}:${WARM_PORT}`, namespace: NAMESPACE, path: 'status' })
          .catch((e: unknown) => e);
        // client-node parses a JSON answer; a string if it did not
        const body = (typeof last === 'string' ? JSON.parse(last) : last) as { images?: PinnedImageStatus[] };
        const images = body?.images;
        return images?.every((i) => i.warm) ? images : undefined;
      },
      120_000,
      1000,
    ).catch(async (err: unknown) => {
      const log = await k.core
        .readNamespacedPodLog({ name: pod, namespace: NAMESPACE, container: 'warm', tailLines: 30 })
        .catch((e: unknown) => String(e));
      throw new Error(`${(err as Error).message}
last /status: ${JSON.stringify(last) ?? String(last)}
warm log:
${log}`);
    });
    expect(status).toEqual([
      expect.objectContaining({ image: `${image.repository}:${image.tag}`, warm: true, digest: image.digest }),
    ]);
    // the warm container fetched every platform through the front: the upstream served the cache pod, no node asked
    // (the test's push reached the upstream from the node's address: GETs only)
    const served = (await upstream.requests()).filter(
      (r) => r.method === 'GET' && r.path.includes(`/v2/${image.repository}/blobs/`),
    );
    expect(served.length).toBeGreaterThan(0);
    expect(new Set(served.map((r) => r.remote))).toEqual(new Set([cache.status?.podIP]));

    // the node agent points the node at the mirror (the Pod must not reach the upstream itself: it is gone)
    await waitFor(
      "the node agent to write the node's hosts.toml",
      async () =>
        (await readFile(join(node.certsDir, UPSTREAM, 'hosts.toml'), 'utf8').catch(() => '')).includes('[host.')
          ? true
          : undefined,
      120_000,
      500,
    );
    const pids = await upstreamPids(node);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitFor(
      'the upstream to stop answering',
      async () =>
        (await upstream.client.request('GET', '/v2/').then(
          () => false,
          () => true,
        ))
          ? true
          : undefined,
      10_000,
      200,
    );

    const started = await runPod(k.core, 'pinned', image.refByTag(UPSTREAM));
    expect(started.status?.containerStatuses?.[0]?.imageID).toContain(image.digest);
    await deletePod(k.core, 'pinned');
  });
});

if (unavailable) {
  describe('pinned images on a real node', () => {
    it.skip(unavailable, () => {});
  });
}
