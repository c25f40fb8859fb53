/**
 * The controller's Helm chart (`npm run chart` writes it to charts/mirror-synth/): real templates
 * over values, made from the same constructs `controller-manifests` prints. The objects are
 * synthesized with markers where a value goes, once for each combination of the switches that
 * change their shape (takeover, one namespace or two); an object that differs between them is
 * written under `{{ if }}`, so the RBAC, the admission policy and the Namespaces' Pod Security
 * labels have one source. The Deployment's pod spec, args and env take the values the
 * construct has no prop for. values.schema.json comes from the definitions the CLI checks its
 * flags with (image references, node runtimes, allowlist entries, namespaces).
 *
 * With its default values and `image.repository` set, the chart renders exactly the objects of
 * `controller-manifests --image <repository>:<version>` (test/integration/controller-chart.test.ts).
 */
import { App, Chart } from 'cdk8s';
import { stringify } from 'yaml';

import type { KubeObject } from '../api/kube-object.js';
import {
  ALLOWLIST_KEYS,
  COMPONENT_LABEL,
  CONTROLLER_NAME,
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_NAMESPACE,
  DEFAULT_NODE_AGENT_IMAGE,
  DEFAULT_NODE_RUNTIME,
  IMAGE_DIGEST_PATTERN,
  IMAGE_REFERENCE_PATTERN,
  IMAGE_REPOSITORY_PATTERN,
  IMAGE_TAG_PATTERN,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  NODE_AGENT_NAMESPACE_SUFFIX,
  NODE_RUNTIMES,
  PROJECT,
} from '../api/names.js';
import { allowlistEntrySyntax, ALLOWLISTS } from '../api/policy.js';
import { CIDR_PATTERN } from '../api/schema.js';
import { ControllerMonitoring, MirrorDashboard } from '../construct/monitoring.js';
import { CONTROLLER_DEFAULTS } from '../controller/config.js';
import { chartObjects, controllerObjects } from './chart.js';
import { escapeForHelm } from './helm.js';

/** Where `npm run chart` writes the chart, relative to the repository. */
export const CONTROLLER_CHART_DIR = 'charts/mirror-synth';
const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
const selector = { [NAME_LABEL]: PROJECT, [COMPONENT_LABEL]: 'controller' };
const labels = { ...selector, [MANAGED_BY_LABEL]: MANAGED_BY };

/** The values and their defaults; values.yaml is written from this, with the comments below. */
export function defaultValues(): Record<string, unknown> {
  return {
    image: { repository: '', tag: '', digest: '', pullPolicy: '' },
    imagePullSecrets: [],
    namespace: DEFAULT_NAMESPACE,
    nodeAgent: { namespace: '', image: DEFAULT_NODE_AGENT_IMAGE },
    nodeRuntime: DEFAULT_NODE_RUNTIME,
    clusterDomain: DEFAULT_CLUSTER_DOMAIN,
    allowlist: Object.fromEntries(ALLOWLISTS.map((l) => [ALLOWLIST_KEYS[l], null])),
    takeover: false,
    replicas: 1,
    leaderElection: {
      enabled: true,
      leaseDurationSeconds: CONTROLLER_DEFAULTS.leaseDurationSeconds,
      renewDeadlineSeconds: CONTROLLER_DEFAULTS.renewDeadlineSeconds,
      retryPeriodSeconds: CONTROLLER_DEFAULTS.retryPeriodSeconds,
    },
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
    nodeSelector: {},
    tolerations: [],
    affinity: {},
    priorityClassName: '',
    podDisruptionBudget: { enabled: false, minAvailable: null, maxUnavailable: 1 },
    monitoring: { podMonitor: false, dashboard: false },
    networkPolicy: { enabled: false, apiServerCIDRs: [], apiServerPorts: [443, 6443], metricsCIDRs: [] },
  };
}

/** One line of comment for each value in values.yaml (and its description in the schema). */
const DOCS: Record<string, string> = {
  image:
    'The controller image (npm run build:image, pushed where the cluster pulls from: mirror-synth publishes none).',
  'image.repository': 'Required: [host[:port]/]path, e.g. registry.example.com/mirror-synth.',
  'image.tag': "The tag; empty: the chart's appVersion.",
  'image.digest': 'sha256:<64 hex>; when set, the image is <repository>@<digest> and the tag is not used.',
  'image.pullPolicy': "The container's imagePullPolicy; empty: Kubernetes' default.",
  imagePullSecrets: 'Secrets (in the namespace) to pull the controller image with: [{name: regcred}].',
  namespace:
    'Namespace of the controller and of every mirror\'s cache (Pod Security "restricted"); the chart creates it and uninstall deletes it.',
  nodeAgent: "The mirrors' node agents (root on every node: the platform's choice, never a spec's).",
  'nodeAgent.namespace': `Namespace of the node agents (Pod Security "privileged"); empty: <namespace>${NODE_AGENT_NAMESPACE_SUFFIX}. The namespace itself puts everything in one "privileged" namespace.`,
  'nodeAgent.image': "The node agent's image, <registry>/<path>:<tag>, ...@sha256:<hex> or both.",
  nodeRuntime: `What the node agents configure: ${NODE_RUNTIMES.join(', ')} (docs/nodes.md).`,
  clusterDomain: 'DNS domain the node agents resolve the mirror Services in.',
  allowlist:
    'What RegistryMirrors may name (docs/security.md): null allows anything, a list only its entries, [] nothing. The controller and an admission policy enforce it; an edit of the ConfigMap takes effect without a restart.',
  takeover:
    'Take mirrors over from the original mirror-operator: --takeover, pod and claim delete, the namespace "privileged" while it lasts (docs/migration.md).',
  replicas:
    'Controller replicas; one reconciles, the others wait for the Lease (more than one needs leaderElection.enabled).',
  leaderElection: 'The coordination.k8s.io Lease (client-go timings, seconds).',
  'leaderElection.enabled': 'false: --no-leader-election (one replica only).',
  'leaderElection.leaseDurationSeconds': 'A standby takes the Lease when it was not renewed for this long.',
  'leaderElection.renewDeadlineSeconds':
    'The leader exits when it could not renew within this (less than the lease duration).',
  'leaderElection.retryPeriodSeconds': 'Between attempts (the renew deadline must exceed 1.2 of it).',
  resources: "The controller container's resources (its V8 heap is capped for the default limit).",
  nodeSelector: "The controller pod's nodeSelector.",
  tolerations: "The controller pod's tolerations.",
  affinity: "The controller pod's affinity.",
  priorityClassName: "The controller pod's priorityClassName.",
  podDisruptionBudget: 'A PodDisruptionBudget for the controller.',
  'podDisruptionBudget.enabled': 'Create it.',
  'podDisruptionBudget.minAvailable':
    'Pods that must stay (a number or a percentage); when set, maxUnavailable is not used.',
  'podDisruptionBudget.maxUnavailable': 'Pods that may go (a number or a percentage).',
  monitoring:
    'Needs the Prometheus Operator (podMonitor) or a Grafana dashboard sidecar (dashboard); docs/monitoring.md.',
  'monitoring.podMonitor': "The controller's PodMonitor and PrometheusRule (controller-manifests --monitoring).",
  'monitoring.dashboard': 'The registry mirrors\' Grafana dashboard, a ConfigMap labelled grafana_dashboard: "1".',
  networkPolicy: 'A NetworkPolicy for the controller pod (needs a CNI that enforces it).',
  'networkPolicy.enabled': 'Create it: egress only to the API server, ingress only to the metrics port.',
  'networkPolicy.apiServerCIDRs':
    "The API server's addresses (its endpoints, as `kubectl get endpointslices -n default` lists them), required when enabled.",
  'networkPolicy.apiServerPorts': "The API server's ports, as its endpoints have them.",
  'networkPolicy.metricsCIDRs':
    'Who may scrape /metrics (port 8080); [] no one (kubelet probes come from the node and most CNIs admit them).',
};

/** A scalar or list of strings value; the schema of each leaf. */
function valuesSchema(): Record<string, unknown> {
  const str = (extra: Record<string, unknown> = {}) => ({ type: 'string', ...extra });
  const emptyOr = (pattern: string) => `^$|${pattern}`;
  const cidrs = { type: 'array', items: { type: 'string', pattern: CIDR_PATTERN } };
  const intOrPercent = {
    oneOf: [
      { type: 'integer', minimum: 0 },
      { type: 'string', pattern: '^[0-9]+%$' },
    ],
  };
  const seconds = { type: 'integer', minimum: 1 };
  const obj = (properties: Record<string, unknown>, required: string[] = []) => ({
    type: 'object',
    additionalProperties: false,
    properties,
    ...(required.length ? { required } : {}),
  });
  const schema = obj({
    image: obj(
      {
        repository: str({ pattern: emptyOr(IMAGE_REPOSITORY_PATTERN) }),
        tag: str({ pattern: emptyOr(IMAGE_TAG_PATTERN) }),
        digest: str({ pattern: emptyOr(IMAGE_DIGEST_PATTERN) }),
        pullPolicy: { enum: ['', 'Always', 'IfNotPresent', 'Never'] },
      },
      ['repository'],
    ),
    imagePullSecrets: { type: 'array', items: obj({ name: str({ minLength: 1 }) }, ['name']) },
    namespace: str({ pattern: DNS_LABEL_PATTERN }),
    nodeAgent: obj({
      namespace: str({ pattern: emptyOr(DNS_LABEL_PATTERN) }),
      image: str({
        maxLength: 512,
        allOf: [
          { pattern: IMAGE_REFERENCE_PATTERN },
          // a tag or a digest: never the registry's latest
          { pattern: `(@sha256:[0-9a-f]{64}|:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$` },
        ],
      }),
    }),
    nodeRuntime: { enum: [...NODE_RUNTIMES] },
    clusterDomain: str({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' }),
    allowlist: obj(
      Object.fromEntries(
        ALLOWLISTS.map((l) => [
          ALLOWLIST_KEYS[l],
          {
            type: ['array', 'null'],
            items: { type: 'string', pattern: allowlistEntrySyntax(l).pattern },
            description: `each entry ${allowlistEntrySyntax(l).what}`,
          },
        ]),
      ),
    ),
    takeover: { type: 'boolean' },
    replicas: { type: 'integer', minimum: 1 },
    leaderElection: obj({
      enabled: { type: 'boolean' },
      leaseDurationSeconds: seconds,
      renewDeadlineSeconds: seconds,
      retryPeriodSeconds: seconds,
    }),
    resources: { type: 'object' },
    nodeSelector: { type: 'object', additionalProperties: { type: 'string' } },
    tolerations: { type: 'array', items: { type: 'object' } },
    affinity: { type: 'object' },
    priorityClassName: str({ pattern: emptyOr('^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$') }),
    podDisruptionBudget: obj({
      enabled: { type: 'boolean' },
      minAvailable: { oneOf: [{ type: 'null' }, ...intOrPercent.oneOf] },
      maxUnavailable: intOrPercent,
    }),
    monitoring: obj({ podMonitor: { type: 'boolean' }, dashboard: { type: 'boolean' } }),
    networkPolicy: obj({
      enabled: { type: 'boolean' },
      apiServerCIDRs: cidrs,
      apiServerPorts: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1, maximum: 65535 } },
      metricsCIDRs: cidrs,
    }),
  });
  describe(schema, '');
  return {
    $schema: 'https://json-schema.org/draft-07/schema#',
    title: `${PROJECT} controller chart values`,
    ...schema,
  };
}

function describe(schema: Record<string, unknown>, path: string): void {
  const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
  if (!props) return;
  for (const [key, sub] of Object.entries(props)) {
    const p = path ? `${path}.${key}` : key;
    if (DOCS[p]) sub.description = sub.description ? `${DOCS[p]} ${sub.description as string}` : DOCS[p];
    describe(sub, p);
  }
}

/** Markers in synthesized objects, replaced by template text once the objects are YAML. */
class Markers {
  readonly #values: string[] = [];
  readonly #blocks: ((indent: string) => string)[] = [];
  /** A whole scalar Helm renders from `expr`. */
  value(expr: string): string {
    return `zzhelmv${this.#values.push(expr) - 1}zz`;
  }
  /** A map key (or list item, `{ [key]: 'x' }`) whose line becomes `block(indent)`. */
  block(block: (indent: string) => string): string {
    return `zzhelmb${this.#blocks.push(block) - 1}zz`;
  }
  render(text: string): string {
    return text
      .replace(/^( *)(- )?zzhelmb(\d+)zz: x$/gm, (_, indent: string, _dash: string | undefined, i: string) =>
        this.#blocks[Number(i)](indent),
      )
      .replace(/zzhelmv(\d+)zz/g, (_, i: string) => `{{ ${this.#values[Number(i)]} }}`);
  }
}

const NS = 'include "mirror-synth.namespace" .';
const AGENT_NS = 'include "mirror-synth.nodeAgentNamespace" .';
const SAME_NS = `eq (${NS}) (${AGENT_NS})`;

/** The switches that change the shape of the construct's objects, with their template conditions. */
const SWITCHES = [
  { name: 'sameNamespace', condition: SAME_NS },
  { name: 'takeover', condition: '.Values.takeover' },
] as const;
type Variant = { sameNamespace: boolean; takeover: boolean };

/** `--set key=value` lines of YAML under `key:`, at `indent`, from a value (empty: the key is left out). */
const yamlBlock = (indent: string, key: string, expr: string) =>
  `{{- with ${expr} }}\n${indent}${key}:\n{{- toYaml . | nindent ${indent.length + 2} }}\n{{- end }}`;

function controllerTemplate(m: Markers, nsMark: string, agentMark: string, imageMark: string): string {
  const variants: Variant[] = [];
  for (const sameNamespace of [false, true])
    for (const takeover of [false, true]) variants.push({ sameNamespace, takeover });
  const keyOf = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  const texts = variants.map((v) => {
    const objects = controllerObjects({
      namespace: nsMark,
      nodeAgentNamespace: v.sameNamespace ? nsMark : agentMark,
      image: imageMark,
      takeover: v.takeover,
    }).map((o) => templated(m, o));
    return new Map(objects.map((o) => [keyOf(o), escapeForHelm(stringify(o, { lineWidth: 0 }))]));
  });
  // every object in the order of its first appearance (the default variant's apply order first)
  const keys = [...new Set(texts.flatMap((t) => [...t.keys()]))];
  const docs = keys
    .map((key) =>
      variantTree(
        variants,
        texts.map((t) => t.get(key)),
        0,
      ),
    )
    .filter((d) => d !== '');
  return m.render(docs.join('---\n'));
}

/** Text for the variants (in order), splitting on each switch where they differ. */
function variantTree(variants: Variant[], texts: (string | undefined)[], depth: number): string {
  if (texts.every((t) => t === texts[0])) return texts[0] ?? '';
  const sw = SWITCHES[depth];
  const pick = (on: boolean) => {
    const idx = variants.map((v, i) => [v, i] as const).filter(([v]) => v[sw.name] === on);
    return variantTree(
      idx.map(([v]) => v),
      idx.map(([, i]) => texts[i]),
      depth + 1,
    );
  };
  const [yes, no] = [pick(true), pick(false)];
  const end = (t: string) => (t === '' || t.endsWith('\n') ? t : `${t}\n`);
  if (no === '') return `{{- if ${sw.condition} }}\n${end(yes)}{{- end }}\n`;
  if (yes === '') return `{{- if not (${sw.condition}) }}\n${end(no)}{{- end }}\n`;
  return `{{- if ${sw.condition} }}\n${end(yes)}{{- else }}\n${end(no)}{{- end }}\n`;
}

/** The Deployment's and the allowlist's values, on the construct's objects. */
function templated(m: Markers, o: KubeObject): KubeObject {
  const obj = structuredClone(o) as KubeObject & { spec?: Record<string, unknown>; data?: unknown };
  if (obj.kind === 'ConfigMap' && obj.metadata.name === `${PROJECT}-allowlist`) {
    // every list that is set (null: unset, anything), its entries comma-separated (toJson sorts the keys)
    delete obj.data;
    (obj as unknown as Record<string, unknown>)[
      m.block((i) =>
        [
          '{{- $data := dict }}',
          '{{- range $key, $entries := .Values.allowlist }}',
          '{{- if kindIs "slice" $entries }}',
          '{{- $_ := set $data $key (join "," $entries) }}',
          '{{- end }}',
          '{{- end }}',
          `${i}data: {{ toJson $data }}`,
        ].join('\n'),
      )
    ] = 'x';
  }
  if (obj.kind !== 'Deployment') return obj;
  const spec = obj.spec as { replicas: unknown; template: { spec: Record<string, unknown> } };
  spec.replicas = m.value('.Values.replicas');
  const pod = spec.template.spec;
  const [container] = pod.containers as Record<string, unknown>[];
  const d = CONTROLLER_DEFAULTS;
  delete container.args;
  container[
    m.block((i) =>
      [
        `${i}args:`,
        `${i}  - controller`,
        '{{- if .Values.takeover }}',
        `${i}  - --takeover`,
        '{{- end }}',
        '{{- if not .Values.leaderElection.enabled }}',
        `${i}  - --no-leader-election`,
        '{{- end }}',
        ...(
          [
            ['leaseDurationSeconds', '--lease-duration'],
            ['renewDeadlineSeconds', '--renew-deadline'],
            ['retryPeriodSeconds', '--retry-period'],
          ] as const
        ).flatMap(([key, flag]) => [
          `{{- if ne (int .Values.leaderElection.${key}) ${d[key]} }}`,
          `${i}  - ${flag}={{ .Values.leaderElection.${key} }}`,
          '{{- end }}',
        ]),
      ].join('\n'),
    )
  ] = 'x';
  container.image = m.value('include "mirror-synth.image" . | quote');
  const env = container.env as Record<string, unknown>[];
  for (const e of env) if (e.name === 'FILL_IMAGE') e.value = m.value('include "mirror-synth.image" . | quote');
  const at = env.findIndex((e) => e.name === 'NODE_AGENT_NAMESPACE') + 1;
  // set only when not the controller's own default, so the default render is controller-manifests' bytes
  const optionalEnv = (i: string, name: string, value: string, fallback: string) =>
    `{{- if ne ${value} ${JSON.stringify(fallback)} }}\n${i}- name: ${name}\n${i}  value: {{ ${value} | quote }}\n{{- end }}`;
  env.splice(at, 0, {
    [m.block((i) =>
      [
        optionalEnv(i, 'NODE_AGENT_IMAGE', '.Values.nodeAgent.image', DEFAULT_NODE_AGENT_IMAGE),
        optionalEnv(i, 'NODE_RUNTIME', '.Values.nodeRuntime', DEFAULT_NODE_RUNTIME),
        optionalEnv(i, 'CLUSTER_DOMAIN', '.Values.clusterDomain', DEFAULT_CLUSTER_DOMAIN),
      ].join('\n'),
    )]: 'x',
  });
  container[m.block((i) => `{{- with .Values.image.pullPolicy }}\n${i}imagePullPolicy: {{ . }}\n{{- end }}`)] = 'x';
  delete container.resources;
  container[m.block((i) => `${i}resources:\n{{- toYaml .Values.resources | nindent ${i.length + 2} }}`)] = 'x';
  pod[m.block((i) => yamlBlock(i, 'imagePullSecrets', '.Values.imagePullSecrets'))] = 'x';
  pod[m.block((i) => yamlBlock(i, 'nodeSelector', '.Values.nodeSelector'))] = 'x';
  pod[m.block((i) => yamlBlock(i, 'tolerations', '.Values.tolerations'))] = 'x';
  pod[m.block((i) => yamlBlock(i, 'affinity', '.Values.affinity'))] = 'x';
  pod[m.block((i) => `{{- with .Values.priorityClassName }}\n${i}priorityClassName: {{ . | quote }}\n{{- end }}`)] =
    'x';
  return obj;
}

function pdbTemplate(m: Markers, nsMark: string): string {
  const pdb = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: CONTROLLER_NAME, namespace: nsMark, labels },
    spec: {
      selector: { matchLabels: selector },
      [m.block((i) =>
        [
          '{{- if kindIs "invalid" .Values.podDisruptionBudget.minAvailable }}',
          `${i}maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}`,
          '{{- else }}',
          `${i}minAvailable: {{ .Values.podDisruptionBudget.minAvailable }}`,
          '{{- end }}',
        ].join('\n'),
      )]: 'x',
    },
  };
  return `{{- if .Values.podDisruptionBudget.enabled }}\n${m.render(stringify(pdb, { lineWidth: 0 }))}{{- end }}\n`;
}

function networkPolicyTemplate(m: Markers, nsMark: string): string {
  const np = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: CONTROLLER_NAME, namespace: nsMark, labels },
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress', 'Egress'],
      [m.block((i) =>
        [
          '{{- with .Values.networkPolicy.metricsCIDRs }}',
          `${i}ingress:`,
          `${i}  - ports: [{ port: http-metrics, protocol: TCP }]`,
          `${i}    from:`,
          '{{- range . }}',
          `${i}      - ipBlock: { cidr: {{ . | quote }} }`,
          '{{- end }}',
          '{{- else }}',
          `${i}ingress: []`,
          '{{- end }}',
          `${i}egress:`,
          `${i}  - ports:`,
          '{{- range .Values.networkPolicy.apiServerPorts }}',
          `${i}      - { port: {{ . }}, protocol: TCP }`,
          '{{- end }}',
          `${i}    to:`,
          '{{- range .Values.networkPolicy.apiServerCIDRs }}',
          `${i}      - ipBlock: { cidr: {{ . | quote }} }`,
          '{{- end }}',
        ].join('\n'),
      )]: 'x',
    },
  };
  return `{{- if .Values.networkPolicy.enabled }}\n${m.render(stringify(np, { lineWidth: 0 }))}{{- end }}\n`;
}

function monitoringTemplate(nsMark: string, m: Markers): string {
  const objects = (build: (chart: Chart) => void) => {
    const chart = new Chart(new App(), 'c', { disableResourceNameHashes: true });
    build(chart);
    return chartObjects(chart).map((o) => stringify(o, { lineWidth: 0 }));
  };
  const podMonitor = objects((c) => new ControllerMonitoring(c, 'Monitoring', { namespace: nsMark }));
  const dashboard = objects((c) => new MirrorDashboard(c, 'Dashboard', { namespace: nsMark }));
  return m.render(
    [
      `{{- if .Values.monitoring.podMonitor }}\n${escapeForHelm(podMonitor.join('---\n'))}{{- end }}\n`,
      `{{- if .Values.monitoring.dashboard }}\n${escapeForHelm(dashboard.join('---\n'))}{{- end }}\n`,
    ].join('---\n'),
  );
}

const HELPERS = `{{/* The output namespace: the controller and every mirror's cache. */}}
{{- define "mirror-synth.namespace" -}}
{{- .Values.namespace -}}
{{- end -}}

{{/* The node agents' namespace: nodeAgent.namespace, else <namespace>${NODE_AGENT_NAMESPACE_SUFFIX}. */}}
{{- define "mirror-synth.nodeAgentNamespace" -}}
{{- $ns := default (printf "%s${NODE_AGENT_NAMESPACE_SUFFIX}" .Values.namespace) .Values.nodeAgent.namespace -}}
{{- if gt (len $ns) 63 -}}
{{- fail (printf "nodeAgent.namespace: '%s' is longer than 63 characters; set nodeAgent.namespace or a shorter namespace" $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* The controller image: <repository>@<digest>, else <repository>:<tag or appVersion>. */}}
{{- define "mirror-synth.image" -}}
{{- $repo := required "image.repository: set it to where you pushed the controller image (npm run build:image); mirror-synth publishes none" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* What the schema cannot say: values that must agree with each other. */}}
{{- define "mirror-synth.checks" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas: more than one controller replica needs leaderElection.enabled (two would reconcile at once)" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (empty .Values.networkPolicy.apiServerCIDRs) -}}
{{- fail "networkPolicy.apiServerCIDRs: the controller must reach the API server; list its addresses (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes)" -}}
{{- end -}}
{{- $le := .Values.leaderElection -}}
{{- if le (int $le.leaseDurationSeconds) (int $le.renewDeadlineSeconds) -}}
{{- fail "leaderElection.leaseDurationSeconds must be longer than leaderElection.renewDeadlineSeconds" -}}
{{- end -}}
{{- if le (float64 $le.renewDeadlineSeconds) (mulf 1.2 $le.retryPeriodSeconds) -}}
{{- fail "leaderElection.renewDeadlineSeconds must be longer than 1.2 leaderElection.retryPeriodSeconds" -}}
{{- end -}}
{{- end -}}
`;

const NOTES = `mirror-synth {{ .Chart.AppVersion }}: the controller runs in namespace {{ include "mirror-synth.namespace" . }}, the node agents in {{ include "mirror-synth.nodeAgentNamespace" . }}.

Next:
1. Wait for it:  kubectl -n {{ include "mirror-synth.namespace" . }} rollout status deployment/${CONTROLLER_NAME}
2. Describe a mirror and apply it (docs/mirrors.md):
     kubectl apply -f - <<'EOF'
     apiVersion: k8s.osp.tech/v1
     kind: RegistryMirror
     metadata: { name: quay, labels: { mirror: quay } }
     spec: { upstreamUrl: quay.io }
     EOF
3. kubectl wait --for=condition=Ready registrymirror/quay --timeout=5m
   (Ready: the cache serves and every node's runtime is pointed at it; if not, its Ready and Stalled conditions say why)
{{- if not (or .Values.allowlist.allowedUpstreams .Values.allowlist.allowedImageRegistries) }}

Anyone who may write RegistryMirrors may name any upstream and image registry: set allowlist.* (docs/security.md).
{{- end }}

helm uninstall removes the controller, its namespaces and with them every mirror's cache and node agent (the
node agents put each node's registry config back as they found it); the CRD and your RegistryMirrors stay.
`;

function valuesYaml(): string {
  const lines: string[] = [
    `# Values of the ${PROJECT} controller chart. Generated by \`npm run chart\` from the definitions the CLI uses;`,
    '# values.schema.json checks them. With these defaults (and image.repository set) the chart renders exactly',
    '# `mirror-synth controller-manifests --image <repository>:<appVersion>`.',
  ];
  const walk = (value: Record<string, unknown>, path: string, indent: string) => {
    for (const [key, v] of Object.entries(value)) {
      const p = path ? `${path}.${key}` : key;
      if (DOCS[p]) lines.push(`${indent}# ${DOCS[p]}`);
      if (
        v !== null &&
        typeof v === 'object' &&
        !Array.isArray(v) &&
        Object.keys(v).length > 0 &&
        key !== 'resources'
      ) {
        lines.push(`${indent}${key}:`);
        walk(v as Record<string, unknown>, p, `${indent}  `);
      } else {
        const text = stringify({ [key]: v }, { lineWidth: 0 }).trimEnd();
        lines.push(...text.split('\n').map((l) => `${indent}${l}`));
      }
    }
  };
  walk(defaultValues(), '', '');
  return `${lines.join('\n')}\n`;
}

/** Chart.yaml: version and appVersion are package.json's (the release takes all three from there). */
function chartYaml(version: string): string {
  return stringify(
    {
      apiVersion: 'v2',
      name: PROJECT,
      description:
        'The mirror-synth controller: in-cluster registry mirrors (CNCF Distribution pull-through caches behind an nginx front) for every RegistryMirror, and the node configuration that sends every node through them.',
      type: 'application',
      version,
      appVersion: version,
      keywords: ['registry', 'mirror', 'pull-through cache', 'containerd'],
    },
    { lineWidth: 0 },
  );
}

/** Every file of the chart, by path under its directory. */
export function controllerChartFiles(version: string, crd: string): Map<string, string> {
  const m = new Markers();
  const ns = m.value(NS);
  const agent = m.value(AGENT_NS);
  const image = m.value('include "mirror-synth.image" . | quote');
  const header =
    '# Generated by `npm run chart` from the constructs of `mirror-synth controller-manifests`. Do not edit.\n';
  return new Map([
    ['Chart.yaml', chartYaml(version)],
    ['values.yaml', valuesYaml()],
    ['values.schema.json', `${JSON.stringify(valuesSchema(), null, 2)}\n`],
    ['crds/registrymirrors.yaml', crd],
    ['templates/_helpers.tpl', HELPERS],
    ['templates/NOTES.txt', NOTES],
    [
      'templates/controller.yaml',
      `${header}{{- include "mirror-synth.checks" . }}\n${controllerTemplate(m, ns, agent, image)}`,
    ],
    ['templates/poddisruptionbudget.yaml', header + pdbTemplate(m, ns)],
    ['templates/networkpolicy.yaml', header + networkPolicyTemplate(m, ns)],
    ['templates/monitoring.yaml', header + monitoringTemplate(ns, m)],
  ]);
}
