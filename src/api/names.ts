/**
 * The RegistryMirror API's identity and vocabulary: its group, kind and names, the labels and
 * annotations on what mirror-synth writes, and the spec's enumerations and defaults. The other
 * names live beside what decides them: children (children.ts), images (images.ts), the allowlist
 * (policy.ts), apply order (kube-object.ts); ports and the platform's settings in construct/
 * (ports.ts, platform.ts); the fill's protocol in fill/protocol.ts. Imports nothing.
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
export const DEFAULT_STORAGE = '20Gi';

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
 * The mirror's NetworkPolicy (construct/network-policy.ts), when `spec.networkPolicy` does not say
 * otherwise: port 5000 from these address ranges (where nodes' addresses are in almost every
 * cluster: the private ranges of RFC 1918 and the shared range of RFC 6598; pods have addresses
 * there too, so set the nodes' own subnets to keep pods out), the metrics ports from every pod of
 * the namespace `monitoring`.
 */
export const DEFAULT_NODE_CIDRS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
/**
 * On the cache volume: what `mirror-synth warm` pinned, `{"digests":["sha256:...", ...]}`, every
 * digest of every pinned image (indexes, manifests, configs, layers), which the keeper's eviction
 * never removes.
 */
export const PINNED_DIGESTS_FILE = 'mirror-synth/pinned.json';
