// Rollout benchmark: how long a DaemonSet of an image that exists only upstream takes to run on
// every node of a real cluster (test/support/components/node.ts with `nodes`), and how many bytes the
// upstream sends for it: straight from the upstream, then through a synthesized mirror cold
// (empty cache) and warm (the nodes forgot the image, the cache kept it). Everything runs in the
// cluster's own network namespaces; it always stops by itself.
//
//   node bench/rollout.mjs [--nodes 3] [--layer-mb 64] [--replicas 1] [--json]
//
// Each row: seconds from creating the DaemonSet to every Pod Running, and the bytes the upstream
// sent for the image's blobs divided by those blobs' size (1.0 = each blob sent once; the busybox
// layer below the image's own is on every node already and not counted).
// Needs root and what the real-node e2e tests need (CONTRIBUTING.md).
import type { V1Pod } from '@kubernetes/client-node';

import { DEFAULT_NAMESPACE } from '../src/construct/platform.js';
import { nodeClusterUnavailable } from '../test/support/components/node.js';
import { runnableTestImage } from '../test/support/fixtures/stand-in-images.js';
import {
  applyMirror,
  createDaemonSet,
  nodeClients,
  readyPod,
  runningPods,
  serviceAnswers,
  startNodeUpstream,
  startStandInNode,
} from '../test/support/kube/node-workloads.js';
import { waitFor } from '../test/support/primitives/wait.js';
import { writeResults } from './results.js';

export interface RolloutOptions {
  readonly nodes: number;
  /** The image's own layer, MiB. */
  readonly layerMiB: number;
  /** Cache replicas of the mirror. */
  readonly replicas: number;
  /** Print the summary (RolloutSummary) as one JSON line at the end. @default false */
  readonly json?: boolean;
  /** Where to write the JSON results. @default - not written */
  readonly resultsDir?: string;
}

export interface RolloutRow {
  readonly path: 'direct' | 'mirror-cold' | 'mirror-warm';
  readonly seconds: number;
  readonly upstreamBytesRatio: number;
}

/** What `--json` prints as the last line. */
export interface RolloutSummary {
  readonly nodes: number;
  readonly layerMiB: number;
  readonly replicas: number;
  readonly clusterStartSeconds: number;
  readonly rows: readonly RolloutRow[];
}

const UPSTREAM = 'upstream.test';
const MIRROR = 'bench';

export async function runRollout(opts: RolloutOptions): Promise<RolloutSummary> {
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const unavailable = await nodeClusterUnavailable();
  if (unavailable) throw new Error(unavailable);
  const t0 = Date.now();
  const cluster = await startStandInNode({ nodes: opts.nodes, hostNames: [UPSTREAM], log: () => undefined });
  const clusterStartSeconds = (Date.now() - t0) / 1000;
  log(`${opts.nodes} node(s) Ready in ${clusterStartSeconds.toFixed(1)} s`);
  const rows: RolloutRow[] = [];
  try {
    const k = nodeClients(cluster);
    const upstream = await startNodeUpstream(cluster, UPSTREAM);
    let count = 0;

    /** One rollout of `ref`: seconds to every Pod Running, and the upstream's bytes over the blobs' size. */
    const rollout = async (path: RolloutRow['path'], ref: string, blobs: ReadonlyMap<string, number>) => {
      const from = (await upstream.requests()).length;
      const name = `rollout-${++count}`;
      const started = Date.now();
      await createDaemonSet(k.apps, name, ref);
      await runningPods(k.core, name, opts.nodes, 'default', 600_000);
      const seconds = (Date.now() - started) / 1000;
      // the access log line lands when the response is done
      await new Promise((ok) => setTimeout(ok, 500));
      const sent = (await upstream.requests())
        .slice(from)
        .filter((r) => r.method === 'GET' && [...blobs.keys()].some((d) => r.path.endsWith(d)))
        .reduce((sum, r) => sum + r.bytes, 0);
      const size = [...blobs.values()].reduce((a, b) => a + b, 0);
      const row = { path, seconds, upstreamBytesRatio: sent / size };
      rows.push(row);
      log(
        `${path.padEnd(12)} ${seconds.toFixed(1).padStart(6)} s  upstream bytes / blob bytes ${row.upstreamBytesRatio.toFixed(2)}`,
      );
      await k.apps.deleteNamespacedDaemonSet({ name, namespace: 'default' });
      await waitFor(
        `DaemonSet ${name}'s Pods to be gone`,
        async () =>
          (await k.core.listNamespacedPod({ namespace: 'default', labelSelector: `app=${name}` })).items.length === 0,
        120_000,
        250,
      );
    };
    const newImage = async (repository: string) => {
      const image = await runnableTestImage({ repository, tag: '1.0', payloadBytes: opts.layerMiB * 1024 * 1024 });
      await upstream.client.push(image);
      const p = image.platforms[0];
      const own = p.layers.at(-1)!;
      const blobs = new Map([
        [p.config.digest, p.config.size],
        [own.digest, own.size],
      ]);
      return { ref: image.refByTag(UPSTREAM), blobs };
    };

    const direct = await newImage('bench/direct');
    await rollout('direct', direct.ref, direct.blobs);

    await applyMirror(k, { name: MIRROR, upstream: UPSTREAM, replicas: opts.replicas });
    const cache = `mirror=${MIRROR},app.kubernetes.io/component=cache`;
    const readyCaches = async (): Promise<V1Pod[]> =>
      (await k.core.listNamespacedPod({ namespace: DEFAULT_NAMESPACE, labelSelector: cache })).items.filter((p) =>
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
    await readyPod(k.core, DEFAULT_NAMESPACE, cache, 300_000);
    await waitFor(
      'every cache replica Ready',
      async () => (await readyCaches()).length === opts.replicas,
      300_000,
      500,
    );
    for (const node of cluster.nodes) {
      await waitFor(
        `the node agent's hosts.toml on ${node.name}`,
        async () =>
          (await node.run('cat', [`/etc/containerd/certs.d/${UPSTREAM}/hosts.toml`]).catch(() => undefined)) !==
          undefined,
        120_000,
        500,
      );
      await serviceAnswers(node, k.core, `registry-mirror-${MIRROR}`, DEFAULT_NAMESPACE, { timeoutMs: 60_000 });
    }

    const mirrored = await newImage('bench/mirrored');
    await rollout('mirror-cold', mirrored.ref, mirrored.blobs);
    // the nodes forget the image and its blobs; the cache keeps them
    for (const node of cluster.nodes) await node.ctr(['images', 'rm', '--sync', mirrored.ref]);
    await rollout('mirror-warm', mirrored.ref, mirrored.blobs);
  } finally {
    await cluster.stop();
  }
  const summary: RolloutSummary = {
    nodes: opts.nodes,
    layerMiB: opts.layerMiB,
    replicas: opts.replicas,
    clusterStartSeconds,
    rows,
  };
  if (opts.resultsDir) await writeResults(opts.resultsDir, 'rollout', opts, summary, log);
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary;
}
