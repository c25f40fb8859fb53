/**
 * Prometheus metrics of the keeper (`mirror-synth keeper --metrics-listen`), on a registry of their
 * own. Labels are few and fixed: no digest or repository.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export const KEEPER_METRIC_PREFIX = 'registry_mirror_keeper_';
/** What an eviction removed: an image (its manifests' links), or a blob's data. */
export const KEEPER_EVICTED_KINDS = ['image', 'blob'] as const;

export interface KeeperMetrics {
  readonly registry: Registry;
  readonly storeBytes: Gauge;
  readonly pinnedBytes: Gauge;
  readonly evictedBytes: Counter;
  readonly evictedObjects: Counter<'kind'>;
  readonly scans: Counter;
  readonly errors: Counter;
}

export function createKeeperMetrics(maxBytes: number): KeeperMetrics {
  const registry = new Registry();
  const registers = [registry];
  const name = (n: string): string => `${KEEPER_METRIC_PREFIX}${n}`;
  const bound = new Gauge({
    name: name('bound_bytes'),
    help: "The store's size bound (spec.cache.maxSize, or its default share of the volume).",
    registers,
  });
  bound.set(maxBytes);
  const metrics: KeeperMetrics = {
    registry,
    storeBytes: new Gauge({
      name: name('store_bytes'),
      help: "Bytes the cache volume holds at the last scan: Distribution's store, the front's copy and the fill's spool.",
      registers,
    }),
    pinnedBytes: new Gauge({
      name: name('pinned_bytes'),
      help: 'Bytes of pinned content (mirror-synth/pinned.json) in the store, never evicted.',
      registers,
    }),
    evictedBytes: new Counter({
      name: name('evicted_bytes_total'),
      help: 'Bytes of blob data evicted to keep the store under its bound.',
      registers,
    }),
    evictedObjects: new Counter({
      name: name('evicted_objects_total'),
      help: "Objects evicted, by kind: image (a manifest's links in a repository), blob (a blob's data).",
      labelNames: ['kind'],
      registers,
    }),
    scans: new Counter({ name: name('scans_total'), help: 'Scans of the cache volume.', registers }),
    errors: new Counter({ name: name('errors_total'), help: 'Scans that failed.', registers }),
  };
  for (const kind of KEEPER_EVICTED_KINDS) metrics.evictedObjects.inc({ kind }, 0);
  return metrics;
}
