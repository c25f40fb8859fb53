/**
 * Pinned, pre-warmed images (`spec.cache.pinned`): a ConfigMap of their own holding the list, and a
 * `warm` container in the cache pod running `mirror-synth warm` from the mirror-synth image (the
 * streaming fill's). The list is mounted as a file and is not part of the pod's config hash: the
 * kubelet rewrites the file when the list changes (within about a minute) and the container reads
 * it again, so changing what is pinned rolls no cache pod. The container fetches every pinned image
 * through the pod's front on loopback and writes the digests to PINNED_DIGESTS_FILE on the cache
 * volume, which eviction never removes; it serves /metrics and /status on WARM_PORT.
 */
import { mirrorChildNames } from '../api/children.js';
import { PINNED_DIGESTS_FILE } from '../api/names.js';
import { DEFAULT_PINNED_REFRESH_INTERVAL, type MirrorSpec } from '../api/schema.js';
import { REGISTRY_STORAGE_PATH } from './distribution-config.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';
import { quantities, RESTRICTED_CONTAINER } from './pod.js';
import { REGISTRY_PORT, WARM_PORT, WARM_PORT_NAME } from './ports.js';

/** Where the warm container reads the list, and the ConfigMap's key. */
export const PINNED_LIST_DIR = '/etc/mirror-synth/pinned';
export const PINNED_LIST_KEY = 'pinned.json';
const VOLUME = 'pinned-list';

/** The images a spec pins, or none. */
export function pinnedImages(spec: Pick<MirrorSpec, 'cache'>): readonly string[] {
  return spec.cache?.pinned ?? [];
}

/** The list file: the images in the spec's order and the refresh interval. */
export function renderPinnedList(spec: Pick<MirrorSpec, 'cache'>): string {
  const refreshInterval = spec.cache?.pinnedRefreshInterval ?? DEFAULT_PINNED_REFRESH_INTERVAL;
  return `${JSON.stringify({ images: pinnedImages(spec), refreshInterval }, null, 2)}\n`;
}

/** The ConfigMap of the list, when the spec pins any image. */
export class MirrorWarm {
  public readonly config?: k8s.KubeConfigMap;

  constructor(parts: MirrorParts) {
    if (pinnedImages(parts.spec).length === 0) return;
    this.config = new k8s.KubeConfigMap(parts.scope, 'PinnedConfig', {
      metadata: {
        name: mirrorChildNames(parts.mirrorName).pinnedConfig,
        namespace: parts.namespace,
        labels: parts.labelsFor('cache'),
      },
      data: { [PINNED_LIST_KEY]: renderPinnedList(parts.spec) },
    });
  }
}

/**
 * The warm container, when the spec pins any image. No probes: a pinned image that cannot be
 * fetched must not take the cache out of the Service (its status and metrics say so).
 */
export function warmContainers(parts: MirrorParts, image: string | undefined): k8s.Container[] {
  if (pinnedImages(parts.spec).length === 0) return [];
  if (image === undefined)
    throw new Error(
      `RegistryMirror '${parts.mirrorName}': spec.cache.pinned is set, which runs the mirror-synth image, and no fillImage is set`,
    );
  return [
    {
      name: 'warm',
      image,
      args: [
        'warm',
        '--pinned',
        `${PINNED_LIST_DIR}/${PINNED_LIST_KEY}`,
        '--registry',
        `http://127.0.0.1:${REGISTRY_PORT}`,
        '--pinned-digests',
        `${REGISTRY_STORAGE_PATH}/${PINNED_DIGESTS_FILE}`,
        // every interface: Prometheus scrapes /metrics, /status is read through the API server's pod proxy
        '--listen',
        `:${WARM_PORT}`,
      ],
      ports: [{ name: WARM_PORT_NAME, containerPort: WARM_PORT }],
      // Bodies are hashed as they stream by and thrown away: a small heap does.
      env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=48' }],
      resources: {
        requests: quantities({ cpu: '10m', memory: '48Mi' }),
        limits: quantities({ memory: '128Mi' }),
      },
      securityContext: RESTRICTED_CONTAINER,
      volumeMounts: [
        { name: VOLUME, mountPath: PINNED_LIST_DIR, readOnly: true },
        { name: 'cache', mountPath: REGISTRY_STORAGE_PATH },
      ],
    },
  ];
}

/** The list's volume, when the spec pins any image. */
export function warmVolumes(parts: MirrorParts): k8s.Volume[] {
  if (pinnedImages(parts.spec).length === 0) return [];
  return [{ name: VOLUME, configMap: { name: mirrorChildNames(parts.mirrorName).pinnedConfig } }];
}

/** The headless Service's port for the PodMonitor, when the spec pins any image. */
export function warmServicePorts(spec: Pick<MirrorSpec, 'cache'>): k8s.ServicePort[] {
  if (pinnedImages(spec).length === 0) return [];
  return [{ name: WARM_PORT_NAME, port: WARM_PORT, targetPort: k8s.IntOrString.fromString(WARM_PORT_NAME) }];
}
