/**
 * The RegistryMirror CustomResourceDefinition, generated from the one schema in schema.ts.
 */
import { type KubeObject, sortKeys } from './kube-object.js';
import {
  API_GROUP,
  API_VERSION,
  COMPONENT_LABEL,
  KIND,
  NAME_LABEL,
  PLURAL,
  PROJECT,
  SHORT_NAME,
  SINGULAR,
} from './names.js';
import {
  cel,
  MAX_NAME_LENGTH,
  MirrorSpecSchema,
  MirrorStatusSchema,
  NAME_PATTERN,
  plainSchema,
  RULES_KEYWORD,
  type StringRule,
} from './schema.js';

type Json = Record<string, unknown>;

function celChecks(node: Json, pattern: string): boolean {
  const cels = (node['x-kubernetes-validations'] as Json[] | undefined) ?? [];
  return cels.some((r) => String(r.rule).includes(`.matches(${cel(pattern)})`));
}

/** CEL that is true when `self` breaks `r`. */
function violates(r: StringRule): string {
  return `${r.match ? '!' : ''}self.matches(${cel(r.regex)})`;
}

/**
 * A field's StringRules as CEL rules. Each rule holds when an earlier one already failed, so the
 * API server reports only the first failure, as the CLI does.
 */
export function celRules(rules: readonly StringRule[]): Json[] {
  return rules.map((r, i) => {
    const earlier = rules.slice(0, i).map(violates);
    return {
      rule: [...earlier, `!(${violates(r)})`].join(' || '),
      messageExpression: `${cel(`${r.message}, got '`)} + self + "'"`,
    };
  });
}

/**
 * Turn plain JSON Schema into a structural OpenAPI v3 schema Kubernetes accepts:
 * - `additionalProperties: false` is dropped (Kubernetes prunes unknown fields instead; the CLI validator rejects them),
 * - records (`patternProperties`) become `additionalProperties`,
 * - unions of literals become enums, and integer|string quantities become int-or-string,
 * - StringRules become CEL `x-kubernetes-validations` and replace the field's `pattern` (the
 *   last rule is the pattern, with a message a person can read instead of the regex).
 */
export function toStructural(node: Json): Json {
  const out: Json = {};
  const rules = node[RULES_KEYWORD] as StringRule[] | undefined;
  if (Array.isArray(node.anyOf)) {
    const branches = node.anyOf as Json[];
    if (branches.every((b) => 'const' in b)) {
      out.type = typeof branches[0].const === 'number' ? 'integer' : 'string';
      out.enum = branches.map((b) => b.const);
    } else if (
      branches.length === 2 &&
      branches.some((b) => b.type === 'integer') &&
      branches.some((b) => b.type === 'string')
    ) {
      out['x-kubernetes-int-or-string'] = true;
      out.anyOf = [{ type: 'integer' }, { type: 'string' }];
    } else {
      throw new Error(`unsupported union in schema: ${JSON.stringify(node)}`);
    }
  }
  for (const [key, value] of Object.entries(node)) {
    switch (key) {
      case 'anyOf':
        break;
      case 'const':
        out.type = typeof value === 'number' ? 'integer' : 'string';
        out.enum = [value];
        break;
      case 'additionalProperties':
        if (typeof value === 'object' && value !== null) out.additionalProperties = toStructural(value as Json);
        break;
      case 'patternProperties': {
        const [valueSchema] = Object.values(value as Record<string, Json>);
        out.additionalProperties = toStructural(valueSchema);
        break;
      }
      case 'properties':
        out.properties = Object.fromEntries(
          Object.entries(value as Record<string, Json>).map(([k, v]) => [k, toStructural(v)]),
        );
        break;
      case 'items':
        out.items = toStructural(value as Json);
        break;
      case RULES_KEYWORD:
        break;
      case 'pattern':
        // A CEL rule that checks the same pattern says it in the CLI's words; the bare pattern would add the regex.
        if (rules === undefined && !celChecks(node, value as string)) out.pattern = value;
        break;
      case 'x-kubernetes-validations':
        out[key] = [...((out[key] as Json[] | undefined) ?? []), ...(value as Json[])];
        break;
      default:
        out[key] = value;
    }
  }
  if (rules !== undefined) {
    out['x-kubernetes-validations'] = [...celRules(rules), ...((out['x-kubernetes-validations'] as Json[]) ?? [])];
  }
  return out;
}

/** The CRD object, compatible with the original mirror-operator: k8s.osp.tech/v1, cluster-scoped, short name rm. */
export function registryMirrorCrd(): KubeObject {
  return sortKeys(crdObject());
}

function crdObject(): KubeObject {
  const status = toStructural(plainSchema(MirrorStatusSchema));
  const conditions = (status.properties as Record<string, Json>).conditions;
  conditions['x-kubernetes-list-type'] = 'map';
  conditions['x-kubernetes-list-map-keys'] = ['type'];
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${API_GROUP}`,
      labels: { [NAME_LABEL]: PROJECT, [COMPONENT_LABEL]: 'crd' },
    },
    spec: {
      group: API_GROUP,
      scope: 'Cluster',
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [SHORT_NAME],
      },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Upstream', type: 'string', jsonPath: '.spec.upstreamUrl' },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            {
              name: 'Message',
              type: 'string',
              jsonPath: '.status.conditions[?(@.type=="Ready")].message',
              priority: 1,
            },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'A pull-through cache of one upstream registry (CNCF Distribution behind nginx), and the node agent that points every node at it with fallback to the upstream.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: `${API_GROUP}/${API_VERSION}` },
                kind: { type: 'string', description: KIND },
                // Kubernetes allows only name (and generateName) rules here, and none in CEL at a cost it
                // accepts (a name has no bound it can estimate), so the name keeps its plain rules.
                metadata: {
                  type: 'object',
                  properties: {
                    name: {
                      type: 'string',
                      maxLength: MAX_NAME_LENGTH,
                      pattern: NAME_PATTERN,
                      description: 'The mirror name: a DNS label of at most 36 characters, part of every child name.',
                    },
                  },
                },
                spec: toStructural(plainSchema(MirrorSpecSchema)),
                status,
              },
            },
          },
        },
      ],
    },
  };
}
