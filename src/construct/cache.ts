/**
 * The cache: a StatefulSet with a volume per replica whose pods run the front (nginx, on the
 * port nodes pull from) and CNCF Distribution in proxy mode behind it; one ConfigMap with
 * Distribution's config.yml, its credential helper and the front's nginx.conf; a ClusterIP
 * Service for the nodes and a headless Service. Both caches share the volume: Distribution
 * keeps what it fetched for the proxy TTL, the front keeps recently used digests within
 * FRONT_MAX_SHARE of it (see front.ts). With `spec.objectStorage.s3`, Distribution keeps its
 * cache in the bucket instead, one cache for all replicas, and the volume is the front's. Two
 * more containers export metrics: mtail turns the front's access log into the front's own hits
 * and bytes, which Distribution never sees; the Prometheus node_exporter reports the volume's
 * size and free space (node_filesystem_*), whatever backs it.
 *
 * The constructor resolves the spec once into a CacheContext; each container is a function of it
 * in cache-containers.ts, and the pod runs the list CACHE_CONTAINERS.
 */

import { mirrorChildNames } from '../api/children.js';
import { CONFIG_HASH_ANNOTATION, CREDENTIALS_HASH_ANNOTATION, DEFAULT_FILL, DEFAULT_STORAGE } from '../api/names.js';
import { credentialHelperScript, frontMetricsProgram } from './assets.js';
import {
  CACHE_CONTAINERS,
  CACHE_VOLUMES,
  type CacheContext,
  FRONT_METRICS_PROGRAM,
  headlessServicePorts,
} from './cache-containers.js';
import { CREDENTIAL_HELPER_FILE, renderDistributionConfig } from './distribution-config.js';
import { FRONT_CONFIG_FILE, frontSizing, quantityBytes, renderFrontConfig } from './front.js';
import { k8s } from './k8s.js';
import { type MirrorKeeper, mirrorKeeper } from './keeper.js';
import type { MirrorParts } from './parts.js';
import { DEFAULT_CLUSTER_DOMAIN } from './platform.js';
import { configHash, defined, quantity, restrictedPod } from './pod.js';
import { REGISTRY_PORT } from './ports.js';

export interface MirrorCacheProps {
  /**
   * Hash of the content of the Secrets the registry reads (upstream credentials, bucket key), so
   * a change of either rolls the pods.
   * @default - no annotation; the pods roll only when the spec changes
   */
  readonly credentialsHash?: string;
  /** The cluster's DNS domain: `spec.fill: streaming` finds the replicas under it. @default 'cluster.local' */
  readonly clusterDomain?: string;
  /**
   * The mirror-synth image the streaming fill runs (`spec.fill: streaming`), as the platform names
   * it: the controller's own image, or synth's `--fill-image`. Used as given.
   * @default - none: a mirror with `spec.fill: streaming` is refused
   */
  readonly fillImage?: string;
}

export class MirrorCache {
  public readonly replicas: number;
  public readonly storage: string | number;
  public readonly config: k8s.KubeConfigMap;
  public readonly service: k8s.KubeService;
  public readonly headlessService: k8s.KubeService;
  public readonly statefulSet: k8s.KubeStatefulSet;
  /** The size bound's keeper (construct/keeper.ts); undefined without a mirror-synth image. */
  public readonly keeper?: MirrorKeeper;

  constructor(parts: MirrorParts, props: MirrorCacheProps = {}) {
    const { scope, spec, namespace } = parts;
    const names = mirrorChildNames(parts.mirrorName);
    const labels = parts.labelsFor('cache');
    const selector = parts.selectorFor('cache');
    this.replicas = spec.replicas ?? 1;
    this.storage = spec.volumeClaimTemplate?.spec.resources?.requests.storage ?? DEFAULT_STORAGE;
    const fill = spec.fill ?? DEFAULT_FILL;
    const s3 = spec.objectStorage?.s3;
    // With a bucket, the volume holds the front's hot cache only.
    const keeper = (this.keeper = mirrorKeeper(spec, quantityBytes(this.storage), props.fillImage));
    const sizing = frontSizing(quantityBytes(this.storage), {
      frontOnly: s3 !== undefined,
      boundBytes: keeper?.maxBytes,
    });
    const ctx: CacheContext = {
      parts,
      spec,
      fill,
      s3,
      credentials: spec.credentialsSecret !== undefined,
      readyMinFreeKiB: sizing.readyMinFreeKiB,
      configName: names.cacheConfig,
      headlessService: names.headlessService,
      clusterDomain: props.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
      fillImage: props.fillImage,
      keeper,
    };

    const data: Record<string, string> = {
      'config.yml': renderDistributionConfig({
        mirrorName: parts.mirrorName,
        upstreamUrl: spec.upstreamUrl,
        ...(s3 ? { s3 } : {}),
        keeper: keeper !== undefined,
      }),
      [FRONT_CONFIG_FILE]: renderFrontConfig({
        mirrorName: parts.mirrorName,
        sizing,
        fill,
        keeperLog: keeper !== undefined,
      }),
      [FRONT_METRICS_PROGRAM]: frontMetricsProgram(),
      // Run by Distribution for every mirror (proxy.exec): without credentials it answers with none.
      [CREDENTIAL_HELPER_FILE]: credentialHelperScript(),
    };
    this.config = new k8s.KubeConfigMap(scope, 'CacheConfig', {
      metadata: { name: names.cacheConfig, namespace, labels },
      data,
    });
    this.headlessService = new k8s.KubeService(scope, 'HeadlessService', {
      metadata: { name: names.headlessService, namespace, labels },
      spec: { clusterIp: 'None', selector, publishNotReadyAddresses: true, ports: headlessServicePorts(ctx) },
    });
    this.service = new k8s.KubeService(scope, 'Service', {
      metadata: { name: names.service, namespace, labels },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{ name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });

    const annotations: Record<string, string> = { [CONFIG_HASH_ANNOTATION]: configMapHash(data) };
    if (props.credentialsHash !== undefined) annotations[CREDENTIALS_HASH_ANNOTATION] = props.credentialsHash;
    this.statefulSet = new k8s.KubeStatefulSet(scope, 'Cache', {
      metadata: { name: names.statefulSet, namespace, labels },
      spec: {
        serviceName: this.headlessService.name,
        replicas: this.replicas,
        podManagementPolicy: 'Parallel',
        // The cache is disposable: its claims go with the StatefulSet (so with the mirror), and
        // stay when scaled down, where a later scale-up reuses them.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Retain' },
        selector: { matchLabels: selector },
        template: {
          metadata: { labels, annotations },
          spec: {
            securityContext: restrictedPod(1000, { fsGroup: 1000 }),
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            priorityClassName: spec.priorityClassName,
            nodeSelector: spec.nodeSelector,
            tolerations: spec.tolerations?.map((t) => ({ ...t })),
            imagePullSecrets: parts.imagePullSecrets,
            containers: defined(CACHE_CONTAINERS.map((container) => container(ctx))),
            volumes: defined(CACHE_VOLUMES.map((volume) => volume(ctx))),
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'cache', labels },
            spec: {
              accessModes: spec.volumeClaimTemplate?.spec.accessModes ?? ['ReadWriteOnce'],
              storageClassName: spec.volumeClaimTemplate?.spec.storageClassName,
              resources: { requests: { storage: quantity(this.storage) } },
            },
          },
        ],
      },
    });
  }
}

/** The config-hash annotation: the ConfigMap's keys and values in key order. */
function configMapHash(data: Record<string, string>): string {
  return configHash(
    Object.keys(data)
      .sort()
      .map((k) => `${k}\n${data[k]}`)
      .join('\n'),
  );
}
