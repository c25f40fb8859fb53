/**
 * The one definition of the RegistryMirror API. From it come:
 * - the TypeScript types (`MirrorSpec`, via TypeBox's `Static`),
 * - the validator the CLI and the controller use (`src/api/validate.ts`, Ajv),
 * - the CRD's structural openAPIV3Schema (`src/api/crd.ts`).
 * Kubernetes-only keywords (x-kubernetes-*) are added by the CRD generator, so this
 * stays plain JSON Schema that Ajv compiles in strict mode.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';

import { IMAGE_DIGEST, type ImageRole, IMAGES, imageTag } from './images.js';
import { API_GROUP, API_VERSION, FILL_MODES, KIND, PULL_FROM_MIRROR_MODES, RESERVED_LABELS } from './names.js';
import { BYTES_PATTERN, bytesMessage, QUANTITY_PATTERN, quantityMessage } from './quantity.js';

/** Mirror names become part of child names such as `registry-mirror-<name>-headless`. */
export const MAX_NAME_LENGTH = 36;
export const NAME_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';

/** host[:port]: lower-case DNS name or IPv4 address, optional port, no scheme, no path. */
export const HOST_PATTERN =
  '^(([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*)(:[0-9]{1,5})?$';
/** A registry host optionally followed by a path, for the image registry override. */
export const REGISTRY_PREFIX_PATTERN =
  '^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$';
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** An IPv4 or IPv6 address range in CIDR notation (10.0.0.0/8, fd00::/8), as a NetworkPolicy ipBlock takes it. */
export const CIDR_PATTERN =
  '^((((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9]))|([0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])))$';
/** The message for a list of address ranges (`spec.networkPolicy.<field>`) holding something else. */
export const cidrMessage = (field: string): string =>
  `${field} must hold address ranges in CIDR notation such as 10.20.0.0/16 or fd00::/64`;
const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';

/**
 * A rule on a string field that both validators check with the same words: the CLI's (as a
 * JavaScript RegExp, see validate.ts) and the API server's (as a CEL `x-kubernetes-validations`
 * rule, see crd.ts). The expressions are RE2-compatible. Of a field's rules only the first that
 * fails is reported, so a URL with a scheme is not also told it has a path.
 */
export interface StringRule {
  /** Regular expression, tested anywhere in the value (anchor it where needed). */
  readonly regex: string;
  /** `true`: the value must match; `false`: it must not. */
  readonly match: boolean;
  /** What is wrong, with the field path and without the value (`, got '<value>'` is appended). */
  readonly message: string;
}

/** The key under which a schema node carries its StringRules (an annotation for Ajv, CEL in the CRD). */
export const RULES_KEYWORD = 'x-mirror-synth-rules';

/** host[:port] fields: the scheme, path and case mistakes people make, each named, then the full pattern. */
export function hostRules(field: string): StringRule[] {
  const what = 'a registry host[:port]';
  return [
    { regex: '^[a-zA-Z][a-zA-Z0-9+.-]*://', match: false, message: `${field} must be ${what} without a scheme` },
    { regex: '/', match: false, message: `${field} must be ${what} without a path` },
    { regex: '[A-Z]', match: false, message: `${field} must be lower-case` },
    {
      regex: HOST_PATTERN,
      match: true,
      message: `${field} must be ${what} such as quay.io or registry.example.com:5000`,
    },
  ];
}

/** `field has port N, which is not between 1 and 65535` (HOST_PATTERN allows any 1 to 5 digits). */
export function portMessage(field: string, port: string): string {
  return `${field} has port ${port}, which is not between 1 and 65535`;
}

/** Whether `spec.labels` may not set `key` (RESERVED_LABELS; an entry ending in '/' is a prefix). */
export function isReservedLabel(key: string): boolean {
  return RESERVED_LABELS.some((r) => (r.endsWith('/') ? key.startsWith(r) : key === r));
}

export function reservedLabelMessage(key: string): string {
  return `spec.labels.${key} is set by mirror-synth and cannot be overridden`;
}

export function sameHostMessage(host: string): string {
  return `spec.masqueradeUrl must differ from spec.upstreamUrl, both are '${host}'`;
}

export function nameLengthMessage(name: string): string {
  return `metadata.name must be at most ${MAX_NAME_LENGTH} characters so child names such as registry-mirror-<name>-headless stay valid, got '${name}' (${name.length})`;
}

export const NAME_MESSAGE =
  "metadata.name must be a DNS label (lower-case letters, digits and '-', starting with a letter)";

/** A CEL string literal (CEL reads JSON's escapes). */
export function cel(text: string): string {
  return JSON.stringify(text);
}

/**
 * A CEL messageExpression that says what `message(value)` says, with the value from `expr`: the
 * same words on both sides, written once.
 */
export function celMessage(message: (value: string) => string, expr: string): string {
  const marker = '\u0000';
  const [before, after] = message(marker).split(marker);
  return [before ? cel(before) : '', expr, after ? cel(after) : ''].filter(Boolean).join(' + ');
}

/** An `x-kubernetes-validations` rule: checked by the API server only (validate.ts checks the same in JavaScript). */
export interface CelRule {
  readonly rule: string;
  readonly messageExpression: string;
  readonly fieldPath?: string;
  readonly reason?: string;
}

const HOST_PORT_RULE = (field: string): CelRule => ({
  rule: "!self.matches(':[0-9]+$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",
  messageExpression: `${cel(`${field} has port `)} + self.substring(self.lastIndexOf(':') + 1) + ${cel(', which is not between 1 and 65535')}`,
});

/** A host[:port] field with the CLI's messages on both sides. */
const Host = (field: string, description: string) =>
  Type.String({
    pattern: HOST_PATTERN,
    maxLength: 253,
    description,
    [RULES_KEYWORD]: hostRules(field),
    'x-kubernetes-validations': [HOST_PORT_RULE(field)],
  });

/** A quantity field; a size in bytes (BYTES_PATTERN) with `bytes`. Patterns and messages from quantity.ts. */
const Quantity = (description: string, field?: string, bytes = false) => {
  const [pattern, message] = bytes ? [BYTES_PATTERN, bytesMessage] : [QUANTITY_PATTERN, quantityMessage];
  return Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1, maxLength: 64 })], {
    pattern,
    // Bounds the CEL cost estimate of the int-or-string (Kubernetes reads it beside the anyOf).
    maxLength: 64,
    description,
    ...(field === undefined
      ? {}
      : {
          'x-kubernetes-validations': [
            {
              rule: `type(self) == int || string(self).matches(${cel(pattern)})`,
              messageExpression: celMessage((v) => message(field, v), 'string(self)'),
            },
          ],
        }),
  });
};

const QuantityMap = (description: string) =>
  Type.Record(
    Type.String({ pattern: '^[a-z0-9]([-a-z0-9./]*[a-z0-9])?$', maxLength: 253 }),
    Quantity('A Kubernetes quantity such as 100m, 512Mi or 20Gi.'),
    { description, maxProperties: 16 },
  );

/** A map of Kubernetes label keys to label values (labels, node selectors). */
const LabelMap = (description: string, extra: Record<string, unknown> = {}) =>
  Type.Record(
    Type.String({ pattern: LABEL_KEY_PATTERN, maxLength: 317 }),
    Type.String({ pattern: LABEL_VALUE_PATTERN, maxLength: 63 }),
    { description, maxProperties: 64, ...extra },
  );

const isReservedCel = (k: string): string =>
  RESERVED_LABELS.map((r) => (r.endsWith('/') ? `${k}.startsWith(${cel(r)})` : `${k} == ${cel(r)}`)).join(' || ');

/** spec.labels: mirror-synth's own labels cannot be overridden (the CLI's words, in CEL too). */
const RESERVED_LABELS_RULE: CelRule = {
  rule: `self.all(k, !(${isReservedCel('k')}))`,
  messageExpression: `${cel('spec.labels.')} + self.filter(k, ${isReservedCel('k')})[0] + ${cel(' is set by mirror-synth and cannot be overridden')}`,
};

/** A label selector of matchLabels only (core/v1 LabelSelector without matchExpressions). */
const MatchLabels = (description: string) =>
  Type.Object(
    {
      matchLabels: Type.Optional(
        LabelMap('Labels the selected objects carry, all of them; {} or left out selects every object.'),
      ),
    },
    { additionalProperties: false, description },
  );

/** `spec.networkPolicy.<name>`: a list of address ranges. */
const CidrList = (name: string, description: string, opts: { minItems?: number } = {}) =>
  Type.Array(
    Type.String({
      pattern: CIDR_PATTERN,
      maxLength: 43,
      description: 'An address range, e.g. 10.0.0.0/16.',
      // The item's path is not known to a CEL rule: the message names the list (the API server prefixes the item's path).
      [RULES_KEYWORD]: [
        { regex: CIDR_PATTERN, match: true, message: cidrMessage(`spec.networkPolicy.${name}`) },
      ] satisfies StringRule[],
    }),
    { ...opts, maxItems: 64, description },
  );

const NetworkPolicy = Type.Object(
  {
    nodeCIDRs: Type.Optional(
      CidrList(
        'nodeCIDRs',
        "Address ranges the nodes' container runtimes connect from, admitted to the cache's port 5000. Default 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and 100.64.0.0/10; set the nodes' subnets so pods are not admitted too.",
        { minItems: 1 },
      ),
    ),
    egressDeniedCIDRs: Type.Optional(
      CidrList(
        'egressDeniedCIDRs',
        "Address ranges the cache pods may not connect to, wherever the upstream redirects them (DNS, port 53, and the mirror's other replicas excepted), besides link-local 169.254.0.0/16 and fe80::/10 (where clouds serve instance metadata and credentials), which are always denied. Set the cluster's Pod, Service and node ranges. Default none beyond link-local.",
      ),
    ),
    egressAllowedCIDRs: Type.Optional(
      CidrList(
        'egressAllowedCIDRs',
        'Address ranges inside egressDeniedCIDRs the cache pods may connect to anyway: an upstream or bucket in the cluster (its Service range and, as most CNI plugins check the address a Service forwards to, its pods), or 169.254.169.254/32 for a bucket reached with the instance role. Default none.',
      ),
    ),
    monitoring: Type.Optional(
      Type.Object(
        {
          namespaceSelector: Type.Optional(MatchLabels('Namespaces of the monitoring pods.')),
          podSelector: Type.Optional(MatchLabels('The monitoring pods, in those namespaces.')),
        },
        {
          additionalProperties: false,
          description:
            "Who may scrape the metrics ports (5001, 3903, 9100), as a NetworkPolicy peer: pods matching podSelector in namespaces matching namespaceSelector (without namespaceSelector: in the output namespace). Default every pod of the namespace 'monitoring'.",
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "The cache pods' NetworkPolicy (enforced only by a CNI plugin that implements NetworkPolicy): port 5000 from the nodes, the metrics ports from monitoring, nothing else; out, DNS, the mirror's other replicas and every address but egressDeniedCIDRs.",
  },
);

const Resources = Type.Object(
  {
    requests: Type.Optional(QuantityMap('Minimum compute resources, e.g. {cpu: 100m, memory: 128Mi} (the default).')),
    limits: Type.Optional(QuantityMap('Maximum compute resources, e.g. {memory: 1Gi} (the default).')),
  },
  { additionalProperties: false, description: 'Compute resources of the registry container.' },
);

const Toleration = Type.Object(
  {
    key: Type.Optional(
      Type.String({ description: 'The taint key the toleration applies to; empty matches every key.' }),
    ),
    operator: Type.Optional(
      Type.Union([Type.Literal('Exists'), Type.Literal('Equal')], {
        description: 'Exists (any value) or Equal (the value below). Default Equal.',
      }),
    ),
    value: Type.Optional(Type.String({ description: 'The taint value the toleration matches (operator Equal).' })),
    effect: Type.Optional(
      Type.Union([Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')], {
        description: 'The taint effect to match; empty matches every effect.',
      }),
    ),
    tolerationSeconds: Type.Optional(
      Type.Integer({ description: 'For NoExecute: how long the pod stays bound after the taint appears.' }),
    ),
  },
  { additionalProperties: false, description: 'A Kubernetes toleration (core/v1 Toleration).' },
);

const VolumeClaimTemplate = Type.Object(
  {
    spec: Type.Object(
      {
        accessModes: Type.Optional(
          Type.Array(
            Type.Union(
              [
                Type.Literal('ReadWriteOnce'),
                Type.Literal('ReadWriteOncePod'),
                Type.Literal('ReadOnlyMany'),
                Type.Literal('ReadWriteMany'),
              ],
              { description: 'A PersistentVolume access mode.' },
            ),
            { minItems: 1, description: 'Access modes of the cache volume. Default [ReadWriteOnce].' },
          ),
        ),
        storageClassName: Type.Optional(
          Type.String({
            pattern: DNS_SUBDOMAIN_PATTERN,
            maxLength: 253,
            description: "StorageClass of the cache volume. Default: the cluster's default StorageClass.",
          }),
        ),
        resources: Type.Optional(
          Type.Object(
            {
              requests: Type.Object(
                {
                  storage: Quantity(
                    'Size of the cache volume, e.g. 20Gi (the default).',
                    'spec.volumeClaimTemplate.spec.resources.requests.storage',
                    true,
                  ),
                },
                { additionalProperties: false, description: 'Requested resources of the cache volume.' },
              ),
            },
            { additionalProperties: false, description: 'Resources of the cache volume.' },
          ),
        ),
      },
      { additionalProperties: false, description: 'PersistentVolumeClaim spec of the cache volume.' },
    ),
  },
  {
    additionalProperties: false,
    description: "The cache's PersistentVolumeClaim template (as in the original mirror-operator); default 20Gi.",
  },
);

/**
 * A string field checked by one pattern, refused in the same words by the CLI and (as CEL, see
 * crd.ts) the API server: `<field> must be <what>, got '<value>'`.
 */
const Matching = (
  field: string,
  pattern: string,
  what: string,
  opts: { minLength?: number; maxLength: number; description: string },
) =>
  Type.String({
    pattern,
    ...opts,
    [RULES_KEYWORD]: [{ regex: pattern, match: true, message: `${field} must be ${what}` }] satisfies StringRule[],
  });

/**
 * `spec.objectStorage.s3`: Distribution's storage in an S3 bucket (its s3 driver) instead of the
 * cache volume, so every replica shares one cache as large as the bucket.
 */
const ObjectStorage = Type.Object(
  {
    s3: Type.Object(
      {
        bucket: Matching(
          'spec.objectStorage.s3.bucket',
          '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
          "an S3 bucket name: 3 to 63 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
          { maxLength: 63, description: 'The bucket (it must exist; the cache does not create it).' },
        ),
        region: Matching('spec.objectStorage.s3.region', '^[a-z0-9-]+$', 'a region name such as us-east-1', {
          minLength: 1,
          maxLength: 64,
          description:
            "The bucket's region, e.g. eu-west-1; any value the server accepts (often us-east-1) with an endpoint.",
        }),
        endpoint: Type.Optional(
          Matching(
            'spec.objectStorage.s3.endpoint',
            '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$',
            'http(s)://host[:port] without a path, such as http://seaweedfs-s3.storage.svc:8333',
            {
              maxLength: 253,
              description:
                'An S3-compatible server instead of AWS, as http(s)://host[:port], e.g. http://seaweedfs-s3.storage.svc:8333. Default: AWS S3 for the region.',
            },
          ),
        ),
        forcePathStyle: Type.Optional(
          Type.Boolean({
            description:
              'Address the bucket in the path (http://host/bucket) rather than the host name. Default: true with an endpoint, false on AWS.',
          }),
        ),
        rootDirectory: Type.Optional(
          Matching(
            'spec.objectStorage.s3.rootDirectory',
            '^/[A-Za-z0-9._/-]*$',
            "an absolute key prefix of letters, digits, '.', '_', '-' and '/'",
            {
              maxLength: 253,
              description:
                'Key prefix of this mirror in the bucket. Default: /registry-mirror/<mirror name>, so mirrors can share a bucket.',
            },
          ),
        ),
        credentialsSecret: Type.Optional(
          Type.String({
            pattern: DNS_SUBDOMAIN_PATTERN,
            maxLength: 253,
            description:
              "A Secret in the output namespace with keys accessKey and secretKey. Default: the AWS SDK's own chain (a pod identity or instance role).",
          }),
        ),
      },
      { additionalProperties: false, description: 'An S3 bucket (AWS, or any S3-compatible server).' },
    ),
  },
  {
    additionalProperties: false,
    description:
      "Keep Distribution's cache in an object store shared by all replicas instead of each replica's volume (the volume then holds only the front's hot cache).",
  },
);

/**
 * A pinned image: a repository on the mirror's upstream and a tag or a digest (the Docker reference
 * grammar without a host: its first component has no '.', which would make it a registry host).
 */
export const PINNED_IMAGE_PATTERN =
  '^[a-z0-9]+((_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$';
/** A refresh interval: hours and minutes, at least one minute (1h, 30m, 1h30m). */
export const REFRESH_INTERVAL_PATTERN = '^([1-9][0-9]{0,3}h([1-9][0-9]?m)?|[1-9][0-9]{0,4}m)$';
/** The default of `spec.cache.pinnedRefreshInterval`. */
export const DEFAULT_PINNED_REFRESH_INTERVAL = '1h';

/** `spec.cache`: what the cache keeps. */
const Cache = Type.Object(
  {
    maxSize: Type.Optional(
      Quantity(
        "The most a replica's store may hold on its volume, e.g. 15Gi: Distribution's blobs and manifests, the front's copy and the streaming fill's spool together. The keeper (mirror-synth keeper, in the cache pod) evicts the least recently used images above it, never one being served or pinned. Default: 75% of the cache volume. At most the volume's size. With objectStorage, the bound is the volume's (the front's copy and the spool); the bucket is bounded by its lifecycle rules (docs/data-path.md).",
        'spec.cache.maxSize',
        true,
      ),
    ),
    pinned: Type.Optional(
      Type.Array(
        Type.String({
          pattern: PINNED_IMAGE_PATTERN,
          maxLength: 255,
          description: 'An image on the upstream, as <repository>:<tag> or <repository>@sha256:<digest>.',
          // The item's path is not known to a CEL rule: the message names the list (the API server prefixes the item's path).
          [RULES_KEYWORD]: [
            {
              regex: '^[^/]*[.:][^/]*/',
              match: false,
              message:
                "spec.cache.pinned must name images on the mirror's upstream without a registry host, such as library/nginx:1.27",
            },
            {
              regex: '(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$',
              match: true,
              message:
                'spec.cache.pinned must name each image with a tag (:1.27) or a digest (@sha256:<64 hex digits>)',
            },
            {
              regex: PINNED_IMAGE_PATTERN,
              match: true,
              message:
                'spec.cache.pinned must hold <repository>:<tag> or <repository>@sha256:<digest> of lower-case repository names, such as library/nginx:1.27',
            },
          ] satisfies StringRule[],
        }),
        {
          maxItems: 100,
          description:
            "Images the cache fetches as soon as it runs and whenever this list changes (every platform's manifest, config and layers, through the pod's own front), keeps current and never evicts: <repository>:<tag> or <repository>@sha256:<digest> on the upstream, e.g. library/nginx:1.27 for docker.io. A change of the list reaches the running pods without a restart. Needs the mirror-synth image, as spec.fill: streaming does.",
        },
      ),
    ),
    pinnedRefreshInterval: Type.Optional(
      Matching(
        'spec.cache.pinnedRefreshInterval',
        REFRESH_INTERVAL_PATTERN,
        'a duration of hours and minutes of at least 1m, such as 1h, 30m or 1h30m',
        {
          maxLength: 8,
          description: `How often the pinned tags are looked up again at the upstream (one tag lookup per image and replica) and their content checked, as 1h, 30m or 1h30m. Default ${DEFAULT_PINNED_REFRESH_INTERVAL}.`,
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'What the cache keeps: its size bound, and images pinned and pre-warmed.',
  },
);

/** Why a spec cannot choose the node agent's image. */
export const NODE_AGENT_IMAGE_NOT_FROM_SPEC =
  "the node agent runs as root on every node, so its image is the platform's choice: mirror-synth's --node-agent-image (env NODE_AGENT_IMAGE, cdk8s.yaml nodeAgentImage), not a RegistryMirror's spec";
/** Why a spec cannot choose the streaming fill's image. */
export const FILL_IMAGE_NOT_FROM_SPEC =
  "the streaming fill runs mirror-synth's own image, so its image is the platform's choice, pinned where it is named: synth's --fill-image (env FILL_IMAGE, cdk8s.yaml fillImage) or the controller's own image (controller-manifests --image <ref>@sha256:...), not a RegistryMirror's spec";

/**
 * A field a spec may not set, with where its setting lives instead. Kept in the schema rather than
 * left out, so that synth, the API server (the CRD's CEL rule) and the controller all refuse it with
 * the reason, where an unknown field would be dropped by the API server.
 */
const NotFromSpec = (field: string, reason: string) =>
  Type.String({
    maxLength: 200,
    // matches nothing: any value is refused, with the rule's message
    pattern: '(?!)',
    description: `Not honoured: ${reason}.`,
    [RULES_KEYWORD]: [
      { regex: '', match: false, message: `${field} is not honoured: ${reason}` },
    ] satisfies StringRule[],
  });

/** A regular expression matching `text` literally. */
const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * `spec.imageDigests.<role>`: `<tag>@sha256:<64 hex>`, the tag being the one mirror-synth deploys,
 * so a pin written for one release cannot silently keep an old image under a newer release's tag.
 */
const ImageDigest = (role: ImageRole) => {
  const field = `spec.imageDigests.${role}`;
  const tag = imageTag(IMAGES[role]);
  const digest = `@${IMAGE_DIGEST}$`;
  return Type.String({
    pattern: `^${literal(tag)}${digest}`,
    maxLength: 200,
    description: `${IMAGES[role]} pinned by digest, as ${tag}@sha256:<64 hex digits> (crane digest ${IMAGES[role]}).`,
    [RULES_KEYWORD]: [
      {
        regex: `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}${digest}`,
        match: true,
        message: `${field} must be <tag>@sha256:<64 lower-case hex digits>, such as ${tag}@sha256:...`,
      },
      {
        regex: `^${literal(tag)}@`,
        match: true,
        message: `${field} must pin ${tag}, the tag mirror-synth deploys (its digest: crane digest ${IMAGES[role]})`,
      },
    ] satisfies StringRule[],
  });
};

const ImageDigests = Type.Object(
  {
    registry: Type.Optional(ImageDigest('registry')),
    front: Type.Optional(ImageDigest('front')),
    frontMetrics: Type.Optional(ImageDigest('frontMetrics')),
    volumeExporter: Type.Optional(ImageDigest('volumeExporter')),
    nodeAgent: Type.Optional(NotFromSpec('spec.imageDigests.nodeAgent', NODE_AGENT_IMAGE_NOT_FROM_SPEC)),
    fill: Type.Optional(NotFromSpec('spec.imageDigests.fill', FILL_IMAGE_NOT_FROM_SPEC)),
  } satisfies Record<ImageRole | 'nodeAgent' | 'fill', unknown>,
  {
    additionalProperties: false,
    description:
      "Pin the cache pod's images by digest as well as by tag: per image (registry, front, frontMetrics, volumeExporter), <tag>@sha256:<digest> of the tag mirror-synth deploys. Default: tags only. The node agent's and the streaming fill's images are the platform's (--node-agent-image; the controller's image, synth's --fill-image), not the spec's.",
  },
);

export const MirrorSpecSchema = Type.Object(
  {
    upstreamUrl: Host(
      'spec.upstreamUrl',
      'The upstream registry as host[:port], without a scheme, e.g. quay.io or docker.io.',
    ),
    credentialsSecret: Type.Optional(
      Type.String({
        pattern: DNS_SUBDOMAIN_PATTERN,
        maxLength: 253,
        description:
          'A Secret in the output namespace with keys username and password (or a kubernetes.io/dockerconfigjson Secret, in controller mode) used to authenticate upstream.',
      }),
    ),
    masqueradeUrl: Type.Optional(
      Host(
        'spec.masqueradeUrl',
        'A second registry host that nodes send through this mirror, e.g. a local alias of the upstream. Must differ from upstreamUrl.',
      ),
    ),
    volumeClaimTemplate: Type.Optional(VolumeClaimTemplate),
    objectStorage: Type.Optional(ObjectStorage),
    cache: Type.Optional(Cache),
    replicas: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description:
          'Cache replicas. Each caches on its own volume, or all share spec.objectStorage when it is set. Default 1.',
      }),
    ),
    resources: Type.Optional(Resources),
    tolerations: Type.Optional(
      Type.Array(Toleration, { description: 'Tolerations for the cache and the node agent pods.' }),
    ),
    nodeSelector: Type.Optional(LabelMap('Node selector for the cache pods (the node agent runs on every node).')),
    priorityClassName: Type.Optional(
      Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, description: 'Priority class of all pods.' }),
    ),
    imagePullSecrets: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({
              pattern: DNS_SUBDOMAIN_PATTERN,
              maxLength: 253,
              description: 'Name of a Secret of type kubernetes.io/dockerconfigjson in the output namespace.',
            }),
          },
          { additionalProperties: false, description: 'A reference to an image pull Secret.' },
        ),
        { description: 'Secrets used to pull the cache and node agent images.' },
      ),
    ),
    labels: Type.Optional(
      LabelMap('Extra labels for every child object and pod. mirror and app.kubernetes.io/* are set by mirror-synth.', {
        'x-kubernetes-validations': [RESERVED_LABELS_RULE],
      }),
    ),
    networkPolicy: Type.Optional(NetworkPolicy),
    pullFromMirror: Type.Optional(
      Type.Union(
        PULL_FROM_MIRROR_MODES.map((m) => Type.Literal(m)),
        {
          description:
            "What the nodes send through the mirror. all (the default): tag lookups and content (containerd capabilities pull and resolve). digest-only: tags are looked up at the upstream, content by digest comes through the mirror (containerd capability pull; CRI-O's pull-from-mirror digest-only, where a pull by tag bypasses the mirror).",
        },
      ),
    ),
    fill: Type.Optional(
      Type.Union(
        FILL_MODES.map((m) => Type.Literal(m)),
        {
          description:
            "How the cache fetches a digest no replica has yet while nodes wait for it. whole (the default): nginx fetches it once and each waiting node gets it when all of it is cached. streaming: mirror-synth's fill fetches it once and streams it to every waiting node as it arrives; needed for layers that take minutes to fetch. It runs the mirror-synth image the platform names: the controller's own, or synth's --fill-image (required then).",
        },
      ),
    ),
    imageDigests: Type.Optional(ImageDigests),
    imageRegistry: Type.Optional(
      Type.String({
        pattern: REGISTRY_PREFIX_PATTERN,
        maxLength: 253,
        description:
          "Pull the cache pod's images from this registry (host[:port][/path]) instead of their public registries, for air-gapped clusters. Not the node agent's: the platform sets that image (--node-agent-image).",
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'The mirror: which upstream registry it caches, and how its cache and node agent run.',
    'x-kubernetes-validations': [
      {
        rule: '!has(self.masqueradeUrl) || self.masqueradeUrl != self.upstreamUrl',
        messageExpression: celMessage(sameHostMessage, 'self.upstreamUrl'),
        fieldPath: '.masqueradeUrl',
      },
    ],
  },
);

export type MirrorSpec = Static<typeof MirrorSpecSchema>;

const Condition = Type.Object(
  {
    type: Type.String({ description: 'Ready, Reconciling or Stalled (kstatus).' }),
    status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')], {
      description: 'True, False or Unknown.',
    }),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'The metadata.generation this condition was computed for.' }),
    ),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'When status last changed.' }),
    reason: Type.String({ description: 'Why, in one PascalCase word.' }),
    message: Type.String({ description: 'What it means and what to do, for people.' }),
  },
  { description: 'A condition, after the Kubernetes API conventions.' },
);

export const MirrorStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'The metadata.generation the controller last acted on.' }),
    ),
    conditions: Type.Optional(
      Type.Array(Condition, {
        description:
          'Ready: the cache and the node agent serve (their pods are ready). Reconciling: the controller is working towards it. Stalled: it cannot until a person acts.',
      }),
    ),
  },
  { description: 'What the controller observed; written by the controller only.' },
);

export type MirrorStatus = Static<typeof MirrorStatusSchema>;
export type MirrorCondition = Static<typeof Condition>;

/** A whole RegistryMirror document, as written in mirrors/*.yaml or read from the cluster. */
export const RegistryMirrorSchema = Type.Object(
  {
    apiVersion: Type.Literal(`${API_GROUP}/${API_VERSION}`),
    kind: Type.Literal(KIND),
    metadata: Type.Object(
      {
        name: Type.String({ pattern: NAME_PATTERN, minLength: 1, maxLength: MAX_NAME_LENGTH }),
        labels: Type.Optional(Type.Record(Type.String(), Type.String())),
        annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
      },
      // Objects read from a cluster carry uid, resourceVersion, managedFields, ...
      { additionalProperties: true },
    ),
    spec: MirrorSpecSchema,
    status: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);

/** Strip TypeBox's symbol keys and return plain JSON Schema. */
export function plainSchema(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}
