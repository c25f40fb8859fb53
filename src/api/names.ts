/**
 * Every name, label, annotation, default and port mirror-synth uses, defined once. Other
 * modules import them from here; a value that must agree in two places (the Lease name in
 * the controller and in its RBAC, the apply order in dist/ and in the controller) is one
 * constant. Imports nothing, so any part may depend on it.
 */

/** The RegistryMirror API, compatible with the original mirror-operator. */
export const API_GROUP = 'k8s.osp.tech';
export const API_VERSION = 'v1';
export const MIRROR_API_VERSION = `${API_GROUP}/${API_VERSION}`;
export const KIND = 'RegistryMirror';
export const PLURAL = 'registrymirrors';
export const SINGULAR = 'registrymirror';
export const SHORT_NAME = 'rm';

/** The project's name: field manager, managed-by label value, app name of its own objects. */
export const PROJECT = 'mirror-synth';
/** Server-side apply field manager of the controller. */
export const FIELD_MANAGER = PROJECT;
/** The field manager that sets only `mirror=<name>` on each RegistryMirror (and owns nothing else there). */
export const LABEL_FIELD_MANAGER = `${PROJECT}-label`;

/** Labels. Every child carries `mirror=<name>`, as the original operator's did. */
export const MIRROR_LABEL = 'mirror';
export const NAME_LABEL = 'app.kubernetes.io/name';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = PROJECT;
/** `app.kubernetes.io/name` of every mirror's children. */
export const MIRROR_APP_NAME = 'registry-mirror';
/** Label selector of every object the controller may own. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
/** Label keys a spec's `labels` may not set: mirror-synth sets them. A key ending in '/' is a prefix. */
export const RESERVED_LABELS: readonly string[] = [MIRROR_LABEL, 'app.kubernetes.io/'];

/** Annotations. */
export const ANNOTATION_PREFIX = 'mirror-synth.k8s.osp.tech';
export const CONFIG_HASH_ANNOTATION = `${ANNOTATION_PREFIX}/config-hash`;
export const CREDENTIALS_HASH_ANNOTATION = `${ANNOTATION_PREFIX}/credentials-hash`;
/** What the controller last applied to a child, so a no-op resync writes nothing. */
export const CONTENT_HASH_ANNOTATION = `${ANNOTATION_PREFIX}/content-hash`;
/** On a credentials Secret the controller derived from a dockerconfigjson Secret: its source. */
export const DERIVED_FROM_ANNOTATION = `${ANNOTATION_PREFIX}/derived-from`;
export const POD_SECURITY_ANNOTATION = `${ANNOTATION_PREFIX}/pod-security`;
/**
 * On a Secret: the mirrors (comma-separated names) that may use it as their `credentialsSecret`.
 * The controller uses a Secret only for the mirrors it lists, so writing a RegistryMirror does not
 * give access to Secrets its author cannot read.
 */
export const SECRET_MIRRORS_ANNOTATION = `${ANNOTATION_PREFIX}/mirrors`;

/**
 * The keys of a bucket Secret (`spec.objectStorage.s3.credentialsSecret`), and the AWS SDK
 * variables the registry container gets them as.
 */
export const S3_CREDENTIAL_KEYS = { accessKey: 'AWS_ACCESS_KEY_ID', secretKey: 'AWS_SECRET_ACCESS_KEY' } as const;

/** Children are `registry-mirror-<name>` (and `-headless`, `-config`, `-agent`). */
export function childName(mirror: string): string {
  return `${MIRROR_APP_NAME}-${mirror}`;
}

/**
 * The name of each child a mirror may have, by role. The constructs and the controller name
 * their objects from here, so what two mirrors would both create can be found from their
 * names alone (mirrorChildren), before anything is synthesized or applied.
 */
export function mirrorChildNames(mirror: string) {
  const base = childName(mirror);
  return {
    cacheConfig: `${base}-config`,
    agentConfig: `${base}-agent`,
    service: base,
    headlessService: `${base}-headless`,
    statefulSet: base,
    daemonSet: base,
    networkPolicy: base,
    /** `spec.cache.pinned`: the list `mirror-synth warm` reads, changed without rolling the pods. */
    pinnedConfig: `${base}-pinned`,
    /** Only in the controller, for a dockerconfigjson credentials Secret. */
    credentialsSecret: `${base}-credentials`,
  } as const;
}

/** One object a mirror may create in the output namespace (or, for the node agent's, in the node agent namespace). */
export interface ChildRef {
  readonly kind: string;
  readonly name: string;
  /** What it is to the mirror, in words for a message. */
  readonly role: string;
}

/**
 * Every object a mirror may create (each kind and name lives in one namespace, the output
 * namespace or the node agent namespace, the same for every mirror of a set, so kind and name
 * identify each). A unit test holds the constructs to it.
 */
export function mirrorChildren(mirror: string): readonly ChildRef[] {
  const n = mirrorChildNames(mirror);
  return [
    { kind: 'ConfigMap', name: n.cacheConfig, role: "cache's ConfigMap" },
    { kind: 'ConfigMap', name: n.agentConfig, role: "node agent's ConfigMap" },
    { kind: 'ConfigMap', name: n.pinnedConfig, role: "pinned images' ConfigMap" },
    { kind: 'Service', name: n.service, role: 'Service' },
    { kind: 'Service', name: n.headlessService, role: 'headless Service' },
    { kind: 'StatefulSet', name: n.statefulSet, role: 'cache StatefulSet' },
    { kind: 'DaemonSet', name: n.daemonSet, role: 'node agent DaemonSet' },
    { kind: 'NetworkPolicy', name: n.networkPolicy, role: 'cache NetworkPolicy' },
    { kind: 'Secret', name: n.credentialsSecret, role: 'derived credentials Secret' },
  ];
}

/** Defaults. */
export const DEFAULT_NAMESPACE = 'kube-extra';
/**
 * The node agent namespace is the output namespace and this suffix (`kube-extra-node`) unless the
 * platform names another (`--node-agent-namespace`, NODE_AGENT_NAMESPACE). The node agent alone needs
 * Pod Security `privileged` (a hostPath); the cache and the controller stay in a `restricted` one.
 */
export const NODE_AGENT_NAMESPACE_SUFFIX = '-node';
export function defaultNodeAgentNamespace(namespace: string): string {
  return `${namespace}${NODE_AGENT_NAMESPACE_SUFFIX}`;
}
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const DEFAULT_STORAGE = '20Gi';
export const DEFAULT_MIRRORS_DIR = 'mirrors';
export const DEFAULT_OUT_DIR = 'dist';
/** Controller: wait before reconnecting after the API server fails or while the CRD is missing. */
export const DEFAULT_SECONDS_BETWEEN_STREAMS = 30;

/** Node runtimes the node agent can configure (`--node-runtime`), one per cluster. */
export const NODE_RUNTIMES = ['containerd', 'k3s', 'rke2', 'cri-o'] as const;
export type NodeRuntime = (typeof NODE_RUNTIMES)[number];
export const DEFAULT_NODE_RUNTIME: NodeRuntime = 'containerd';

/**
 * What nodes send through a mirror (`spec.pullFromMirror`, named after containers-registries.conf(5)'s
 * `pull-from-mirror`): `all`, tag lookups too (containerd's `resolve` capability), or
 * `digest-only`, content by digest only, tags looked up at the upstream.
 */
export const PULL_FROM_MIRROR_MODES = ['all', 'digest-only'] as const;
export type PullFromMirror = (typeof PULL_FROM_MIRROR_MODES)[number];
export const DEFAULT_PULL_FROM_MIRROR: PullFromMirror = 'all';

/**
 * How the front fills its cache on a miss (`spec.fill`): `whole`, nginx alone, whose waiters get a
 * digest once all of it is in the cache; or `streaming`, mirror-synth's fill (`mirror-synth fill`,
 * from the mirror-synth image), which streams one transfer to every waiter as it arrives.
 */
export const FILL_MODES = ['whole', 'streaming'] as const;
export type FillMode = (typeof FILL_MODES)[number];
export const DEFAULT_FILL: FillMode = 'whole';

/**
 * `mirror-synth fill`'s bounds (its options; README "Command line"): the clients it feeds at once,
 * every digest together, and the digests it fetches at once (one more of either is answered 503,
 * which the front turns into its fallback 404: the node pulls from the upstream); how long a client
 * may take no byte before it is cut; and the free space the spool leaves on its filesystem, a share
 * of the filesystem (`10%`, what the front's cache keeps free) or a size (`2Gi`): a transfer that
 * does not fit above it is answered 503 too. The cache pod's fill container runs with them.
 */
export const FILL_DEFAULTS = {
  maxClients: 1024,
  maxTransfers: 256,
  clientTimeoutSeconds: 60,
  spoolMinFree: '10%',
} as const;

/**
 * The images mirror-synth deploys, by role, pinned by tag (see construct/images.ts for why each
 * version). Tags, not digests, by default: the build machine cannot reach a registry to check a
 * digest, and a wrong one breaks every pull. `spec.imageDigests.<role>` pins one by digest.
 */
export const IMAGES = {
  registry: 'docker.io/library/registry:3.1.2',
  front: 'docker.io/nginxinc/nginx-unprivileged:1.30.4-alpine',
  frontMetrics: 'ghcr.io/google/mtail:3.0.9',
  volumeExporter: 'quay.io/prometheus/node-exporter:v1.12.1',
} as const;
/** The roles of IMAGES: what `spec.imageRegistry` and `spec.imageDigests.<role>` may change. */
export type ImageRole = keyof typeof IMAGES;
/**
 * The node agent's image, unless the platform sets another (`--node-agent-image`, NODE_AGENT_IMAGE,
 * cdk8s.yaml `nodeAgentImage`). Never from a spec: the agent runs as root with a node directory
 * writable, so whoever chose its image would be root on every node.
 */
export const DEFAULT_NODE_AGENT_IMAGE = 'docker.io/library/busybox:1.37.0';
/**
 * The image of the streaming fill (`spec.fill: streaming`): mirror-synth's own (docs/controller.md, "The
 * controller image"). It has no default: the project publishes no image, so any name it defaulted
 * to would be one whoever registers it could fill with code that runs in every node's pulls. The
 * platform names it, not the RegistryMirror (neither `spec.imageRegistry` nor `spec.imageDigests`
 * moves it): synth takes `--fill-image`, FILL_IMAGE or `fillImage` in cdk8s.yaml; the controller
 * takes the same flag or variable, which controller-manifests sets to the controller's own image.
 */
export const FILL_IMAGE_ENV = 'FILL_IMAGE';
export const FILL_IMAGE_CONFIG_KEY = 'fillImage';
/** An image digest, `sha256:` and 64 lower-case hex digits (`spec.imageDigests.<role>` is `<tag>@` and one). */
export const IMAGE_DIGEST = 'sha256:[0-9a-f]{64}';
export const IMAGE_DIGEST_PATTERN = `^${IMAGE_DIGEST}$`;
const HOST_LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
/**
 * An image reference as a platform setting names one (`--fill-image`): `[host[:port]/]path[:tag][@sha256:...]`,
 * the grammar of distribution/reference. Whether it has a tag or a digest is checked apart.
 */
export const IMAGE_REFERENCE_PATTERN =
  `^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*(?::[0-9]+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*` +
  `(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@${IMAGE_DIGEST})?$`;

/** The tag of an image reference `host/path:tag`. */
export function imageTag(ref: string): string {
  return ref.slice(ref.lastIndexOf(':') + 1);
}

/**
 * Headers between the front and mirror-synth fill (`spec.fill: streaming`). A replica's fill sets
 * FILL_PEER_HEADER on what it asks another replica's front for (serve it from your own
 * Distribution); the front sets FILL_CLIENT_HEADER to the address the request came from, replacing
 * any a client sent, and the fill honours FILL_PEER_HEADER only from a replica's address.
 */
export const FILL_PEER_HEADER = 'X-Mirror-Synth-Peer';
export const FILL_CLIENT_HEADER = 'X-Mirror-Synth-Client';

/** Ports. */
/** The port nodes pull from: the front (nginx) in the cache pod, and the Services. */
export const REGISTRY_PORT = 5000;
/**
 * The cache pod's `metrics` port: Distribution's Prometheus metrics, which the front (nginx) passes
 * on from Distribution's debug server (GET /metrics only; anything else there is a 404).
 */
export const REGISTRY_METRICS_PORT = 5001;
/**
 * Distribution's debug server (/metrics, /debug/health, and Go's pprof and expvar, which tell
 * anyone who reaches them about the process's memory), on the pod's loopback only: the front
 * passes /metrics on to REGISTRY_METRICS_PORT, and the registry container's probes run in the pod.
 */
export const REGISTRY_DEBUG_PORT = 5004;
/** Distribution's registry API, on the pod's loopback only: the front is its one client. */
export const DISTRIBUTION_PORT = 5002;
/**
 * The front's fill, on the pod's loopback only: where the front sends its cache misses. nginx's
 * own fill server (`spec.fill: whole`) or `mirror-synth fill` (`streaming`).
 */
export const FRONT_FILL_PORT = 5003;
/** The front's metrics: mtail's /metrics (its default port), from the front's access log, and the port's name. */
export const FRONT_METRICS_PORT = 3903;
export const FRONT_METRICS_PORT_NAME = 'front-metrics';
/** UDP, on the pod's loopback only: nginx sends its access log to mtail here (syslog). */
export const FRONT_LOG_PORT = 5514;
/**
 * The cache pod's node_exporter (the volume's size and free space): its /metrics port, on
 * node_exporter's own default, and the port's name, which the PodMonitor scrapes.
 */
export const VOLUME_METRICS_PORT = 9100;
export const VOLUME_METRICS_PORT_NAME = 'volume-metrics';
/** mirror-synth fill's /metrics (`spec.fill: streaming`), and the port's name, which the PodMonitor scrapes. */
export const FILL_METRICS_PORT = 9101;
export const FILL_METRICS_PORT_NAME = 'fill-metrics';
/**
 * mirror-synth warm's port (`spec.cache.pinned`): /metrics (registry_mirror_pinned_*) and /status
 * (each pinned image, JSON, read through the API server's pod proxy), and its name.
 */
export const WARM_PORT = 9103;
export const WARM_PORT_NAME = 'warm';
/**
 * On the cache volume: what `mirror-synth warm` pinned, `{"digests":["sha256:...", ...]}`, every
 * digest of every pinned image (indexes, manifests, configs, layers), which eviction never removes.
 */
export const PINNED_DIGESTS_FILE = 'mirror-synth/pinned.json';
/**
 * The mirror's NetworkPolicy (construct/network-policy.ts), when `spec.networkPolicy` does not say
 * otherwise: port 5000 from these address ranges (where nodes' addresses are in almost every
 * cluster: the private ranges of RFC 1918 and the shared range of RFC 6598; pods have addresses
 * there too, so set the nodes' own subnets to keep pods out), the metrics ports from every pod of
 * the namespace `monitoring`.
 */
export const DEFAULT_NODE_CIDRS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
export const DEFAULT_MONITORING_NAMESPACE = 'monitoring';
/**
 * Where the cache pods may never connect, besides `spec.networkPolicy.egressDeniedCIDRs` (and
 * unless `egressAllowedCIDRs` lets them): link-local, where clouds serve instance metadata and
 * credentials (169.254.169.254, EKS Pod Identity's 169.254.170.23). Distribution follows an
 * upstream's redirects anywhere, and sends on what it finds there.
 */
export const LINK_LOCAL_CIDRS: readonly string[] = ['169.254.0.0/16', 'fe80::/10'];
/** DNS, which the cache pods may always reach (the cluster's resolver may be link-local: NodeLocal DNSCache). */
export const DNS_PORT = 53;
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
/** The controller's /metrics (and, unless told otherwise, /healthz and /readyz). */
export const CONTROLLER_METRICS_PORT = 8080;

/** The controller's own objects. */
export const CONTROLLER_NAME = `${PROJECT}-controller`;
/** The leader-election Lease; the controller's RBAC names it in `resourceNames`. */
export const LEASE_NAME = CONTROLLER_NAME;

/**
 * The allowlist of what RegistryMirrors may name (see api/policy.ts): the ConfigMap holding it (the
 * admission policy's params, watched by the controller), the ValidatingAdmissionPolicy and its
 * binding, all of this name; the ConfigMap's keys, which are also the `cdk8s.yaml` keys.
 */
export const ALLOWLIST_NAME = `${PROJECT}-allowlist`;
export const ALLOWLIST_KEYS = {
  upstreams: 'allowedUpstreams',
  masquerades: 'allowedMasquerades',
  imageRegistries: 'allowedImageRegistries',
  imageDigests: 'allowedImageDigests',
  imagePullSecrets: 'allowedImagePullSecrets',
  priorityClasses: 'allowedPriorityClasses',
  objectStorageEndpoints: 'allowedObjectStorageEndpoints',
} as const;
/** The environment variables of the same lists (a list set by one is fixed for the controller: see controller/controller.ts, the allowlist). */
export const ALLOWLIST_ENV = {
  upstreams: 'ALLOWED_UPSTREAMS',
  masquerades: 'ALLOWED_MASQUERADES',
  imageRegistries: 'ALLOWED_IMAGE_REGISTRIES',
  imageDigests: 'ALLOWED_IMAGE_DIGESTS',
  imagePullSecrets: 'ALLOWED_IMAGE_PULL_SECRETS',
  priorityClasses: 'ALLOWED_PRIORITY_CLASSES',
  objectStorageEndpoints: 'ALLOWED_OBJECT_STORAGE_ENDPOINTS',
} as const satisfies Record<keyof typeof ALLOWLIST_KEYS, string>;
export type AllowlistName = keyof typeof ALLOWLIST_KEYS;

/** Apply order: what others refer to (or mount, or select) comes first, workloads last. */
export const KIND_ORDER: readonly string[] = [
  'CustomResourceDefinition',
  'Namespace',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'Secret',
  'ConfigMap',
  'Service',
  'NetworkPolicy',
  'StatefulSet',
  'DaemonSet',
  'Deployment',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
];

/** Rank of a kind in KIND_ORDER; unknown kinds go last. */
export function kindRank(kind: string | undefined): number {
  const i = KIND_ORDER.indexOf(kind ?? '');
  return i === -1 ? KIND_ORDER.length : i;
}

/** Kinds whose `metadata.generation` moves with spec changes only (status updates do not bump it). */
export const GENERATION_KINDS: ReadonlySet<string> = new Set(['StatefulSet', 'DaemonSet', 'Deployment']);
