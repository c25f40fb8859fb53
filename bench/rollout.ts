// Rollout benchmark, measured the way spegel publishes its own (github.com/spegel-org/benchmark):
// images of 10 MB, 100 MB and 1 GB, each as 1 and as 4 layers, a v1 and a v2 of each; a DaemonSet
// of v1 created on every node at once ("create"), then rolled to v2 20 % of the nodes at a time
// ("update", maxUnavailable: 20%); each Pod's pull time read from the kubelet's Pulled event
// (`Successfully pulled image "..." in 1.234s`). On a real cluster of several nodes
// (test/support/components/node.ts with `nodes`), for the upstream direct and through a synthesized mirror
// with each fill, the upstream behind one rate cap that every node shares, as an internet link is.
//
//   node bench/rollout.mjs [--nodes 3] [--sizes 10,100,1000] [--layers 1,4] [--scale 0.1]
//                          [--rate-mib 32] [--fills whole,streaming] [--replicas 1] [--json]
//
// Each path gets images of its own (same sizes, other random bytes), so every row starts with
// nothing cached anywhere: not on the nodes, not in the mirror. Rows: per image, phase and path,
// the median and p90 (nearest rank) of the nodes' pull times, the median's ratio to direct's in
// the same run, the bytes the upstream sent for the image's blobs over those blobs' size (1.00 =
// each blob sent once; direct sends each to every node), and the slowest node.
// Needs root and what the real-node e2e tests need (CONTRIBUTING.md).
import { fileURLToPath } from 'node:url';

import type { AppsV1Api, CoreV1Api, V1DaemonSet, V1Pod } from '@kubernetes/client-node';

import { type FillMode } from '../src/api/names.js';
import { DEFAULT_NAMESPACE } from '../src/construct/platform.js';
import { type ClusterNode, nodeClusterUnavailable } from '../test/support/components/node.js';
import { runnableTestImage } from '../test/support/fixtures/stand-in-images.js';
import {
  applyMirror,
  nodeClients,
  type NodeUpstream,
  podEvents,
  serviceAnswers,
  startNodeUpstream,
  startStandInNode,
} from '../test/support/kube/node-workloads.js';
import { waitFor } from '../test/support/primitives/wait.js';
import { writeResults } from './results.js';

export interface RolloutOptions {
  readonly nodes: number;
  /** The images' sizes before `scale`, MB (10^6 bytes). @default [10, 100, 1000] */
  readonly sizesMB: readonly number[];
  /** Layer counts; each size is built with each. @default [1, 4] */
  readonly layers: readonly number[];
  /** Multiplies every size. @default 0.1 */
  readonly scale: number;
  /** The upstream's sending rate, MiB/s, all nodes and connections together; 0 for none. @default 32 */
  readonly rateMiB: number;
  /** The mirror's fills to measure, each a path of its own. @default ['whole', 'streaming'] */
  readonly fills: readonly FillMode[];
  /** Cache replicas of each mirror. @default 1 */
  readonly replicas: number;
  /** Print the summary (RolloutSummary) as one JSON line at the end. @default false */
  readonly json?: boolean;
  /** Where to write the JSON results. @default - not written */
  readonly resultsDir?: string;
}

export type RolloutPath = 'direct' | FillMode;

export interface RolloutRow {
  /** e.g. `10 MB x4`: the image's size and its own layers. */
  readonly image: string;
  readonly phase: 'create' | 'update';
  readonly path: RolloutPath;
  /** Each node's pull time, from the kubelet's Pulled event. */
  readonly pulls: readonly { node: string; seconds: number }[];
  readonly medianSeconds: number;
  readonly p90Seconds: number;
  /** This row's median over direct's for the same image and phase (1 for direct). */
  readonly ratioToDirect: number;
  /** Bytes the upstream sent for the image's own blobs (config and layers), and their size. */
  readonly upstreamBytes: number;
  readonly uniqueBytes: number;
  readonly upstreamRatio: number;
  readonly slowest: { node: string; seconds: number };
}

/** What `--json` prints as the last line. */
export interface RolloutSummary {
  readonly nodes: number;
  readonly scale: number;
  readonly rateMiB: number;
  readonly replicas: number;
  readonly clusterStartSeconds: number;
  readonly seconds: number;
  readonly rows: readonly RolloutRow[];
}

const UPSTREAM = 'upstream.test';
/** The upstream as each path's nodes reach it: a mirror configures one host, so each fill gets a name of its own. */
const hostOf = (path: RolloutPath): string => (path === 'direct' ? UPSTREAM : `${path}.${UPSTREAM}`);
const NAMESPACE = 'default';

export async function runRollout(opts: RolloutOptions): Promise<RolloutSummary> {
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const unavailable = await nodeClusterUnavailable();
  if (unavailable) throw new Error(unavailable);
  const paths: RolloutPath[] = ['direct', ...opts.fills];
  const t0 = Date.now();
  const cluster = await startStandInNode({
    nodes: opts.nodes,
    hostNames: paths.map(hostOf),
    log: () => undefined,
  });
  const clusterStartSeconds = (Date.now() - t0) / 1000;
  log(`${opts.nodes} node(s) Ready in ${clusterStartSeconds.toFixed(1)} s`);
  const rows: RolloutRow[] = [];
  try {
    const k = nodeClients(cluster);
    const aliases = paths.map(hostOf).filter((h) => h !== UPSTREAM);
    let upstream: NodeUpstream;
    if (opts.rateMiB > 0) {
      // Distribution on :8443, the shared link on :443 where the nodes and the mirrors reach it
      upstream = await startNodeUpstream(cluster, UPSTREAM, { port: 8443, aliases });
      const script = fileURLToPath(new URL('./shared-link.js', import.meta.url));
      const rate = Math.round(opts.rateMiB * 1024 * 1024);
      cluster.spawn('shared-link', process.execPath, [
        script,
        `${cluster.nodeIp}:443`,
        `${cluster.nodeIp}:8443`,
        `${rate}`,
      ]);
      await waitFor(
        'the shared link to answer',
        async () =>
          (await cluster.run('curl', ['-sk', '-o', '/dev/null', `https://${cluster.nodeIp}/v2/`]).then(
            () => true,
            () => false,
          )) || undefined,
        30_000,
        200,
      );
    } else {
      upstream = await startNodeUpstream(cluster, UPSTREAM, { aliases });
    }
    log(
      `upstream ${UPSTREAM} (and ${aliases.join(', ')}), ${opts.rateMiB > 0 ? `${opts.rateMiB} MiB/s shared by every node` : 'no cap'}`,
    );

    for (const fill of opts.fills) {
      await applyMirror(k, { name: fill, upstream: hostOf(fill), fill, replicas: opts.replicas });
    }
    for (const fill of opts.fills) {
      const selector = `mirror=${fill},app.kubernetes.io/component=cache`;
      await waitFor(
        `${opts.replicas} Ready cache pod(s) of mirror ${fill}`,
        async () => {
          const pods = (await k.core.listNamespacedPod({ namespace: DEFAULT_NAMESPACE, labelSelector: selector }))
            .items;
          return pods.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
            .length === opts.replicas
            ? true
            : undefined;
        },
        300_000,
        500,
      );
      for (const node of cluster.nodes) {
        await waitFor(
          `the node agent's hosts.toml for ${hostOf(fill)} on ${node.name}`,
          async () =>
            node.run('cat', [`/etc/containerd/certs.d/${hostOf(fill)}/hosts.toml`]).then(
              () => true,
              () => undefined,
            ),
          120_000,
          500,
        );
        await serviceAnswers(node, k.core, `registry-mirror-${fill}`, DEFAULT_NAMESPACE, { timeoutMs: 60_000 });
      }
    }
    log(`mirrors ${opts.fills.join(', ')} serve every node`);
    log(header());

    let count = 0;
    for (const sizeMB of opts.sizesMB) {
      for (const layers of opts.layers) {
        const bytes = Math.round(sizeMB * opts.scale * 1e6);
        const image = `${formatMB(bytes)} x${layers}`;
        // interleaved, so what else runs on the machine meanwhile weighs on every path alike
        for (const path of paths) {
          const name = `r${++count}`;
          const repository = `bench/${path}-${name}`;
          const [v1, v2] = await Promise.all(
            ['v1', 'v2'].map((tag) =>
              runnableTestImage({ repository, tag, payloadBytes: bytes, payloadLayers: layers }),
            ),
          );
          for (const v of [v1, v2]) await upstream.client.push(v);
          const own = (v: typeof v1): Map<string, number> => {
            const p = v.platforms[0];
            // the busybox layer below is on every node already
            return new Map([p.config, ...p.layers.slice(1)].map((d) => [d.digest, d.size]));
          };
          const host = hostOf(path);
          const phase = async (which: RolloutRow['phase'], blobs: Map<string, number>, run: () => Promise<V1Pod[]>) => {
            const from = (await upstream.requests()).length;
            const pods = await run();
            const pulls = await pullTimes(k.core, pods, cluster.nodes);
            // the access log line lands when the response is done
            await new Promise((ok) => setTimeout(ok, 500));
            const sent = (await upstream.requests())
              .slice(from)
              .filter((r) => r.method === 'GET' && [...blobs.keys()].some((d) => r.path.endsWith(d)))
              .reduce((sum, r) => sum + r.bytes, 0);
            const unique = [...blobs.values()].reduce((a, b) => a + b, 0);
            const row = summarize(image, which, path, pulls, sent, unique, rows);
            rows.push(row);
            log(formatRow(row));
          };
          await phase('create', own(v1), async () => {
            await k.apps.createNamespacedDaemonSet({ namespace: NAMESPACE, body: daemonSet(name, v1.refByTag(host)) });
            return podsRunning(k.core, name, v1.refByTag(host), opts.nodes);
          });
          await phase('update', own(v2), async () => {
            const ds = await k.apps.readNamespacedDaemonSet({ name, namespace: NAMESPACE });
            ds.spec!.template.spec!.containers[0].image = v2.refByTag(host);
            await k.apps.replaceNamespacedDaemonSet({ name, namespace: NAMESPACE, body: ds });
            return podsRunning(k.core, name, v2.refByTag(host), opts.nodes);
          });
          await removeDaemonSet(k.apps, k.core, name);
          // forget the images on every node, so its disk holds one image at a time
          await Promise.all(
            cluster.nodes.map((node) =>
              forget(
                node,
                repository,
                [v1, v2].map((v) => v.platforms[0].config.digest),
              ),
            ),
          );
        }
      }
    }
  } finally {
    await cluster.stop();
  }
  const summary: RolloutSummary = {
    nodes: opts.nodes,
    scale: opts.scale,
    rateMiB: opts.rateMiB,
    replicas: opts.replicas,
    clusterStartSeconds,
    seconds: (Date.now() - t0) / 1000,
    rows,
  };
  log(`${rows.length} rows in ${summary.seconds.toFixed(0)} s (cluster start included)`);
  if (opts.resultsDir) await writeResults(opts.resultsDir, 'rollout', opts, summary, log);
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary;
}

/** A DaemonSet on every node, rolled 20 % of the nodes at a time as spegel's benchmark does. */
function daemonSet(name: string, image: string): V1DaemonSet {
  return {
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '20%' } },
      template: {
        metadata: { labels: { app: name } },
        spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image }] },
      },
    },
  };
}

/** The DaemonSet's Pods once one runs `image` on each of `count` nodes and no other is left. */
async function podsRunning(core: CoreV1Api, name: string, image: string, count: number): Promise<V1Pod[]> {
  const list = async () => (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `app=${name}` })).items;
  return waitFor(
    `${count} Pod(s) app=${name} running ${image}`,
    async () => {
      const pods = await list();
      const running = pods.filter(
        (p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && p.spec?.containers[0].image === image,
      );
      return running.length === count && pods.length === count ? running : undefined;
    },
    1_800_000,
    250,
  ).catch(async (err: Error) => {
    const events = await Promise.all((await list()).map((p) => podEvents(core, p.metadata!.name!, NAMESPACE)));
    throw new Error(`${err.message}\n${events.join('\n')}`);
  });
}

/** Each Pod's pull time, from its kubelet's `Successfully pulled image "..." in 1.234s (...)` event. */
async function pullTimes(
  core: CoreV1Api,
  pods: readonly V1Pod[],
  nodes: readonly ClusterNode[],
): Promise<{ node: string; seconds: number }[]> {
  return waitFor(
    `a Pulled event for each of ${pods.length} Pod(s)`,
    async () => {
      const events = (await core.listNamespacedEvent({ namespace: NAMESPACE, fieldSelector: 'reason=Pulled' })).items;
      const pulls: { node: string; seconds: number }[] = [];
      for (const pod of pods) {
        const event = events.find((e) => e.involvedObject.uid === pod.metadata?.uid);
        if (!event) return undefined;
        const m = /^Successfully pulled image "[^"]*" in (\S+)/.exec(event.message ?? '');
        // "already present on machine" would mean the row measured nothing: never expected here
        if (!m) throw new Error(`Pod ${pod.metadata?.name}: ${event.message}`);
        const index = nodes.findIndex((n) => n.name === pod.spec?.nodeName);
        pulls.push({ node: `n${index}`, seconds: goDuration(m[1]) });
      }
      return pulls.sort((a, b) => a.node.localeCompare(b.node));
    },
    30_000,
    250,
  );
}

/** Seconds in a Go duration string (`1.5s`, `734.2ms`, `1m2.5s`, `12µs`). */
export function goDuration(text: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, µs: 1e-6, ns: 1e-9 };
  let total = 0;
  const re = /([\d.]+)(h|ms|m|s|us|µs|ns)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text))) {
    total += Number(m[1]) * units[m[2]];
    end = re.lastIndex;
  }
  if (end !== text.length || end === 0) throw new Error(`not a Go duration: '${text}'`);
  return total;
}

/** The nearest-rank percentile `p` (0-100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summarize(
  image: string,
  phase: RolloutRow['phase'],
  path: RolloutPath,
  pulls: { node: string; seconds: number }[],
  upstreamBytes: number,
  uniqueBytes: number,
  earlier: readonly RolloutRow[],
): RolloutRow {
  const medianSeconds = percentile(
    pulls.map((p) => p.seconds),
    50,
  );
  const direct = earlier.find((r) => r.image === image && r.phase === phase && r.path === 'direct');
  const slowest = pulls.reduce((a, b) => (b.seconds > a.seconds ? b : a));
  return {
    image,
    phase,
    path,
    pulls,
    medianSeconds,
    p90Seconds: percentile(
      pulls.map((p) => p.seconds),
      90,
    ),
    ratioToDirect: path === 'direct' || !direct ? 1 : medianSeconds / direct.medianSeconds,
    upstreamBytes,
    uniqueBytes,
    upstreamRatio: upstreamBytes / uniqueBytes,
    slowest,
  };
}

function formatMB(bytes: number): string {
  const mb = bytes / 1e6;
  return `${mb >= 10 ? mb.toFixed(0) : Number(mb.toPrecision(2))} MB`;
}

function header(): string {
  return `| image | phase | path | median | p90 | x direct | upstream / unique | slowest node |\n| --- | --- | --- | ---: | ---: | ---: | ---: | --- |`;
}

export function formatRow(r: RolloutRow): string {
  const s = (x: number): string => `${x.toFixed(2)} s`;
  return `| ${r.image} | ${r.phase} | ${r.path} | ${s(r.medianSeconds)} | ${s(r.p90Seconds)} | ${r.ratioToDirect.toFixed(2)} | ${r.upstreamRatio.toFixed(2)} | ${r.slowest.node} ${s(r.slowest.seconds)} |`;
}

async function removeDaemonSet(apps: AppsV1Api, core: CoreV1Api, name: string): Promise<void> {
  await apps.deleteNamespacedDaemonSet({ name, namespace: NAMESPACE });
  await waitFor(
    `DaemonSet ${name}'s Pods to be gone`,
    async () =>
      (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `app=${name}` })).items.length === 0 ||
      undefined,
    120_000,
    250,
  );
}

/** Remove every reference to the repository's images (tags, digests, the CRI's config-digest names) and their content. */
async function forget(node: ClusterNode, repository: string, configs: readonly string[]): Promise<void> {
  const refs = (await node.ctr(['images', 'ls', '-q']))
    .split('\n')
    .filter((ref) => ref.includes(`/${repository}:`) || ref.includes(`/${repository}@`) || configs.includes(ref));
  if (refs.length > 0) await node.ctr(['images', 'rm', '--sync', ...refs]);
}
