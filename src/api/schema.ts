/**
 * The one definition of the RegistryMirror API. From it come:
 * - the TypeScript types (`MirrorSpec`, via TypeBox's `Static`),
 * - the validator the CLI and the controller use (`src/api/validate.ts`, Ajv),
 * - the CRD's structural openAPIV3Schema (`src/api/crd.ts`).
 * Kubernetes-only keywords (x-kubernetes-*) are added by the CRD generator, so this
 * stays plain JSON Schema that Ajv compiles in strict mode.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

import { API_GROUP, API_VERSION, KIND } from './names.js';

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
/** Kubernetes resource.Quantity, as controller-gen writes it. */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';

const Quantity = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1 })], {
  pattern: QUANTITY_PATTERN,
  description: 'A Kubernetes quantity such as 100m, 512Mi or 20Gi.',
});

const QuantityMap = Type.Record(Type.String({ pattern: '^[a-z0-9]([-a-z0-9./]*[a-z0-9])?$' }), Quantity);

/** A map of Kubernetes label keys to label values (labels, node selectors). */
const LabelMap = (description: string) =>
  Type.Record(
    Type.String({ pattern: LABEL_KEY_PATTERN }),
    Type.String({ pattern: LABEL_VALUE_PATTERN, maxLength: 63 }),
    {
      description,
    },
  );

const Resources = Type.Object(
  {
    requests: Type.Optional(QuantityMap),
    limits: Type.Optional(QuantityMap),
  },
  { additionalProperties: false, description: 'Compute resources of the registry container.' },
);

const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String()),
    operator: Type.Optional(Type.Union([Type.Literal('Exists'), Type.Literal('Equal')])),
    value: Type.Optional(Type.String()),
    effect: Type.Optional(
      Type.Union([Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')]),
    ),
    tolerationSeconds: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);

const VolumeClaimTemplate = Type.Object(
  {
    spec: Type.Object(
      {
        accessModes: Type.Optional(
          Type.Array(
            Type.Union([
              Type.Literal('ReadWriteOnce'),
              Type.Literal('ReadWriteOncePod'),
              Type.Literal('ReadOnlyMany'),
              Type.Literal('ReadWriteMany'),
            ]),
            { minItems: 1 },
          ),
        ),
        storageClassName: Type.Optional(Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 })),
        resources: Type.Optional(
          Type.Object(
            { requests: Type.Object({ storage: Quantity }, { additionalProperties: false }) },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
  },
  {
    additionalProperties: false,
    description: "The cache's PersistentVolumeClaim template (as in the original mirror-operator); default 20Gi.",
  },
);

export const MirrorSpecSchema = Type.Object(
  {
    upstreamUrl: Type.String({
      pattern: HOST_PATTERN,
      maxLength: 253,
      description: 'The upstream registry as host[:port], without a scheme, e.g. quay.io or docker.io.',
    }),
    credentialsSecret: Type.Optional(
      Type.String({
        pattern: DNS_SUBDOMAIN_PATTERN,
        maxLength: 253,
        description:
          'A Secret in the output namespace with keys username and password (or a kubernetes.io/dockerconfigjson Secret, in controller mode) used to authenticate upstream.',
      }),
    ),
    masqueradeUrl: Type.Optional(
      Type.String({
        pattern: HOST_PATTERN,
        maxLength: 253,
        description: 'A second registry host that nodes send through this mirror, e.g. a local alias of the upstream.',
      }),
    ),
    volumeClaimTemplate: Type.Optional(VolumeClaimTemplate),
    replicas: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: 'Cache replicas; each replica caches on its own. Default 1.',
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
          { name: Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 }) },
          { additionalProperties: false },
        ),
        { description: 'Secrets used to pull the cache and node agent images.' },
      ),
    ),
    labels: Type.Optional(LabelMap('Extra labels for every child object and pod.')),
    imageRegistry: Type.Optional(
      Type.String({
        pattern: REGISTRY_PREFIX_PATTERN,
        maxLength: 253,
        description:
          'Pull the cache and node agent images from this registry (host[:port][/path]) instead of docker.io, for air-gapped clusters.',
      }),
    ),
  },
  { additionalProperties: false },
);

export type MirrorSpec = Static<typeof MirrorSpecSchema>;

const Condition = Type.Object({
  type: Type.String(),
  status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  lastTransitionTime: Type.String({ format: 'date-time' }),
  reason: Type.String(),
  message: Type.String(),
});

export const MirrorStatusSchema = Type.Object({
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  conditions: Type.Optional(Type.Array(Condition)),
});

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
