/**
 * The cache pod's containers, one function each, and its volumes. Each function takes the
 * CacheContext the MirrorCache resolved once and returns its container (or none, for one the
 * spec does not ask for). The pod runs CACHE_CONTAINERS in that order: a new container is one
 * function and one line there (and, if it mounts one, a volume in CACHE_VOLUMES).
 */
import { type FillMode, S3_CREDENTIAL_KEYS } from '../api/names.js';
import type { MirrorSpec } from '../api/schema.js';
import {
  CREDENTIAL_HELPER_FILE,
  CREDENTIALS_DIR,
  REGISTRY_CONFIG_DIR,
  REGISTRY_CONFIG_PATH,
  REGISTRY_STORAGE_PATH,
} from './distribution-config.js';
import { FILL_SPOOL_PATH, FRONT_CONFIG_DIR, FRONT_CONFIG_FILE, FRONT_TMP_PATH, frontReadinessScript } from './front.js';
import { imageFor } from './images.js';
import { k8s } from './k8s.js';
import type { MirrorKeeper } from './keeper.js';
import type { MirrorParts } from './parts.js';
import { quantities, RESTRICTED_CONTAINER } from './pod.js';
import {
  DISTRIBUTION_PORT,
  FILL_METRICS_PORT,
  FILL_METRICS_PORT_NAME,
  FRONT_FILL_PORT,
  FRONT_LOG_PORT,
  FRONT_METRICS_PORT,
  FRONT_METRICS_PORT_NAME,
  REGISTRY_DEBUG_PORT,
  REGISTRY_METRICS_PORT,
  REGISTRY_PORT,
  VOLUME_METRICS_PORT,
  VOLUME_METRICS_PORT_NAME,
} from './ports.js';
import { warmContainers, warmServicePorts, warmVolumes } from './warm.js';

/** The mtail program's key in the ConfigMap, and where the front-metrics container reads it. */
export const FRONT_METRICS_PROGRAM = 'front.mtail';
const FRONT_METRICS_PROGRAM_DIR = '/etc/mirror-synth/front-metrics';

/** What the MirrorCache resolved once, for the functions that build its pod. */
export interface CacheContext {
  readonly parts: MirrorParts;
  readonly spec: Readonly<MirrorSpec>;
  readonly fill: FillMode;
  readonly s3: NonNullable<MirrorSpec['objectStorage']>['s3'] | undefined;
  /** `spec.credentialsSecret` is set: Distribution reads the upstream's credentials from it. */
  readonly credentials: boolean;
  /** The front's readiness: the volume's free space below which the replica leaves the Service. */
  readonly readyMinFreeKiB: number;
  /** The cache ConfigMap's name (Distribution's config, the front's nginx.conf, the mtail program). */
  readonly configName: string;
  /** The headless Service's name: the streaming fill finds the other replicas under it. */
  readonly headlessService: string;
  /** @see MirrorCacheProps.clusterDomain */
  readonly clusterDomain: string;
  /** The size bound's keeper (construct/keeper.ts); undefined without a mirror-synth image. */
  readonly keeper: MirrorKeeper | undefined;
  /** @see MirrorCacheProps.fillImage */
  readonly fillImage?: string;
}

/** Builds one container of the cache pod, or none when the spec does not ask for it. */
export type CacheContainer = (ctx: CacheContext) => k8s.Container | undefined;

/** The cache pod's containers, in the pod's order. */
export const CACHE_CONTAINERS: readonly CacheContainer[] = [
  frontContainer,
  registryContainer,
  fillContainer,
  (ctx) => ctx.keeper?.container,
  (ctx) => warmContainers(ctx.parts, ctx.fillImage)[0],
  frontMetricsContainer,
  volumeExporterContainer,
];

/** The cache pod's volumes (besides the claim `cache`), in the pod's order. */
export const CACHE_VOLUMES: readonly ((ctx: CacheContext) => k8s.Volume | undefined)[] = [
  (ctx) => ({
    name: 'config',
    configMap: {
      name: ctx.configName,
      items: ['config.yml', CREDENTIAL_HELPER_FILE].map((key) => ({ key, path: key })),
      // The credential helper is run by Distribution, so it must be executable.
      defaultMode: 0o555,
    },
  }),
  (ctx) => ({
    name: 'front-config',
    configMap: { name: ctx.configName, items: [{ key: FRONT_CONFIG_FILE, path: FRONT_CONFIG_FILE }] },
  }),
  (ctx) => ({
    name: 'front-metrics-program',
    configMap: { name: ctx.configName, items: [{ key: FRONT_METRICS_PROGRAM, path: FRONT_METRICS_PROGRAM }] },
  }),
  () => ({ name: 'tmp', emptyDir: {} }),
  () => ({ name: 'front-tmp', emptyDir: {} }),
  // A volume, not env vars: the kubelet updates the files when the Secret changes, and the helper
  // reads them again after CREDENTIALS_LIFETIME, without a restart.
  (ctx) =>
    ctx.credentials
      ? { name: 'credentials', secret: { secretName: ctx.spec.credentialsSecret, defaultMode: 0o440 } }
      : undefined,
  (ctx) => warmVolumes(ctx.parts)[0],
];

function probe(
  action: Pick<k8s.Probe, 'httpGet' | 'exec' | 'tcpSocket'>,
  periodSeconds: number,
  failureThreshold: number,
): k8s.Probe {
  return { ...action, periodSeconds, failureThreshold, timeoutSeconds: 5 };
}

/** nginx on the port nodes pull from: the front of the cache (front.ts). */
function frontContainer(ctx: CacheContext): k8s.Container {
  return {
    name: 'front',
    image: imageFor('front', ctx.spec),
    command: ['nginx', '-e', 'stderr', '-c', `${FRONT_CONFIG_DIR}/${FRONT_CONFIG_FILE}`, '-g', 'daemon off;'],
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
    readinessProbe: probe({ exec: { command: ['sh', '-c', frontReadinessScript(ctx.readyMinFreeKiB)] } }, 5, 1),
    livenessProbe: probe({ tcpSocket: { port: k8s.IntOrString.fromString('http') } }, 20, 6),
    securityContext: RESTRICTED_CONTAINER,
    volumeMounts: [
      { name: 'front-config', mountPath: FRONT_CONFIG_DIR, readOnly: true },
      { name: 'cache', mountPath: REGISTRY_STORAGE_PATH },
      { name: 'front-tmp', mountPath: FRONT_TMP_PATH },
    ],
  };
}

/** CNCF Distribution in proxy mode, behind the front on the pod's loopback. */
function registryContainer(ctx: CacheContext): k8s.Container {
  const { spec, credentials } = ctx;
  // Distribution's /debug/health answers 503 while a health check (the storage driver) fails. Its
  // debug server listens on the pod's loopback, which the kubelet cannot reach: run in the
  // container (the image's busybox wget exits non-zero on a 503; the probe's timeout bounds it).
  const health = {
    exec: { command: ['wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${REGISTRY_DEBUG_PORT}/debug/health`] },
  };
  return {
    name: 'registry',
    image: imageFor('registry', spec),
    command: ['registry', 'serve', REGISTRY_CONFIG_PATH],
    ports: [{ name: 'registry', containerPort: DISTRIBUTION_PORT }],
    env: [
      { name: 'OTEL_TRACES_EXPORTER', value: 'none' },
      ...(credentials ? [{ name: 'CREDENTIALS_DIR', value: CREDENTIALS_DIR }] : []),
      ...s3CredentialsEnv(ctx.s3?.credentialsSecret),
    ],
    resources: {
      requests: quantities(spec.resources?.requests ?? { cpu: '100m', memory: '128Mi' }),
      limits: quantities(spec.resources?.limits ?? { memory: '1Gi' }),
    },
    readinessProbe: probe(health, 10, 3),
    livenessProbe: probe(health, 20, 6),
    securityContext: RESTRICTED_CONTAINER,
    volumeMounts: [
      { name: 'config', mountPath: REGISTRY_CONFIG_DIR, readOnly: true },
      { name: 'cache', mountPath: REGISTRY_STORAGE_PATH },
      { name: 'tmp', mountPath: '/tmp' },
      ...(credentials ? [{ name: 'credentials', mountPath: CREDENTIALS_DIR, readOnly: true }] : []),
    ],
  };
}

/**
 * mirror-synth's streaming fill (`spec.fill: streaming`), on the pod's loopback between the front
 * and Distribution, from the image the platform names (MirrorCacheProps.fillImage); it spools
 * transfers in progress on the cache volume. It finds the other replicas through the headless
 * Service's SRV records (`--peers-srv`), by pod name, so that each digest is fetched by one owner
 * replica whichever replica nodes ask; the args do not depend on `spec.replicas`, so scaling rolls
 * no pod. No probes: when it is down, the front answers its digests 404 (nginx's 502 handling) and
 * nodes fall back to the upstream, as when Distribution is down.
 */
function fillContainer(ctx: CacheContext): k8s.Container | undefined {
  if (ctx.fill !== 'streaming') return undefined;
  const { namespace, mirrorName } = ctx.parts;
  const peersSrv = `_http._tcp.${ctx.headlessService}.${namespace}.svc.${ctx.clusterDomain}`;
  return {
    name: 'fill',
    image: fillImageOf(mirrorName, ctx.fillImage),
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
 * mtail turning the front's access log into the front's own hits and bytes, which Distribution
 * never sees. No probes: a failing check of metrics alone must not take the cache out of the Service.
 */
function frontMetricsContainer(ctx: CacheContext): k8s.Container {
  return {
    name: 'front-metrics',
    image: imageFor('frontMetrics', ctx.spec),
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
  };
}

/**
 * The volume's size and free space for the PodMonitor, from the volume itself: the kubelet's
 * volume stats exist only where the kubelet is scraped, and not for every volume type.
 * node_exporter finds mounts in /proc/1/mountinfo, which is its own here (the containers do not
 * share a process namespace). No readiness probe: a pod is Ready only when all its containers
 * are, and the mirror must keep serving when only its volume metrics fail (`up` shows that).
 */
function volumeExporterContainer(ctx: CacheContext): k8s.Container {
  return {
    name: 'volume-exporter',
    image: imageFor('volumeExporter', ctx.spec),
    args: volumeExporterArgs(),
    ports: [{ name: VOLUME_METRICS_PORT_NAME, containerPort: VOLUME_METRICS_PORT }],
    // about 16 MB resident with this one collector (the e2e test's build of the same version)
    resources: {
      requests: quantities({ cpu: '10m', memory: '24Mi' }),
      limits: quantities({ memory: '64Mi' }),
    },
    securityContext: RESTRICTED_CONTAINER,
    volumeMounts: [{ name: 'cache', mountPath: REGISTRY_STORAGE_PATH, readOnly: true }],
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
 * restart (the controller rolls them; see docs/mirrors.md).
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

/** The headless Service's ports: every port Prometheus scrapes, and the one the fill's peers use. */
export function headlessServicePorts(ctx: CacheContext): k8s.ServicePort[] {
  const port = (name: string, number: number) => ({ name, port: number, targetPort: k8s.IntOrString.fromString(name) });
  return [
    port('http', REGISTRY_PORT),
    port('metrics', REGISTRY_METRICS_PORT),
    port(FRONT_METRICS_PORT_NAME, FRONT_METRICS_PORT),
    port(VOLUME_METRICS_PORT_NAME, VOLUME_METRICS_PORT),
    ...(ctx.fill === 'streaming' ? [port(FILL_METRICS_PORT_NAME, FILL_METRICS_PORT)] : []),
    ...(ctx.keeper ? [ctx.keeper.servicePort] : []),
    ...warmServicePorts(ctx.spec),
  ];
}
