/**
 * Supervised informers on top of client-node's ListWatch.
 *
 * ListWatch reconnects by itself when a watch ends normally (server-side timeout) and relists
 * after a 410 Gone; any other error (API server down, CRD missing, 403, ...) fires its `error`
 * callback and it stops for good. This wrapper restarts it after `restartDelayMs()` (the
 * SECONDS_BETWEEN_STREAMS wait, jittered), keeping its cache and last resourceVersion so the
 * restart resumes the watch where it left off.
 *
 * It also asks the API server for bookmarks and a randomized watch timeout (as client-go does),
 * and trims each object before caching it (`transform`), so caches hold only what the
 * controller reads. With `metadataOnly` the API server sends PartialObjectMetadata: no `data`
 * or `spec` at all, but every annotation, and kubectl's `last-applied-configuration` can hold a
 * whole Secret, values included; `trimMetadata` drops it before anything is cached.
 *
 * A watch that receives nothing for `watchIdleMs` (no headers, no event, not even one of the
 * bookmarks the API server sends about once a minute) is on a dead connection: it is aborted
 * with a WatchIdleError and restarted soon after, from where it left off. The list requests
 * have their deadline from the KubeConfig (deadline.ts).
 */
import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  Watch,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { describeError, errorStatus } from '../api/kube-errors.js';

export interface SupervisedInformerOptions<T extends KubernetesObject> {
  /** Short name for logs and metrics, such as `registrymirrors`. */
  readonly name: string;
  readonly kubeConfig: KubeConfig;
  /** Watch path, such as `/api/v1/namespaces/kube-extra/secrets`. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  /** Such as `metadata.name=mirror-synth-allowlist`: one object (RBAC's resourceNames then apply to list and watch). */
  readonly fieldSelector?: string;
  /** Ask for metadata only (PartialObjectMetadata): list and watch carry no data. @default false */
  readonly metadataOnly?: boolean;
  /** Trim an object before it is cached. @default identity */
  readonly transform?: (obj: T) => T;
  /**
   * Wait before restarting after an error, in milliseconds, given the error and how many
   * restarts in a row failed before it.
   */
  readonly restartDelayMs: (err: unknown, failures: number) => number;
  readonly logger: Logger;
  /**
   * Called on every add, update and delete the cache sees, with the object the cache held before
   * (undefined on add, and after a relist, where only the new state is known).
   */
  readonly onChange: (obj: T, verb: 'add' | 'update' | 'delete', previous: T | undefined) => void;
  /** Called when the informer stops on an error (before the restart is scheduled). */
  readonly onError?: (err: unknown) => void;
  /** Watch timeout range in seconds, the server ends each watch after a random time in it. */
  readonly watchTimeoutSeconds: readonly [number, number];
  /** Abort a watch that receives nothing for this long. */
  readonly watchIdleMs: number;
}

/** A watch received nothing, not even a bookmark, for too long: its connection is presumed dead. */
export class WatchIdleError extends Error {
  override readonly name = 'WatchIdleError';
  constructor(
    readonly path: string,
    readonly idleMs: number,
  ) {
    super(`watch of ${path} received nothing for ${Math.round(idleMs / 100) / 10}s (not even a bookmark)`);
  }
}

/** The Accept header that makes the API server answer with PartialObjectMetadata(List). */
export const PARTIAL_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
export const PARTIAL_METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

/** A KubeConfig as Watch uses it, with an Accept header added to every request. */
function withAccept(kc: KubeConfig, accept: string): KubeConfig {
  return new Proxy(kc, {
    get(target, prop, receiver) {
      if (prop === 'applyToFetchOptions') {
        return (opts: { headers?: Record<string, string> }) =>
          target.applyToFetchOptions({ ...opts, headers: { ...(opts.headers ?? {}), Accept: accept } });
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * A KubeConfig as Watch uses it, whose fetch options carry `idle()`'s signal too. Watch sets its
 * own AbortController's signal on the options it gets (and has no timeout of its own), so the
 * options' `signal` is an accessor: what Watch sets is combined with the idle signal of the
 * watch being started, and node-fetch reads the combination.
 */
function withIdleSignal(kc: KubeConfig, idle: () => AbortSignal | undefined): KubeConfig {
  return new Proxy(kc, {
    get(target, prop, receiver) {
      if (prop === 'applyToFetchOptions') {
        return async (opts: object) => {
          const extra = idle(); // before the await: the signal of the watch that asks
          const init = await target.applyToFetchOptions(opts);
          if (extra === undefined) return init;
          let own: AbortSignal | undefined;
          Object.defineProperty(init, 'signal', {
            configurable: true,
            enumerable: true,
            get: () => (own ? AbortSignal.any([own, extra]) : extra),
            set: (signal: AbortSignal | undefined) => (own = signal),
          });
          return init;
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * A Watch that asks for bookmarks and a server-side timeout, trims objects before the cache sees
 * them, and aborts a watch that receives nothing for `idleMs`.
 */
class TunedWatch<T extends KubernetesObject> extends Watch {
  /** The idle signal of the watch being started (ListWatch runs one watch at a time). */
  private readonly starting: { signal?: AbortSignal };
  /** The watch under way, to cancel on stop: ListWatch.stop() cannot abort one still waiting for its headers. */
  private current: AbortController | undefined;

  constructor(
    kc: KubeConfig,
    private readonly transform: (obj: T) => T,
    private readonly timeoutRange: readonly [number, number],
    private readonly idleMs: number,
    /** Called with each object event before the cache applies it. */
    private readonly beforeEvent: (obj: T) => void,
  ) {
    const starting: { signal?: AbortSignal } = {};
    super(withIdleSignal(kc, () => starting.signal));
    this.starting = starting;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any
    done: (err: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any
  ): Promise<AbortController> {
    const [min, max] = this.timeoutRange;
    const timeoutSeconds = Math.floor(min + Math.random() * Math.max(0, max - min));
    const idle = new AbortController();
    this.current = idle;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(new WatchIdleError(path, this.idleMs)), this.idleMs);
      timer.unref();
    };
    let ended = false;
    const end = (err: unknown): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      done(idle.signal.aborted ? idle.signal.reason : err);
    };
    arm();
    this.starting.signal = idle.signal;
    const started = super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true, timeoutSeconds },
      (phase, obj, raw) => {
        arm(); // any event, bookmarks included, shows the connection is alive
        const isObject = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
        if (!isObject) {
          callback(phase, obj, raw);
          return;
        }
        const trimmed = this.transform(obj as T);
        this.beforeEvent(trimmed);
        callback(phase, trimmed, raw);
      },
      end,
    );
    this.starting.signal = undefined;
    return started;
  }

  /** Abort the watch under way, whether or not its response has begun. */
  cancel(): void {
    this.current?.abort(new Error('informer stopped'));
    this.current = undefined;
  }
}

export class SupervisedInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly watch: TunedWatch<T>;
  private stopped = true;
  private restartTimer: NodeJS.Timeout | undefined;
  private syncedOnce = false;
  private failing = false;
  /** Errors since the last successful list or watch event. */
  private failures = 0;
  private readonly syncWaiters: Array<() => void> = [];
  /** The cached object an event replaces, set just before the cache applies the event. */
  private previous: T | undefined;
  /** Restarts after errors, for metrics and tests. */
  restarts = 0;

  constructor(private readonly opts: SupervisedInformerOptions<T>) {
    const transform = opts.transform ?? ((o: T) => o);
    const kc = opts.metadataOnly ? withAccept(opts.kubeConfig, PARTIAL_METADATA) : opts.kubeConfig;
    const idleMs = opts.watchIdleMs;
    const watch = new TunedWatch<T>(kc, transform, opts.watchTimeoutSeconds, idleMs, (o) => {
      this.previous = this.lw.get(o.metadata?.name ?? '', o.metadata?.namespace);
    });
    this.watch = watch;
    const list = async (): Promise<KubernetesListObject<T>> => {
      this.previous = undefined;
      const result = await opts.list();
      const items = (result.items ?? []).map(transform);
      // ListWatch fills its cache synchronously right after this promise settles.
      setImmediate(() => this.markSynced());
      return { ...result, items };
    };
    this.lw = new ListWatch<T>(opts.path, watch, list, false, opts.labelSelector, opts.fieldSelector);
    // After a relist ListWatch reports changes itself, without a watch event: no previous object then.
    const emit = (o: T, verb: 'add' | 'update' | 'delete') => {
      const previous = this.previous;
      this.previous = undefined;
      opts.onChange(o, verb, previous);
    };
    this.lw.on('add', (o) => emit(o, 'add'));
    this.lw.on('update', (o) => emit(o, 'update'));
    this.lw.on('delete', (o) => emit(o, 'delete'));
    this.lw.on('error', (err) => this.handleError(err));
  }

  /** Start listing and watching. Resolves once the first list and watch request were made (or failed). */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.opts.logger.debug({ informer: this.opts.name }, 'informer starting');
    await this.lw.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.lw.stop();
    this.watch.cancel();
    for (const w of this.syncWaiters.splice(0)) w();
  }

  /** Whether the first full list has completed (the cache can be trusted to be complete). */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** Resolves when the first list completes (or the informer is stopped). */
  whenSynced(): Promise<void> {
    if (this.syncedOnce || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(): ReadonlyArray<T> {
    return this.lw.list();
  }

  private markSynced(): void {
    this.failures = 0;
    if (this.failing) {
      this.failing = false;
      this.opts.logger.info({ informer: this.opts.name }, 'informer recovered');
    }
    if (this.syncedOnce) return;
    this.syncedOnce = true;
    this.opts.logger.info({ informer: this.opts.name, objects: this.lw.list().length }, 'informer synced');
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private handleError(err: unknown): void {
    if (this.stopped) return; // aborting the watch on stop() reports an AbortError
    this.failing = true;
    this.opts.onError?.(err);
    const delay = this.opts.restartDelayMs(err, this.failures);
    this.failures++;
    const status = errorStatus(err);
    const fields = {
      informer: this.opts.name,
      path: this.opts.path,
      retryInMs: delay,
      status,
      err: describeError(err),
    };
    if (status === 404) {
      this.opts.logger.warn(
        fields,
        'resource not found (is the CustomResourceDefinition installed?); waiting before retrying',
      );
    } else {
      this.opts.logger.warn(fields, 'informer stopped on an error; restarting after a pause');
    }
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.restarts++;
      this.opts.logger.info({ informer: this.opts.name, restarts: this.restarts }, 'informer restarting');
      this.lw.start().catch((e: unknown) => this.handleError(e));
    }, delay);
  }
}

/** Drop what no reader of the cache needs: managedFields and kubectl's last-applied copy (which may hold Secret data). */
export function trimMetadata<T extends KubernetesObject>(obj: T): T {
  const meta = obj.metadata;
  if (!meta) return obj;
  const { annotations, ...rest } = meta;
  delete rest.managedFields;
  const out = { ...obj, metadata: { ...rest } };
  if (annotations) {
    const keep = { ...annotations };
    delete keep['kubectl.kubernetes.io/last-applied-configuration'];
    if (Object.keys(keep).length > 0) out.metadata.annotations = keep;
  }
  return out;
}

/** Keep only the metadata of a child object: all the planner reads. */
export function metadataOnly<T extends KubernetesObject>(obj: T): T {
  const trimmed = trimMetadata(obj);
  return { apiVersion: obj.apiVersion, kind: obj.kind, metadata: trimmed.metadata } as T;
}
