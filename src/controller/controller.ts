/**
 * The controller, runnable in-process: `startController()` returns a handle whose `stop()`
 * shuts it down cleanly. `mirror-synth controller` wraps it with signal handling.
 *
 * Wiring only: the watches are declared in watches.ts, reconciling is in reconciler.ts. Here a
 * supervised informer is made for each watch, feeding a work queue keyed by mirror name, and the
 * lifecycle runs: wait for the output namespace, take the Lease (when leader election is on),
 * sync the caches, then reconcile with a few workers and resync periodically.
 */
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { describeError, errorStatus } from '../api/kube-errors.js';
import { mirrorName } from '../api/kube-object.js';
import { LiveAllowlist } from './allowlist.js';
import { ChildIndex, SecretIndex } from './caches.js';
import { type ControllerConfig, type ControllerOptions, resolveControllerConfig } from './config.js';
import { referencedSecrets } from './credentials.js';
import { RequestFence, withDeadlines } from './deadline.js';
import { startServers } from './http.js';
import { SupervisedInformer } from './informer.js';
import { KubeClient, type RegistryMirrorObject } from './kube.js';
import { LeaderElector, LeadershipLostError } from './leader.js';
import { createLogger } from './log.js';
import { type ControllerMetrics, createMetrics } from './metrics.js';
import { ProgressMonitor } from './progress.js';
import { informerRestartDelayMs, jitter, WorkQueue } from './queue.js';
import { Reconciler } from './reconciler.js';
import { ReferencedSecrets } from './secrets.js';
import {
  ALLOWLIST_WATCH,
  controllerWatches,
  MIRRORS_WATCH,
  SECRETS_WATCH,
  type WatchContext,
  WATCHED_KINDS,
  type WatchSpec,
} from './watches.js';

/** What startController is given; resolveControllerConfig() fills in the rest. */
export type StartControllerOptions = ControllerOptions;

export interface RunningController {
  /**
   * Resolves after `stop()`; rejects when the controller fails for good: with a
   * LeadershipLostError as soon as it could not renew its Lease (it has stopped reconciling by then).
   */
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
  /** Undefined when live (what /healthz says), else why not. */
  health(): string | undefined;
  /** Whether no mirror is queued or being reconciled (delayed retries excepted). */
  idle(): boolean;
  /** Resolves once this instance leads, its caches are synced and its workers run. */
  readonly running: Promise<void>;
  /** Queue every known mirror for reconciling now (what the periodic resync does). */
  resync(): void;
  /** Names of the Secrets whose data the process holds (only referenced ones). */
  heldSecrets(): string[];
}

/** What /readyz says while the output namespace is missing: the fix, in one line. */
export function namespaceMissingMessage(namespace: string): string {
  return (
    `namespace ${namespace} (the output namespace) does not exist: apply \`mirror-synth controller-manifests\`, ` +
    `or create it with the label pod-security.kubernetes.io/enforce=privileged (the node agent mounts a hostPath)`
  );
}

type Phase = 'starting' | 'no-namespace' | 'standby' | 'syncing' | 'running' | 'stopped';

/** One controller process: its informers, queue and workers, and the order they start and stop in. */
class Controller {
  readonly logger: Logger;
  /** Aborted when the Lease is lost: every API request in flight fails, and no later one is sent. */
  private readonly fence = new RequestFence();
  readonly metrics = createMetrics({ apiRequestsInFlight: () => this.fence.inFlight });
  private readonly queue: WorkQueue;
  private readonly children = new ChildIndex();
  private readonly secretIndex = new SecretIndex();
  /** The informers by watch name (watches.ts). */
  private readonly informers: Record<string, SupervisedInformer<KubernetesObject>>;
  private readonly mirrors: SupervisedInformer<RegistryMirrorObject>;
  private readonly secrets: ReferencedSecrets;
  private readonly allowlist: LiveAllowlist;
  private readonly reconciler: Reconciler;
  private readonly elector: LeaderElector | undefined;
  private readonly core: CoreV1Api;
  private readonly workerCount: number;
  private readonly progress: ProgressMonitor;
  private phase: Phase = 'starting';
  private stopping = false;
  private active = 0;
  private readonly workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private resolveRunning!: () => void;
  readonly running = new Promise<void>((resolve) => (this.resolveRunning = resolve));

  constructor(private readonly opts: ControllerConfig) {
    this.logger = opts.logger ?? createLogger({ level: opts.logLevel, destination: opts.logDestination });
    // Every API client made from kc sends with a deadline, and stops once the Lease is lost.
    const kc = withDeadlines(opts.kubeConfig, { timeoutMs: opts.requestTimeoutSeconds * 1000, fence: this.fence });
    this.progress = new ProgressMonitor(opts.stallSeconds * 1000);
    const client = new KubeClient(kc, this.metrics, opts.identity);
    this.core = kc.makeApiClient(CoreV1Api);
    this.workerCount = opts.workers;
    this.queue = new WorkQueue({ maxDelayMs: opts.maxRetryDelayMs });

    const ctx: WatchContext = {
      indexChild: (obj, verb) => this.children.update(obj, verb),
      isOwnWrite: (obj) => this.reconciler.isOwnWrite(obj),
      mirrorsUsingSecret: (name) => this.secretIndex.mirrorsUsing(name),
      mirrorsStalledBy: (reason) =>
        this.mirrors
          .list()
          .filter((m) =>
            m.status?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True' && c.reason === reason),
          )
          .map(mirrorName),
      allMirrors: () => this.mirrors.list().map(mirrorName),
    };
    const watches = controllerWatches(kc, opts.namespace, ctx, opts.nodeAgentNamespace);
    this.informers = {};
    for (const w of watches) {
      if (this.informers[w.name]) throw new Error(`two watches are named ${w.name}`);
      this.informers[w.name] = this.informer(w, kc);
    }
    this.mirrors = this.informers[MIRRORS_WATCH];
    this.secrets = new ReferencedSecrets(this.core, opts.namespace, this.informers[SECRETS_WATCH]);
    this.allowlist = new LiveAllowlist(this.informers[ALLOWLIST_WATCH], opts.namespace, opts.policy, this.logger);
    this.reconciler = new Reconciler({
      client,
      namespace: opts.namespace,
      nodeAgentNamespace: opts.nodeAgentNamespace,
      clusterDomain: opts.clusterDomain,
      nodeRuntime: opts.nodeRuntime,
      nodeAgentImage: opts.nodeAgentImage,
      ...(opts.fillImage ? { fillImage: opts.fillImage } : {}),
      policy: () => this.allowlist.current(),
      takeover: opts.takeover,
      mirrors: this.mirrors,
      secrets: this.secrets,
      children: this.children,
      watchedKinds: WATCHED_KINDS,
      logger: this.logger,
      metrics: this.metrics,
    });
    this.elector = opts.leaderElection
      ? new LeaderElector({
          kubeConfig: opts.kubeConfig, // deadlines of its own: the renew deadline; no fence
          requestTimeoutSeconds: opts.requestTimeoutSeconds,
          namespace: opts.leaseNamespace,
          leaseName: opts.leaseName,
          identity: opts.identity,
          leaseDurationSeconds: opts.leaseDurationSeconds,
          renewDeadlineSeconds: opts.renewDeadlineSeconds,
          retryPeriodSeconds: opts.retryPeriodSeconds,
          logger: this.logger,
        })
      : undefined;
  }

  /** A supervised informer for one watch, feeding the queue. */
  private informer(w: WatchSpec, kc: KubeConfig): SupervisedInformer<KubernetesObject> {
    const { opts } = this;
    return new SupervisedInformer<KubernetesObject>({
      ...w,
      kubeConfig: kc,
      restartDelayMs: (err, failures) => informerRestartDelayMs(err, failures, opts.secondsBetweenStreams),
      logger: this.logger,
      watchIdleMs: opts.watchIdleTimeoutSeconds * 1000,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
      onChange: (obj, verb, previous) => {
        for (const m of w.enqueue(obj, verb, previous)) {
          this.logger.debug({ mirror: m, informer: w.name, verb, name: obj.metadata?.name }, 'queued');
          this.queue.add(m);
        }
        if (w.name === MIRRORS_WATCH) {
          this.secretIndex.update(
            mirrorName(obj),
            verb === 'delete' ? [] : referencedSecrets((obj as RegistryMirrorObject).spec),
          );
          this.metrics.watchedMirrors.set(this.mirrors.list().length);
        }
        if (w.name === ALLOWLIST_WATCH) this.allowlist.current();
      },
      onError: () => {
        this.metrics.errorsTotal.inc({ type: 'informer' });
        this.metrics.informerRestarts.inc({ informer: w.name });
      },
    });
  }

  /** Start: resolves once the controller runs (leads, caches synced); rejects when it fails for good. */
  async run(onLostLease: (err: unknown) => void): Promise<void> {
    await this.waitForNamespace();
    if (this.elector) {
      this.phase = 'standby';
      if (this.stopping || !(await this.elector.acquire())) return;
      this.metrics.isLeader.set(1);
      this.elector.hold().catch(async (err: unknown) => {
        // Stop at once, before a standby can take the Lease (it waits a whole lease duration):
        // fence every API request, so no write of this instance goes out from now on.
        this.fence.abort(err);
        this.metrics.isLeader.set(0);
        this.logger.error(
          {
            err: describeError(err),
            renewDeadlineSeconds: this.opts.renewDeadlineSeconds,
          },
          'lost leadership: stopped every API request; exiting so that a standby takes over',
        );
        await this.stop();
        onLostLease(err instanceof LeadershipLostError ? err : new LeadershipLostError(describeError(err)));
      });
    }
    if (this.stopping) return;
    this.phase = 'syncing';
    await Promise.all(Object.values(this.informers).map((i) => i.start()));
    await Promise.all(Object.values(this.informers).map((i) => i.whenSynced()));
    if (this.stopping) return;
    this.phase = 'running';
    this.logger.info(
      { namespace: this.opts.namespace, mirrors: this.mirrors.list().length, workers: this.workerCount },
      'caches synced; reconciling',
    );
    this.resync();
    for (let i = 0; i < this.workerCount; i++) this.workers.push(this.worker());
    this.scheduleResync();
    this.resolveRunning();
  }

  /**
   * The output namespace must exist before anything else: the Lease and every child live there.
   * While it is missing, say so once with the fix, fail /readyz, and look again every
   * SECONDS_BETWEEN_STREAMS.
   */
  private async waitForNamespace(): Promise<void> {
    const { namespace } = this.opts;
    let told = false;
    while (!this.stopping) {
      try {
        await this.core.readNamespace({ name: namespace });
        if (told) this.logger.info({ namespace }, 'output namespace exists now');
        return;
      } catch (err) {
        if (errorStatus(err) === 404) {
          this.phase = 'no-namespace';
          if (!told) this.logger.error({ namespace }, namespaceMissingMessage(namespace));
          told = true;
        } else if (errorStatus(err) === 403) {
          return; // may not read namespaces (a namespaced Role): find out from the Lease and the informers
        } else {
          this.logger.warn({ namespace, err: describeError(err) }, 'could not read the output namespace; retrying');
        }
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, jitter(this.opts.secondsBetweenStreams * 1000));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.active++;
      const token = this.progress.started(key);
      this.metrics.queueDepth.set(this.queue.length);
      try {
        const requeue = await this.reconciler.reconcile(key);
        if (requeue === 'backoff') {
          this.queue.addRateLimited(key);
        } else {
          this.queue.forget(key);
          if (requeue !== 'none') this.queue.addAfter(key, requeue.afterMs);
        }
      } catch (err) {
        this.metrics.errorsTotal.inc({ type: 'internal' });
        this.metrics.reconcileTotal.inc({ result: 'error' });
        const delay = this.queue.addRateLimited(key);
        this.logger.warn({ mirror: key, err: describeError(err), retryInMs: delay }, 'reconcile failed; will retry');
      } finally {
        this.progress.finished(token);
        this.active--;
        this.queue.done(key);
      }
    }
  }

  resync(): void {
    const referenced = new Set<string>();
    for (const m of this.mirrors.list()) {
      if (m.metadata?.name) this.queue.add(m.metadata.name);
      for (const secret of referencedSecrets(m.spec)) referenced.add(secret);
    }
    this.secrets.retainOnly(referenced);
    for (const m of this.children.mirrors()) this.queue.add(m); // children of mirrors deleted while we were away
  }

  private scheduleResync(): void {
    const resyncMs = this.opts.resyncSeconds * 1000;
    this.resyncTimer = setTimeout(() => {
      this.logger.debug({ mirrors: this.mirrors.list().length }, 'periodic resync');
      this.resync();
      this.scheduleResync();
    }, jitter(resyncMs));
  }

  health(): string | undefined {
    if (this.phase === 'stopped') return 'stopped';
    return this.phase === 'running' ? this.progress.stalled(this.queue.length) : undefined;
  }

  readiness(): string | undefined {
    switch (this.phase) {
      case 'stopped':
        return 'stopped';
      case 'no-namespace':
        return namespaceMissingMessage(this.opts.namespace);
      case 'standby':
        return undefined; // a healthy standby waiting for the Lease
      default: {
        const waiting = Object.values(this.informers).filter((i) => !i.synced).length;
        if (waiting > 0) return `waiting for ${waiting} informer(s) to sync (is the RegistryMirror CRD installed?)`;
        return this.phase === 'starting' ? 'starting' : undefined;
      }
    }
  }

  idle(): boolean {
    return this.queue.length === 0 && this.active === 0;
  }

  heldSecrets(): string[] {
    return this.secrets.held();
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info('shutting down');
    this.wake?.();
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.workers); // reconciles in flight finish
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
    await this.elector?.stop();
    this.metrics.isLeader.set(0);
    this.phase = 'stopped';
  }
}

export async function startController(options: StartControllerOptions): Promise<RunningController> {
  const opts = resolveControllerConfig(options);
  const controller = new Controller(opts);
  const { logger, metrics } = controller;
  const health = () => controller.health();
  const readiness = () => controller.readiness();
  const { servers, metricsServer, probeServer } = await startServers(opts, {
    registry: metrics.registry,
    health,
    readiness,
  });

  let resolveDone!: () => void;
  let rejectDone!: (err: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => undefined); // observed by the caller; avoid an unhandled rejection if it is not
  const shutdown = async (): Promise<void> => {
    await controller.stop();
    await Promise.all(servers.map((s) => s.close()));
    logger.info('stopped');
    logger.flush?.();
  };

  logger.info(
    {
      namespace: opts.namespace,
      nodeAgentNamespace: opts.nodeAgentNamespace,
      server: opts.kubeConfig.getCurrentCluster()?.server,
      leaderElection: opts.leaderElection,
      secondsBetweenStreams: opts.secondsBetweenStreams,
      metricsPort: metricsServer?.port,
    },
    'controller starting',
  );
  controller
    .run((err) => {
      void Promise.all(servers.map((s) => s.close())).then(() => rejectDone(err));
    })
    .catch(async (err: unknown) => {
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
    health,
    idle: () => controller.idle(),
    running: controller.running,
    resync: () => controller.resync(),
    heldSecrets: () => controller.heldSecrets(),
  };
}
