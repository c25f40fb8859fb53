/**
 * The controller, runnable in-process: `startController()` returns a handle whose `stop()`
 * shuts it down cleanly. `mirror-synth controller` wraps it with signal handling.
 *
 * Informers on RegistryMirrors (cluster-wide) and, in the output namespace only, on Secrets and
 * on the children it manages feed a work queue keyed by mirror name; workers reconcile one
 * mirror at a time each. Only the holder of the Lease (when leader election is on) runs them.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { type DestinationStream, type Logger, pino } from 'pino';

import { describeError, errorStatus } from '../api/kube-errors.js';
import { loadKubeConfig } from '../sources/kubeconfig.js';
import { SupervisedInformer, metadataOnly, trimMetadata } from './informer.js';
import { KubeClient, type RegistryMirrorObject } from './kube.js';
import { MANAGED_SELECTOR, API_GROUP, PLURAL, API_VERSION, type NodeRuntime } from '../api/names.js';
import { LeaderElector } from './leader.js';
import { type ControllerMetrics, createMetrics } from './metrics.js';
import { ChildIndex, Reconciler } from './reconciler.js';
import { startProbeServer, type ProbeServer } from './http.js';
import type { LiveMeta } from './plan.js';
import type { SecretLike } from './credentials.js';
import { WorkQueue } from './queue.js';

export interface StartControllerOptions {
  /** A loaded KubeConfig; else the default chain (KUBECONFIG, ~/.kube/config, in-cluster). */
  readonly kubeConfig?: KubeConfig;
  /** Output namespace of every mirror's children. */
  readonly namespace: string;
  readonly clusterDomain?: string;
  /** The cluster's node container runtime, for the node agents. @default 'containerd' */
  readonly nodeRuntime?: NodeRuntime;
  /** Wait before restarting informers after an API failure or while the CRD does not exist. */
  readonly secondsBetweenStreams: number;
  /** Port of /metrics (and of the probes unless `probePort` is set); 0 picks a free port. @default - no server */
  readonly metricsPort?: number;
  /** Port of /healthz and /readyz when they should not share the metrics port. */
  readonly probePort?: number;
  readonly leaderElection: boolean;
  /** @default - `namespace` */
  readonly leaseNamespace?: string;
  /** @default 'mirror-synth-controller' */
  readonly leaseName?: string;
  /** @default - hostname plus a random suffix */
  readonly identity?: string;
  readonly leaseDurationSeconds?: number;
  readonly renewDeadlineSeconds?: number;
  readonly retryPeriodSeconds?: number;
  /** Reconcile every mirror this often even without events. @default 600 */
  readonly resyncSeconds?: number;
  /** Mirrors reconciled concurrently. @default 4 */
  readonly workers?: number;
  /** Server-side watch timeout range in seconds. @default [300, 600] */
  readonly watchTimeoutSeconds?: readonly [number, number];
  /** @default 'info' */
  readonly logLevel?: string;
  /** A logger to use as is. @default - pino JSON to `logDestination` */
  readonly logger?: Logger;
  /** @default - stdout */
  readonly logDestination?: DestinationStream;
  /** Longest per-mirror retry backoff in milliseconds. @default 120_000 */
  readonly maxRetryDelayMs?: number;
}

export interface RunningController {
  /** Resolves after `stop()`; rejects when the controller fails for good (it lost its Lease). */
  readonly done: Promise<void>;
  /** Stop reconciling, wait for reconciles in flight, stop watching, release the Lease. */
  stop(): Promise<void>;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
  /** Port the metrics server listens on, when there is one. */
  readonly metricsPort?: number;
  readonly probePort?: number;
  /** Undefined when ready, else why not. */
  readiness(): string | undefined;
  /** Whether no mirror is queued or being reconciled (delayed retries excepted). */
  idle(): boolean;
  /** Resolves once this instance leads, its caches are synced and its workers run. */
  readonly running: Promise<void>;
  /** Queue every known mirror for reconciling now (what the periodic resync does). */
  resync(): void;
}

function jitter(ms: number, fraction = 0.1): number {
  return Math.round(ms * (1 + (Math.random() * 2 - 1) * fraction));
}

/**
 * How long a failed informer waits before it starts again. The API server asking to come back
 * soon (429, e.g. "storage is (re)initializing" right after a CRD is created) gets a short
 * jittered exponential backoff from 500 ms; any other failure (API server down, CRD missing,
 * access denied) waits SECONDS_BETWEEN_STREAMS, jittered by 10%.
 */
export function informerRestartDelayMs(err: unknown, failures: number, secondsBetweenStreams: number): number {
  const cap = secondsBetweenStreams * 1000;
  if (errorStatus(err) === 429) return Math.min(cap, jitter(500 * 2 ** Math.min(failures, 10), 0.2));
  return jitter(cap);
}

export function createLogger(opts: { level?: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { component: 'mirror-synth-controller' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Defence in depth: no code path logs these, and if one ever did they would be masked.
      redact: {
        paths: ['data', '*.data', 'stringData', '*.stringData', 'password', '*.password', 'auth', '*.auth'],
        censor: '[redacted]',
      },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export async function startController(opts: StartControllerOptions): Promise<RunningController> {
  const logger = opts.logger ?? createLogger({ level: opts.logLevel, destination: opts.logDestination });
  const kc = opts.kubeConfig ?? loadKubeConfig();
  const metrics = createMetrics();
  const identity = opts.identity ?? `${hostname()}_${randomUUID().slice(0, 8)}`;
  const client = new KubeClient(kc, metrics, identity);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const { namespace } = opts;
  const restartDelayMs = (err: unknown, failures: number) =>
    informerRestartDelayMs(err, failures, opts.secondsBetweenStreams);

  const queue = new WorkQueue({ maxDelayMs: opts.maxRetryDelayMs ?? 120_000 });
  const children = new ChildIndex();
  const informers: SupervisedInformer<KubernetesObject>[] = [];
  // Filled in below; the informer callbacks consult it once it exists.
  const state: { reconciler?: Reconciler } = {};

  const common = {
    kubeConfig: kc,
    restartDelayMs,
    logger,
    ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
  };
  const onInformerError = (name: string) => () => {
    metrics.errorsTotal.inc({ type: 'informer' });
    metrics.informerRestarts.inc({ informer: name });
  };

  const mirrors = new SupervisedInformer<RegistryMirrorObject>({
    ...common,
    name: PLURAL,
    path: `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`,
    list: async () =>
      (await custom.listClusterCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        plural: PLURAL,
      })) as KubernetesListObject<RegistryMirrorObject>,
    transform: trimMetadata,
    onChange: (obj, verb) => {
      metrics.watchedMirrors.set(mirrors.list().length);
      const name = obj.metadata?.name;
      if (!name) return;
      if (verb === 'update' && state.reconciler?.isOwnStatusWrite(obj)) return;
      queue.add(name);
    },
    onError: onInformerError(PLURAL),
  });

  const mirrorsUsingSecret = (secret: string): string[] =>
    mirrors
      .list()
      .filter((m) => (m.spec as { credentialsSecret?: unknown } | undefined)?.credentialsSecret === secret)
      .map((m) => m.metadata?.name ?? '')
      .filter(Boolean);

  const onChild = (obj: KubernetesObject, verb: 'add' | 'update' | 'delete'): void => {
    const mirror = children.update(obj as LiveMeta, verb);
    if (mirror === undefined) return;
    if (verb !== 'delete' && state.reconciler?.isOwnWrite(obj as LiveMeta)) return;
    queue.add(mirror);
  };

  const secrets = new SupervisedInformer<SecretLike & KubernetesObject>({
    ...common,
    name: 'secrets',
    path: `/api/v1/namespaces/${namespace}/secrets`,
    list: async () => core.listNamespacedSecret({ namespace }),
    transform: (s) => {
      const t = trimMetadata(s);
      return { apiVersion: 'v1', kind: 'Secret', metadata: t.metadata, type: s.type, data: s.data };
    },
    onChange: (obj, verb) => {
      onChild(obj, verb);
      for (const m of mirrorsUsingSecret(obj.metadata?.name ?? '')) queue.add(m);
    },
    onError: onInformerError('secrets'),
  });

  const childInformer = (
    name: string,
    apiVersion: string,
    kind: string,
    path: string,
    list: () => Promise<KubernetesListObject<KubernetesObject>>,
  ) =>
    new SupervisedInformer<KubernetesObject>({
      ...common,
      name,
      path,
      list,
      labelSelector: MANAGED_SELECTOR,
      transform: (o) => ({ ...metadataOnly(o), apiVersion, kind }),
      onChange: onChild,
      onError: onInformerError(name),
    });

  const labelSelector = MANAGED_SELECTOR;
  informers.push(
    mirrors,
    secrets,
    childInformer('configmaps', 'v1', 'ConfigMap', `/api/v1/namespaces/${namespace}/configmaps`, async () =>
      core.listNamespacedConfigMap({ namespace, labelSelector }),
    ),
    childInformer('services', 'v1', 'Service', `/api/v1/namespaces/${namespace}/services`, async () =>
      core.listNamespacedService({ namespace, labelSelector }),
    ),
    childInformer(
      'statefulsets',
      'apps/v1',
      'StatefulSet',
      `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
      async () => apps.listNamespacedStatefulSet({ namespace, labelSelector }),
    ),
    childInformer('daemonsets', 'apps/v1', 'DaemonSet', `/apis/apps/v1/namespaces/${namespace}/daemonsets`, async () =>
      apps.listNamespacedDaemonSet({ namespace, labelSelector }),
    ),
  );

  const reconciler = new Reconciler({
    client,
    namespace,
    ...(opts.clusterDomain ? { clusterDomain: opts.clusterDomain } : {}),
    ...(opts.nodeRuntime ? { nodeRuntime: opts.nodeRuntime } : {}),
    mirrors,
    secrets,
    children,
    watchedKinds: new Set(['Secret', 'ConfigMap', 'Service', 'StatefulSet', 'DaemonSet']),
    logger,
    metrics,
  });
  state.reconciler = reconciler;

  const elector = opts.leaderElection
    ? new LeaderElector({
        kubeConfig: kc,
        namespace: opts.leaseNamespace ?? namespace,
        ...(opts.leaseName ? { leaseName: opts.leaseName } : {}),
        identity,
        ...(opts.leaseDurationSeconds ? { leaseDurationSeconds: opts.leaseDurationSeconds } : {}),
        ...(opts.renewDeadlineSeconds ? { renewDeadlineSeconds: opts.renewDeadlineSeconds } : {}),
        ...(opts.retryPeriodSeconds ? { retryPeriodSeconds: opts.retryPeriodSeconds } : {}),
        logger,
      })
    : undefined;

  // --- lifecycle -----------------------------------------------------------------------
  let stopping = false;
  let phase: 'standby' | 'syncing' | 'running' | 'stopped' = opts.leaderElection ? 'standby' : 'syncing';
  let active = 0;
  const workers: Promise<void>[] = [];
  let resyncTimer: NodeJS.Timeout | undefined;
  let resolveDone!: () => void;
  let rejectDone!: (err: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => undefined); // observed by the caller; avoid an unhandled rejection if it is not
  let resolveRunning!: () => void;
  const running = new Promise<void>((resolve) => (resolveRunning = resolve));

  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      active++;
      metrics.queueDepth.set(queue.length);
      try {
        const requeue = await reconciler.reconcile(key);
        if (requeue === 'backoff') queue.addRateLimited(key);
        else queue.forget(key);
      } catch (err) {
        metrics.errorsTotal.inc({ type: 'internal' });
        metrics.reconcileTotal.inc({ result: 'error' });
        const delay = queue.addRateLimited(key);
        logger.warn({ mirror: key, err: describeError(err), retryInMs: delay }, 'reconcile failed; will retry');
      } finally {
        active--;
        queue.done(key);
      }
    }
  };

  const resync = (): void => {
    for (const m of mirrors.list()) if (m.metadata?.name) queue.add(m.metadata.name);
    for (const m of children.mirrors()) queue.add(m); // children of mirrors deleted while we were away
  };

  const run = async (): Promise<void> => {
    if (elector) {
      if (!(await elector.acquire())) return;
      metrics.isLeader.set(1);
      phase = 'syncing';
      elector.hold().catch(async (err: unknown) => {
        metrics.isLeader.set(0);
        logger.error({ err: describeError(err) }, 'lost leadership; stopping');
        await shutdown();
        rejectDone(err);
      });
    }
    if (stopping) return;
    await Promise.all(informers.map((i) => i.start()));
    await Promise.all(informers.map((i) => i.whenSynced()));
    if (stopping) return;
    phase = 'running';
    logger.info(
      { namespace, mirrors: mirrors.list().length, workers: opts.workers ?? 4 },
      'caches synced; reconciling',
    );
    resync();
    for (let i = 0; i < (opts.workers ?? 4); i++) workers.push(worker());
    const resyncMs = (opts.resyncSeconds ?? 600) * 1000;
    const scheduleResync = (): void => {
      resyncTimer = setTimeout(() => {
        logger.debug({ mirrors: mirrors.list().length }, 'periodic resync');
        resync();
        scheduleResync();
      }, jitter(resyncMs));
    };
    scheduleResync();
    resolveRunning();
  };

  let probeServer: ProbeServer | undefined;
  let metricsServer: ProbeServer | undefined;
  const health = (): string | undefined => (phase === 'stopped' ? 'stopped' : undefined);
  const readiness = (): string | undefined => {
    if (phase === 'stopped') return 'stopped';
    if (phase === 'standby') return undefined; // a healthy standby waiting for the Lease
    const waiting = informers.filter((i) => !i.synced).length;
    if (waiting > 0) return `waiting for ${waiting} informer(s) to sync (is the RegistryMirror CRD installed?)`;
    return undefined;
  };

  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down');
    if (resyncTimer) clearTimeout(resyncTimer);
    queue.shutDown();
    await Promise.all(workers); // reconciles in flight finish
    await Promise.all(informers.map((i) => i.stop()));
    await elector?.stop();
    metrics.isLeader.set(0);
    phase = 'stopped';
    await Promise.all([probeServer?.close(), metricsServer?.close()]);
    logger.info('stopped');
    logger.flush?.();
  };

  try {
    if (opts.metricsPort !== undefined) {
      const samePort = opts.probePort === undefined || opts.probePort === opts.metricsPort;
      metricsServer = await startProbeServer({ port: opts.metricsPort, registry: metrics.registry, health, readiness });
      if (!samePort) {
        probeServer = await startProbeServer({ port: opts.probePort, registry: metrics.registry, health, readiness });
      }
    } else if (opts.probePort !== undefined) {
      probeServer = await startProbeServer({ port: opts.probePort, registry: metrics.registry, health, readiness });
    }
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }

  logger.info(
    {
      namespace,
      server: kc.getCurrentCluster()?.server,
      leaderElection: opts.leaderElection,
      identity,
      secondsBetweenStreams: opts.secondsBetweenStreams,
      metricsPort: metricsServer?.port,
    },
    'controller starting',
  );
  run().catch(async (err: unknown) => {
    logger.error({ err: describeError(err) }, 'controller failed');
    await shutdown();
    rejectDone(err);
  });

  return {
    done,
    async stop() {
      await shutdown();
      resolveDone();
    },
    metrics,
    logger,
    ...(metricsServer ? { metricsPort: metricsServer.port } : {}),
    ...(probeServer ? { probePort: probeServer.port } : metricsServer ? { probePort: metricsServer.port } : {}),
    readiness,
    idle: () => queue.length === 0 && active === 0,
    running,
    resync,
  };
}
