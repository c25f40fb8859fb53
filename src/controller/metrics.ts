/** Prometheus metrics of one controller instance, on a registry of its own. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ControllerMetrics {
  readonly registry: Registry;
  /** Reconciles by result: `success`, `stalled`, `retry`, `deleted`. */
  readonly reconcileTotal: Counter<'result'>;
  /** Errors by kind of failure: `apply`, `prune`, `status`, `event`, `informer`, `internal`. */
  readonly errorsTotal: Counter<'type'>;
  readonly reconcileDuration: Histogram;
  /** Latency of one server-side apply, by child kind. */
  readonly applyDuration: Histogram<'kind'>;
  /** Write requests sent to the API server, by verb and resource. */
  readonly writesTotal: Counter<'verb' | 'resource'>;
  readonly watchedMirrors: Gauge;
  readonly queueDepth: Gauge;
  /** API requests sent and not answered yet (watches and the Lease's own requests aside), read at each scrape. */
  readonly apiRequestsInFlight: Gauge;
  readonly informerRestarts: Counter<'informer'>;
  readonly isLeader: Gauge;
  /** 1 while a mirror's condition (`Ready`, `Reconciling`, `Stalled`) is True, else 0; per mirror. */
  readonly mirrorCondition: Gauge<'mirror' | 'condition'>;
}

/** The `type` values of mirror_synth_errors_total, exported at 0 from the start so rates exist. */
export const ERROR_TYPES = ['apply', 'prune', 'status', 'event', 'informer', 'internal'] as const;

export interface MetricsOptions {
  /** @default true */
  readonly defaultMetrics?: boolean;
  /** API requests in flight now (the controller's RequestFence). @default - always 0 */
  readonly apiRequestsInFlight?: () => number;
}

export function createMetrics(opts: MetricsOptions = {}): ControllerMetrics {
  const inFlight = opts.apiRequestsInFlight ?? (() => 0);
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'mirror_synth_' });
  const registers = [registry];
  return {
    registry,
    reconcileTotal: new Counter({
      name: 'mirror_synth_reconcile_total',
      help: 'Reconciles of RegistryMirrors by result.',
      labelNames: ['result'],
      registers,
    }),
    errorsTotal: zeroed(
      new Counter({ name: 'mirror_synth_errors_total', help: 'Errors by type.', labelNames: ['type'], registers }),
    ),
    reconcileDuration: new Histogram({
      name: 'mirror_synth_reconcile_duration_seconds',
      help: 'Duration of one reconcile of one RegistryMirror.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    applyDuration: new Histogram({
      name: 'mirror_synth_apply_duration_seconds',
      help: 'Latency of one server-side apply of one child object.',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    writesTotal: new Counter({
      name: 'mirror_synth_api_writes_total',
      help: 'Write requests (apply, delete, status, events, leases) sent to the API server.',
      labelNames: ['verb', 'resource'],
      registers,
    }),
    watchedMirrors: new Gauge({
      name: 'mirror_synth_watched_mirrors',
      help: 'RegistryMirrors in the informer cache.',
      registers,
    }),
    queueDepth: new Gauge({ name: 'mirror_synth_queue_depth', help: 'Mirrors waiting to be reconciled.', registers }),
    apiRequestsInFlight: new Gauge({
      name: 'mirror_synth_api_requests_in_flight',
      help: "API requests sent and not answered yet (lists, reads, applies, status and Event writes; not watches, nor the Lease's requests).",
      registers,
      collect() {
        this.set(inFlight());
      },
    }),
    informerRestarts: new Counter({
      name: 'mirror_synth_informer_restarts_total',
      help: 'Informer restarts after an error.',
      labelNames: ['informer'],
      registers,
    }),
    isLeader: new Gauge({ name: 'mirror_synth_leader', help: '1 while this instance leads.', registers }),
    mirrorCondition: new Gauge({
      name: 'mirror_synth_mirror_condition',
      help: "1 while the RegistryMirror's condition is True, by mirror and condition (Ready, Reconciling, Stalled).",
      labelNames: ['mirror', 'condition'],
      registers,
    }),
  };
}

function zeroed(counter: Counter<'type'>): Counter<'type'> {
  for (const type of ERROR_TYPES) counter.inc({ type }, 0);
  return counter;
}
