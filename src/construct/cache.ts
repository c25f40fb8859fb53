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
 */

import {
  CONFIG_HASH_ANNOTATION,
  CREDENTIALS_HASH_ANNOTATION,
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_FILL,
  DEFAULT_STORAGE,
  DISTRIBUTION_PORT,
  FILL_METRICS_PORT,
  FILL_METRICS_PORT_NAME,
  FRONT_FILL_PORT,
  FRONT_LOG_PORT,
  FRONT_METRICS_PORT,
  FRONT_METRICS_PORT_NAME,
  mirrorChildNames,
  REGISTRY_DEBUG_PORT,
  REGISTRY_METRICS_PORT,
  REGISTRY_PORT,
  S3_CREDENTIAL_KEYS,
  VOLUME_METRICS_PORT,
  VOLUME_METRICS_PORT_NAME,
} from '../api/names.js';
import { credentialHelperScript, frontMetricsProgram } from './assets.js';
import {
  CREDENTIAL_HELPER_FILE,
  CREDENTIALS_DIR,
  REGISTRY_CONFIG_DIR,
  REGISTRY_CONFIG_PATH,
  REGISTRY_STORAGE_PATH,
  renderDistributionConfig,
} from './distribution-config.js';
import {
  FILL_SPOOL_PATH,
  FRONT_CONFIG_DIR,
  FRONT_CONFIG_FILE,
  FRONT_TMP_PATH,
  frontReadinessScript,
  frontSizing,
  quantityBytes,
  renderFrontConfig,
} from './front.js';
import { imageFor } from './images.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';
import { configHash, quantities, quantity, RESTRICTED_CONTAINER, RUNTIME_DEFAULT_SECCOMP } from './pod.js';
import { warmContainers, warmServicePorts, warmVolumes } from './warm.js';

/** The mtail program's key in the ConfigMap, and where the front-metrics container reads it. */
const FRONT_METRICS_PROGRAM = 'front.mtail';
const FRONT_METRICS_PROGRAM_DIR = '/etc/mirror-synth/front-metrics';

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

  constructor(parts: MirrorParts, props: MirrorCacheProps = {}) {
    const { scope, spec, namespace } = parts;
    const names = mirrorChildNames(parts.mirrorName);
    this.replicas = spec.replicas ?? 1;
    this.storage = spec.volumeClaimTemplate?.spec.resources?.requests.storage ?? DEFAULT_STORAGE;
    const labels = parts.labelsFor('cache');
    const selector = parts.selectorFor('cache');

    const credentials = spec.credentialsSecret !== undefined;
    const fill = spec.fill ?? DEFAULT_FILL;
    const s3 = spec.objectStorage?.s3;
    // With a bucket, the volume holds the front's hot cache only.
    const sizing = frontSizing(quantityBytes(this.storage), { frontOnly: s3 !== undefined });
    const data: Record<string, string> = {
      'config.yml': renderDistributionConfig({
        mirrorName: parts.mirrorName,
        upstreamUrl: spec.upstreamUrl,
        ...(s3 ? { s3 } : {}),
      }),
      [FRONT_CONFIG_FILE]: renderFrontConfig({ mirrorName: parts.mirrorName, sizing, fill }),
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
      spec: {
        clusterIp: 'None',
        selector,
        publishNotReadyAddresses: true,
        ports: [
          { name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'metrics', port: REGISTRY_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
          {
            name: FRONT_METRICS_PORT_NAME,
            port: FRONT_METRICS_PORT,
            targetPort: k8s.IntOrString.fromString(FRONT_METRICS_PORT_NAME),
          },
          {
            name: VOLUME_METRICS_PORT_NAME,
            port: VOLUME_METRICS_PORT,
            targetPort: k8s.IntOrString.fromString(VOLUME_METRICS_PORT_NAME),
          },
          ...(fill === 'streaming'
            ? [
                {
                  name: FILL_METRICS_PORT_NAME,
                  port: FILL_METRICS_PORT,
                  targetPort: k8s.IntOrString.fromString(FILL_METRICS_PORT_NAME),
                },
              ]
            : []),
          ...warmServicePorts(spec),
        ],
      },
    });
    this.service = new k8s.KubeService(scope, 'Service', {
      metadata: { name: names.service, namespace, labels },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{ name: 'http', port: REGISTRY_PORT, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });

    const annotations: Record<string, string> = {
      [CONFIG_HASH_ANNOTATION]: configHash(
        Object.keys(data)
          .sort()
          .map((k) => `${k}\n${data[k]}`)
          .join('\n'),
      ),
    };
    if (props.credentialsHash !== undefined) annotations[CREDENTIALS_HASH_ANNOTATION] = props.credentialsHash;
    const probe = (
      action: Pick<k8s.Probe, 'httpGet' | 'exec' | 'tcpSocket'>,
      periodSeconds: number,
      failureThreshold: number,
    ): k8s.Probe => ({
      ...action,
      periodSeconds,
      failureThreshold,
      timeoutSeconds: 5,
    });
    // Distribution's /debug/health answers 503 while a health check (the storage driver) fails. Its
    // debug server listens on the pod's loopback, which the kubelet cannot reach: run in the
    // container (the image's busybox wget exits non-zero on a 503; the probe's timeout bounds it).
    const registryHealth = {
      exec: { command: ['wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${REGISTRY_DEBUG_PORT}/debug/health`] },
    };

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
            // Pod Security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp.
            securityContext: {
              ...RUNTIME_DEFAULT_SECCOMP,
              runAsNonRoot: true,
              runAsUser: 1000,
              runAsGroup: 1000,
              fsGroup: 1000,
            },
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            priorityClassName: spec.priorityClassName,
            nodeSelector: spec.nodeSelector,
            tolerations: spec.tolerations?.map((t) => ({ ...t })),
            imagePullSecrets: parts.imagePullSecrets,
            containers: [
              {
                name: 'front',
                image: imageFor('front', spec),
                command: [
                  'nginx',
                  '-e',
                  'stderr',
                  '-c',
                  `${FRONT_CONFIG_DIR}/${FRONT_CONFIG_FILE}`,
                  '-g',
                  'daemon off;',
                ],
                ports: [
                  { name: 'http', containerPort: REGISTRY_PORT },
                  // Distribution's metrics, which the front passes on from its debug server (front.ts)
                  { name: 'metrics', containerPort: REGISTRY_METRICS_PORT },
                ],
                resources: {
                  requests: quantities({ cpu: '50m', memory: '32Mi' }),
                  limits: quantities({ memory: '256Mi' }),
                },
                // Out of the Service when the volume is full or Distribution is not healthy: nodes fall back.
                readinessProbe: probe(
                  { exec: { command: ['sh', '-c', frontReadinessScript(sizing.readyMinFreeKiB)] } },
                  5,
                  1,
                ),
                livenessProbe: probe({ tcpSocket: { port: k8s.IntOrString.fromString('http') } }, 20, 6),
                securityContext: RESTRICTED_CONTAINER,
                volumeMounts: [
                  { name: 'front-config', mountPath: FRONT_CONFIG_DIR, readOnly: true },
                  { name: 'cache', mountPath: REGISTRY_STORAGE_PATH },
                  { name: 'front-tmp', mountPath: FRONT_TMP_PATH },
                ],
              },
              {
                name: 'registry',
                image: imageFor('registry', spec),
                command: ['registry', 'serve', REGISTRY_CONFIG_PATH],
                ports: [{ name: 'registry', containerPort: DISTRIBUTION_PORT }],
                env: [
                  { name: 'OTEL_TRACES_EXPORTER', value: 'none' },
                  ...(credentials ? [{ name: 'CREDENTIALS_DIR', value: CREDENTIALS_DIR }] : []),
                  ...s3CredentialsEnv(s3?.credentialsSecret),
                ],
                resources: {
                  requests: quantities(spec.resources?.requests ?? { cpu: '100m', memory: '128Mi' }),
                  limits: quantities(spec.resources?.limits ?? { memory: '1Gi' }),
                },
                readinessProbe: probe(registryHealth, 10, 3),
                livenessProbe: probe(registryHealth, 20, 6),
                securityContext: RESTRICTED_CONTAINER,
                volumeMounts: [
                  { name: 'config', mountPath: REGISTRY_CONFIG_DIR, readOnly: true },
                  { name: 'cache', mountPath: REGISTRY_STORAGE_PATH },
                  { name: 'tmp', mountPath: '/tmp' },
                  ...(credentials ? [{ name: 'credentials', mountPath: CREDENTIALS_DIR, readOnly: true }] : []),
                ],
              },
              ...(fill === 'streaming'
                ? [
                    fillContainer(
                      fillImageOf(parts.mirrorName, props.fillImage),
                      `_http._tcp.${names.headlessService}.${namespace}.svc.${props.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN}`,
                    ),
                  ]
                : []),
              ...warmContainers(parts, props.fillImage),
              {
                // No probes: a failing check of metrics alone must not take the cache out of the Service.
                name: 'front-metrics',
                image: imageFor('frontMetrics', spec),
                args: [
                  '--progs',
                  FRONT_METRICS_PROGRAM_DIR,
                  // the pod's loopback only: nothing outside the pod can feed it lines
                  '--logs',
                  `udp://127.0.0.1:${FRONT_LOG_PORT}`,
                  '--port',
                  String(FRONT_METRICS_PORT),
                  '--logtostderr',
                  '--emit_prog_label=false',
                  '--http_debugging_endpoint=false',
                ],
                ports: [{ name: FRONT_METRICS_PORT_NAME, containerPort: FRONT_METRICS_PORT }],
                resources: {
                  requests: quantities({ cpu: '10m', memory: '16Mi' }),
                  limits: quantities({ memory: '64Mi' }),
                },
                securityContext: RESTRICTED_CONTAINER,
                volumeMounts: [{ name: 'front-metrics-program', mountPath: FRONT_METRICS_PROGRAM_DIR, readOnly: true }],
              },
              {
                // The volume's size and free space for the PodMonitor, from the volume itself:
                // the kubelet's volume stats exist only where the kubelet is scraped, and not for
                // every volume type. node_exporter finds mounts in /proc/1/mountinfo, which is its
                // own here (the containers do not share a process namespace).
                name: 'volume-exporter',
                image: imageFor('volumeExporter', spec),
                args: volumeExporterArgs(),
                ports: [{ name: VOLUME_METRICS_PORT_NAME, containerPort: VOLUME_METRICS_PORT }],
                // about 16 MB resident with this one collector (the e2e test's build of the same version)
                resources: {
                  requests: quantities({ cpu: '10m', memory: '24Mi' }),
                  limits: quantities({ memory: '64Mi' }),
                },
                // No readiness probe: a pod is Ready only when all its containers are, and the
                // mirror must keep serving when only its volume metrics fail (`up` shows that).
                securityContext: RESTRICTED_CONTAINER,
                volumeMounts: [{ name: 'cache', mountPath: REGISTRY_STORAGE_PATH, readOnly: true }],
              },
            ],
            volumes: [
              {
                name: 'config',
                configMap: {
                  name: this.config.name,
                  items: ['config.yml', CREDENTIAL_HELPER_FILE].map((key) => ({
                    key,
                    path: key,
                  })),
                  // The credential helper is run by Distribution, so it must be executable.
                  defaultMode: 0o555,
                },
              },
              {
                name: 'front-config',
                configMap: { name: this.config.name, items: [{ key: FRONT_CONFIG_FILE, path: FRONT_CONFIG_FILE }] },
              },
              {
                name: 'front-metrics-program',
                configMap: {
                  name: this.config.name,
                  items: [{ key: FRONT_METRICS_PROGRAM, path: FRONT_METRICS_PROGRAM }],
                },
              },
              { name: 'tmp', emptyDir: {} },
              { name: 'front-tmp', emptyDir: {} },
              // A volume, not env vars: the kubelet updates the files when the Secret changes, and
              // the helper reads them again after CREDENTIALS_LIFETIME, without a restart.
              ...(credentials
                ? [{ name: 'credentials', secret: { secretName: spec.credentialsSecret, defaultMode: 0o440 } }]
                : []),
              ...warmVolumes(parts),
            ],
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

/**
 * mirror-synth's streaming fill (`spec.fill: streaming`), on the pod's loopback between the front
 * and Distribution, from the image the platform names (MirrorCacheProps.fillImage); it spools
 * transfers in progress on the cache volume. It finds the other replicas through the headless
 * Service's SRV records (`peersSrv`), by pod name, so that each digest is fetched by one owner
 * replica whichever replica nodes ask; the args do not depend on `spec.replicas`, so scaling rolls
 * no pod. No probes: when it is down, the front answers its digests 404 (nginx's 502 handling) and
 * nodes fall back to the upstream, as when Distribution is down.
 */
function fillContainer(image: string, peersSrv: string): k8s.Container {
  return {
    name: 'fill',
    image,
    args: [
      'fill',
      '--listen',
      `127.0.0.1:${FRONT_FILL_PORT}`,
      '--distribution',
      `http://127.0.0.1:${DISTRIBUTION_PORT}`,
      '--spool',
      FILL_SPOOL_PATH,
      '--peers-srv',
      peersSrv,
      // every interface: Prometheus scrapes it (the NetworkPolicy admits the monitoring pods only)
      '--metrics-listen',
      `:${FILL_METRICS_PORT}`,
    ],
    ports: [{ name: FILL_METRICS_PORT_NAME, containerPort: FILL_METRICS_PORT }],
    env: [
      // A small heap: bodies go through 1 MiB buffers and the spool file, never whole into memory.
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=96' },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    ],
    resources: {
      requests: quantities({ cpu: '50m', memory: '64Mi' }),
      limits: quantities({ memory: '192Mi' }),
    },
    securityContext: RESTRICTED_CONTAINER,
    volumeMounts: [{ name: 'cache', mountPath: REGISTRY_STORAGE_PATH }],
  };
}

/**
 * The fill's image. Commands check every mirror first and name the file (construct/images.ts
 * fillImageProblem); this is for the construct used on its own.
 */
function fillImageOf(mirrorName: string, fillImage: string | undefined): string {
  if (fillImage === undefined)
    throw new Error(
      `RegistryMirror '${mirrorName}': spec.fill is streaming, which runs the mirror-synth image, and no fillImage is set`,
    );
  return fillImage;
}

/**
 * The bucket's credentials as env from the Secret (a secretKeyRef: the value is never in the
 * manifests). The SDK reads them once at start, so a rotated key takes effect when the pods
 * restart (the controller rolls them; see the README).
 */
function s3CredentialsEnv(secretName: string | undefined): k8s.EnvVar[] {
  if (secretName === undefined) return [];
  return Object.entries(S3_CREDENTIAL_KEYS).map(([key, name]) => ({
    name,
    valueFrom: { secretKeyRef: { name: secretName, key } },
  }));
}

/**
 * node_exporter's flags: the filesystem collector only, for the cache volume's mount point
 * only, and none of the exporter's own process and Go metrics.
 */
function volumeExporterArgs(): string[] {
  const mountPoint = REGISTRY_STORAGE_PATH.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return [
    `--web.listen-address=:${VOLUME_METRICS_PORT}`,
    '--web.disable-exporter-metrics',
    '--collector.disable-defaults',
    '--collector.filesystem',
    `--collector.filesystem.mount-points-include=^${mountPoint}$`,
  ];
}
