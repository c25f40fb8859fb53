/**
 * The size bound (`spec.cache.maxSize`): mirror-synth's keeper, a container of the cache pod from
 * the mirror-synth image (the one the streaming fill runs, MirrorCacheProps.fillImage). It counts
 * the whole volume (Distribution's store, the front's copy, the fill's spool) and evicts the least
 * recently used images from Distribution's store above the bound (src/keeper/keeper.ts). The front
 * tells it what it served (a syslog datagram per request, on the pod's loopback): its recency.
 *
 * Without a mirror-synth image (synth with no --fill-image) there is no keeper: a mirror that sets
 * no bound keeps today's behaviour (Distribution's 7-day TTL, the front's max_size), and one that
 * sets spec.cache.maxSize is refused (construct/images.ts fillImageProblem).
 *
 * With `spec.objectStorage`, Distribution's store is the bucket: the bound is the volume's (the
 * front's copy, bounded by its max_size within it, and the spool); the keeper measures it and
 * reports it, and the bucket is bounded by its lifecycle rules (docs/data-path.md).
 */
import type { MirrorSpec } from '../api/schema.js';
import { REGISTRY_STORAGE_PATH } from './distribution-config.js';
import { quantityBytes } from './front.js';
import { k8s } from './k8s.js';
import { quantities, RESTRICTED_CONTAINER } from './pod.js';
import { KEEPER_LOG_PORT, KEEPER_METRICS_PORT, KEEPER_METRICS_PORT_NAME } from './ports.js';

/**
 * The default size bound of a mirror's store (`spec.cache.maxSize`), as a share of its volume:
 * below the front's min_free (10 % free) and readiness (5 % free), with room for what one scan
 * interval of pulls adds before the keeper evicts it, and for the filesystem's own overhead.
 */
export const DEFAULT_CACHE_MAX_SHARE = 0.75;

/** The keeper of one mirror: its bound and its container. */
export interface MirrorKeeper {
  /** The bound, in bytes. */
  readonly maxBytes: number;
  readonly container: k8s.Container;
  /** The headless Service's port for its metrics. */
  readonly servicePort: k8s.ServicePort;
}

/** A mirror's bound in bytes: spec.cache.maxSize, or DEFAULT_CACHE_MAX_SHARE of the volume, in whole MiB. */
export function cacheMaxBytes(spec: Pick<MirrorSpec, 'cache'>, volumeBytes: number): number {
  const set = spec.cache?.maxSize;
  if (set !== undefined) return quantityBytes(set);
  return Math.floor((volumeBytes * DEFAULT_CACHE_MAX_SHARE) / 2 ** 20) * 2 ** 20;
}

/** The keeper, or undefined when no mirror-synth image is named (see the top of this file). */
export function mirrorKeeper(
  spec: Pick<MirrorSpec, 'cache' | 'objectStorage'>,
  volumeBytes: number,
  image: string | undefined,
): MirrorKeeper | undefined {
  if (image === undefined) return undefined;
  const maxBytes = cacheMaxBytes(spec, volumeBytes);
  return {
    maxBytes,
    container: {
      // No probes: a keeper that fails must not take the cache out of the Service; the volume's
      // readiness check still does when it fills.
      name: 'keeper',
      image,
      args: [
        'keeper',
        '--store',
        REGISTRY_STORAGE_PATH,
        '--max-size',
        String(maxBytes),
        ...(spec.objectStorage ? ['--object-storage'] : []),
        '--log-listen',
        `127.0.0.1:${KEEPER_LOG_PORT}`,
        // every interface: Prometheus scrapes it (the NetworkPolicy admits the monitoring pods only)
        '--metrics-listen',
        `:${KEEPER_METRICS_PORT}`,
      ],
      ports: [{ name: KEEPER_METRICS_PORT_NAME, containerPort: KEEPER_METRICS_PORT }],
      env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=64' }],
      resources: {
        requests: quantities({ cpu: '10m', memory: '48Mi' }),
        limits: quantities({ memory: '128Mi' }),
      },
      securityContext: RESTRICTED_CONTAINER,
      volumeMounts: [{ name: 'cache', mountPath: REGISTRY_STORAGE_PATH }],
    },
    servicePort: {
      name: KEEPER_METRICS_PORT_NAME,
      port: KEEPER_METRICS_PORT,
      targetPort: k8s.IntOrString.fromString(KEEPER_METRICS_PORT_NAME),
    },
  };
}
