// What the real-node e2e tests do on the node: run an upstream registry on it, apply manifests
// as `kubectl apply --server-side` does, and start Pods, with the kubelet's events when one
// does not run.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  type V1Pod,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

import { type FillMode } from '../../../src/api/names.js';
import { DEFAULT_NAMESPACE } from '../../../src/construct/platform.js';
import { namespaceObjects, synthesizeMirror } from '../../../src/synth/chart.js';
import { type ClusterNode, type NodeCluster, type NodeClusterOptions, startNodeCluster } from '../components/node.js';
import { RegistryClient } from '../fixtures/images.js';
import { CONTROLLER_IMAGE, importStandInImages, PAUSE_IMAGE } from '../fixtures/stand-in-images.js';
import { ensureTool } from '../primitives/tools.js';
import { waitFor } from '../primitives/wait.js';

/**
 * A real cluster (startNodeCluster, one node unless `nodes` says more) whose every containerd has every stand-in image (the sandbox, the
 * synthesized Pods' images and the controller's), as the e2e tests run the mission on it.
 */
export function startStandInNode(opts: Omit<NodeClusterOptions, 'sandboxImage' | 'images'>): Promise<NodeCluster> {
  return startNodeCluster({
    ...opts,
    sandboxImage: PAUSE_IMAGE,
    images: ({ ctr, address, caPem, root }) =>
      importStandInImages({ ctr, address, caPem, workDir: join(root, 'images') }),
  });
}

export interface NodeClients {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly objects: KubernetesObjectApi;
}

export function nodeClients(node: NodeCluster): NodeClients {
  const kc = new KubeConfig();
  kc.loadFromFile(node.kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

/** One request in a registry's access log (Apache combined format). */
export interface Served {
  readonly remote: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
}

export function parseAccessLog(text: string): Served[] {
  const served: Served[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d+) (\d+|-)/.exec(line);
    if (m) served.push({ remote: m[1], method: m[2], path: m[3], status: Number(m[4]), bytes: Number(m[5]) || 0 });
  }
  return served;
}

export interface NodeUpstream {
  /** The host name Pods and the node reach it by (resolved by the cluster DNS and /etc/hosts). */
  readonly host: string;
  /** A client on the host side of the bridge, to push test images. */
  readonly client: RegistryClient;
  /** Every request it served so far, oldest first. */
  requests(): Promise<Served[]>;
}

export interface NodeUpstreamOptions {
  /** The node IP's port it listens on. @default 443 */
  readonly port?: number;
  /** More names its certificate holds (each in the node's `hostNames`). @default - none */
  readonly aliases?: readonly string[];
}

/**
 * Distribution as the upstream registry, on the node IP's :443 (or `port`) with a certificate of
 * the cluster CA for `host` and any `aliases` (pass them in the node's `hostNames`). Anonymous,
 * like a public registry.
 */
export async function startNodeUpstream(
  node: NodeCluster,
  host: string,
  opts: NodeUpstreamOptions = {},
): Promise<NodeUpstream> {
  const port = opts.port ?? 443;
  const registry = await ensureTool('registry');
  const dir = join(node.root, 'upstream');
  await mkdir(dir, { recursive: true });
  const tls = await node.serverCert('upstream', [host, ...(opts.aliases ?? []), node.nodeIp, '127.0.0.1']);
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: {level: info, formatter: json, fields: {service: upstream}}',
      `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
      'http:',
      `  addr: ${node.nodeIp}:${port}`,
      `  tls: {certificate: ${tls.cert}, key: ${tls.key}}`,
      '',
    ].join('\n'),
  );
  // Distribution v3 exports OpenTelemetry traces to localhost:4318 unless told not to
  node.spawn('upstream', registry, ['serve', join(dir, 'config.yml')], { OTEL_TRACES_EXPORTER: 'none' });
  const client = new RegistryClient({ url: `https://127.0.0.1:${await node.forward(port)}`, ca: node.caCert });
  await waitFor(
    'the upstream to serve /v2/',
    async () => ((await client.request('GET', '/v2/')).status === 200 ? true : undefined),
    30_000,
    200,
  );
  const log = join(node.logDir, 'upstream.log');
  return { host, client, requests: async () => parseAccessLog(await readFile(log, 'utf8')) };
}

/** Parse YAML documents into objects as client-node sends them. */
export function objectsOf(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null)
    .map((o) => loadYaml<KubernetesObject>(JSON.stringify(o)));
}

/** `kubectl apply --server-side`, CRDs and Namespaces first as kubectl orders them. */
export async function applyObjects(
  api: KubernetesObjectApi,
  objects: readonly KubernetesObject[],
  fieldManager: string,
): Promise<void> {
  const order = (o: KubernetesObject): number =>
    o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace' ? 0 : 1;
  for (const o of [...objects].sort((a, b) => order(a) - order(b))) {
    try {
      await api.patch(o, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply);
    } catch (e) {
      throw new Error(`apply ${o.kind}/${o.metadata?.name}: ${e instanceof ApiException ? String(e.body) : String(e)}`);
    }
  }
}

/** A Pod running `image` (`sleep`); resolves once it is Running, or fails with the Pod's events. */
export async function runPod(core: CoreV1Api, name: string, image: string, namespace = 'default'): Promise<V1Pod> {
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: { containers: [{ name: 'app', image }], terminationGracePeriodSeconds: 0 },
    },
  });
  try {
    return await waitFor(
      `Pod ${name} (${image}) to run`,
      async () => {
        const pod = await core.readNamespacedPod({ name, namespace });
        return pod.status?.phase === 'Running' ? pod : undefined;
      },
      120_000,
      250,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await podEvents(core, name, namespace)}`);
  }
}

/**
 * Once the node agent has written the upstream's hosts.toml, run Pod `pod` of `image` and delete it,
 * and say who fetched its blobs from the upstream meanwhile: `fetchers`, the addresses of those
 * requests, and `cacheIP`, the address of mirror `mirror`'s cache pod. Through the mirror, the cache
 * pod is the only fetcher.
 */
export async function pullThroughMirror(opts: {
  core: CoreV1Api;
  upstream: NodeUpstream;
  hostsToml: () => Promise<string | undefined>;
  pod: string;
  image: string;
  namespace: string;
  mirror: string;
}): Promise<{ blobRequests: number; fetchers: Set<string>; cacheIP: string | undefined }> {
  const { core, upstream, namespace } = opts;
  await waitFor(
    "the node agent's hosts.toml",
    async () => ((await opts.hostsToml())?.includes('[host.') ? true : undefined),
    120_000,
    500,
  );
  const before = (await upstream.requests()).length;
  await runPod(core, opts.pod, opts.image);
  const [cache] = (
    await core.listNamespacedPod({
      namespace,
      labelSelector: `mirror=${opts.mirror},app.kubernetes.io/component=cache`,
    })
  ).items;
  const served = (await upstream.requests()).slice(before).filter((r) => r.path.includes('/blobs/'));
  await deletePod(core, opts.pod);
  return { blobRequests: served.length, fetchers: new Set(served.map((r) => r.remote)), cacheIP: cache?.status?.podIP };
}

/** A Pod's events, one per line, for failure messages. */
export async function podEvents(core: CoreV1Api, name: string, namespace: string): Promise<string> {
  const events = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  return `events of Pod ${namespace}/${name}:\n${events.items.map((e) => `  ${e.reason}: ${e.message}`).join('\n')}`;
}

/** Delete a Pod at once and wait until it is gone. */
export async function deletePod(core: CoreV1Api, name: string, namespace = 'default'): Promise<void> {
  await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
  await waitFor(
    `Pod ${name} to be gone`,
    async () =>
      (await core.readNamespacedPod({ name, namespace }).then(
        () => false,
        () => true,
      ))
        ? true
        : undefined,
    60_000,
    250,
  );
}

/**
 * Waits for GET `path` on the Service's ClusterIP, from the node, to answer 200, as a user's `curl`
 * would, and returns the code. A mirror's Ready follows its pods' readiness; kube-proxy programs
 * the ClusterIP's rules when it sees the EndpointSlice change, a sync period later, so what the
 * node sends to the Service right after Ready may not reach the new pods yet. The Service is read
 * on each try (a takeover may replace it).
 */
export async function serviceAnswers(
  node: Pick<ClusterNode, 'run'>,
  core: CoreV1Api,
  name: string,
  namespace: string,
  opts: { port?: number; path?: string; timeoutMs?: number; why?: string } = {},
): Promise<string> {
  const { port = 5000, path = '/v2/', timeoutMs = 10_000 } = opts;
  return waitFor(
    `GET ${path} through Service ${namespace}/${name} to answer 200${opts.why ? ` ${opts.why}` : ''}`,
    async () => {
      const service = await core.readNamespacedService({ name, namespace });
      const url = `http://${service.spec?.clusterIP}:${port}${path}`;
      const { stdout } = await node.run('curl', ['-sS', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', url]);
      if (stdout !== '200') throw new Error(`GET ${url}: ${stdout}`);
      return stdout;
    },
    timeoutMs,
    200,
  );
}

/** The first Pod matching `labelSelector` that is Ready; on timeout, what the kubelet says of each. */
export async function readyPod(
  core: CoreV1Api,
  namespace: string,
  labelSelector: string,
  timeoutMs = 180_000,
): Promise<V1Pod> {
  try {
    return await waitFor(
      `a Ready Pod in ${namespace} matching ${labelSelector}`,
      async () => {
        const pods = await core.listNamespacedPod({ namespace, labelSelector });
        return pods.items.find(
          (p) =>
            !p.metadata?.deletionTimestamp &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
      },
      timeoutMs,
      500,
    );
  } catch (err) {
    const pods = await core.listNamespacedPod({ namespace, labelSelector });
    const why: string[] = [];
    for (const pod of pods.items) {
      const name = pod.metadata!.name!;
      const states = pod.status?.containerStatuses?.map((c) => ({
        name: c.name,
        ready: c.ready,
        state: c.state,
        last: c.lastState,
      }));
      why.push(`Pod ${name} (${pod.status?.phase}): ${JSON.stringify(states)}`, await podEvents(core, name, namespace));
      for (const c of pod.spec?.containers ?? []) {
        const log = await core
          .readNamespacedPodLog({ name, namespace, container: c.name, tailLines: 15 })
          .catch(() => '');
        why.push(`--- ${c.name} log:\n${log}`);
      }
    }
    throw new Error(`${(err as Error).message}\n${why.join('\n')}`);
  }
}

export interface ProcessKiller {
  /** How many processes it has killed so far. */
  kills(): number;
  stop(): Promise<void>;
}

/**
 * SIGKILLs every container process on the node whose argv matches, every 200 ms until stopped:
 * a container that fails each time the kubelet restarts it, until the kubelet backs off.
 */
export function keepKilling(node: NodeCluster, matches: (argv: string[]) => boolean): ProcessKiller {
  let killed = 0;
  let killing = true;
  const loop = (async () => {
    while (killing) {
      for (const { pid, argv } of await node.containerProcesses()) {
        if (!matches(argv)) continue;
        try {
          process.kill(pid, 'SIGKILL');
          killed++;
        } catch {
          // it exited already
        }
      }
      await new Promise((ok) => setTimeout(ok, 200));
    }
  })();
  return {
    kills: () => killed,
    stop: async () => {
      killing = false;
      await loop;
    },
  };
}

/** A container's Distribution (`registry serve …`). */
export const isDistribution = (argv: string[]): boolean => !!argv[0]?.endsWith('registry') && argv[1] === 'serve';

export interface NodeMirrorOptions {
  readonly name: string;
  readonly upstream: string;
  /** @default 1 */
  readonly replicas?: number;
  /** @default 'streaming' */
  readonly fill?: FillMode;
  /** @default 'kube-extra' (the default output namespace) */
  readonly namespace?: string;
}

/**
 * A RegistryMirror's objects from synthesizeMirror (the fill image the stand-in controller image,
 * a 1 GiB claim), applied with its namespace as `kubectl apply --server-side`.
 */
export async function applyMirror(k: NodeClients, opts: NodeMirrorOptions): Promise<void> {
  const objects = synthesizeMirror(
    {
      name: opts.name,
      source: 'test',
      spec: {
        upstreamUrl: opts.upstream,
        fill: opts.fill ?? 'streaming',
        replicas: opts.replicas ?? 1,
        volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
      },
    },
    { fillImage: CONTROLLER_IMAGE, namespace: opts.namespace },
  );
  const namespaces = namespaceObjects({ namespace: opts.namespace ?? DEFAULT_NAMESPACE });
  // JSON documents are YAML documents
  const yaml = [...namespaces, ...objects].map((o) => JSON.stringify(o)).join('\n---\n');
  await applyObjects(k.objects, objectsOf(yaml), 'mirror-synth-real-node-test');
}

/** A DaemonSet `name` of one container running `image`, its Pods labelled app=<name>. */
export async function createDaemonSet(
  apps: AppsV1Api,
  name: string,
  image: string,
  namespace = 'default',
): Promise<void> {
  await apps.createNamespacedDaemonSet({
    namespace,
    body: {
      metadata: { name },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image }] },
        },
      },
    },
  });
}

/** The Pods labelled app=<name> once `count` of them run; on timeout, their events. */
export async function runningPods(
  core: CoreV1Api,
  name: string,
  count: number,
  namespace = 'default',
  timeoutMs = 180_000,
): Promise<V1Pod[]> {
  const list = () => core.listNamespacedPod({ namespace, labelSelector: `app=${name}` });
  return waitFor(
    `${count} Pod(s) app=${name} to run`,
    async () => {
      const running = (await list()).items.filter(
        (p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp,
      );
      return running.length === count ? running : undefined;
    },
    timeoutMs,
    250,
  ).catch(async (err: Error) => {
    const events = await Promise.all((await list()).items.map((p) => podEvents(core, p.metadata!.name!, namespace)));
    throw new Error(`${err.message}\n${events.join('\n')}`);
  });
}
