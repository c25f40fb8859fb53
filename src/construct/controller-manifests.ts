/**
 * The controller's own manifests: Namespace, ServiceAccount, least-privilege RBAC and a
 * Deployment, synthesized with cdk8s like everything else.
 *
 * RBAC, and why each rule is there:
 * - ClusterRole: read and watch RegistryMirrors (cluster-scoped) and write their status.
 * - Role in the output namespace: manage the children (ConfigMaps, Services, StatefulSets,
 *   DaemonSets, NetworkPolicies); list pods (a stuck container's reason); take the leader-election
 *   Lease. With `takeover` only: delete pods and list and delete claims (the original operator's). Secrets, see SECRET_VERBS: a Secret's data is
 *   used only when the Secret opts in to the mirror (controller/credentials.ts), a rule RBAC
 *   cannot express (it knows no annotations or labels, and list gives every Secret's data), so the
 *   controller enforces it and the Role grants only the verbs the controller uses.
 * - Role in the node agent namespace: manage the node agents' ConfigMaps and DaemonSets (and list
 *   their pods); nothing else of the controller's lives there.
 * - The allowlist: a ConfigMap, and a ValidatingAdmissionPolicy with its binding that refuses a
 *   RegistryMirror naming what the ConfigMap does not allow (api/policy.ts); the controller watches
 *   the same ConfigMap (get, list and watch of it: the Role's configmaps rule, which its children
 *   need namespace-wide anyway, covers it), so an edit takes effect without a restart.
 * - Role in `default`: create Events. RegistryMirrors are cluster-scoped, and Events about
 *   cluster-scoped objects live in `default` (as client-go records them).
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';

import {
  API_GROUP,
  API_VERSION,
  COMPONENT_LABEL,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  PLURAL,
  PROJECT,
} from '../api/names.js';
import { ALLOWLIST_KEYS, ALLOWLIST_NAME, ALLOWLISTS, allowlistValidations, type MirrorPolicy } from '../api/policy.js';
import { k8s } from './k8s.js';
import { addMirrorNamespaces } from './namespace.js';
import {
  CONTROLLER_NAME,
  DEFAULT_SECONDS_BETWEEN_STREAMS,
  FILL_IMAGE_ENV,
  LEASE_NAME,
  resolveNamespaces,
} from './platform.js';
import { RESTRICTED_CONTAINER, restrictedPod } from './pod.js';
import { CONTROLLER_METRICS_PORT } from './ports.js';

/** V8 heap settings of the controller container (measured by bench/controller.ts). */
export const NODE_OPTIONS = '--max-old-space-size=160 --max-semi-space-size=2';

export interface ControllerManifestsProps {
  /** Output namespace of the mirrors; the controller runs there too. */
  readonly namespace: string;
  /**
   * Namespace of the node agents (Pod Security `privileged`); the output namespace is `restricted`.
   * @default `<namespace>-node`
   */
  readonly nodeAgentNamespace?: string;
  /**
   * The controller's image, built with `npm run build:image` and pushed where the cluster pulls
   * from (mirror-synth publishes none), e.g. `registry.example.com/mirror-synth:0.1.0`. Mirrors with
   * `spec.fill: streaming` run their fill from it too (FILL_IMAGE).
   */
  readonly image: string;
  /**
   * The image of every mirror's node agent (root on every node: the platform's choice, never a spec's).
   * @default - the controller's own default, DEFAULT_NODE_AGENT_IMAGE
   */
  readonly nodeAgentImage?: string;
  /** The allowlist written into the ConfigMap `mirror-synth-allowlist`. @default - every list unset: anything */
  readonly policy?: MirrorPolicy;
  /**
   * Take mirrors over from the original mirror-operator: the Deployment runs `controller
   * --takeover`, and the Role adds `delete` on pods and `list`, `delete` on
   * persistentvolumeclaims (its orphaned pods and its claims), and the output namespace enforces Pod
   * Security `privileged` (the original's pods, its surge replica among them, do not meet
   * `restricted`). Remove it once every mirror has moved. @default false - pods `list` only, no claims
   */
  readonly takeover?: boolean;
}

const selector = { [NAME_LABEL]: PROJECT, [COMPONENT_LABEL]: 'controller' };
const labels = { ...selector, [MANAGED_BY_LABEL]: MANAGED_BY };
const CHILD_VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
/**
 * Secrets in the output namespace: list and watch (the informer asks for metadata only: which
 * mirrors a Secret opts in to, and when it changes), get (the data of a Secret that opted in, read
 * when a reconcile needs it), create, patch and delete (the derived `registry-mirror-<name>-credentials`
 * Secrets of dockerconfigjson Secrets, applied server-side and pruned; names are per mirror, so
 * resourceNames cannot narrow them; the original operator's Secret on takeover). No update: the
 * controller never replaces a Secret. docs/controller.md lists the same verbs.
 */
export const SECRET_VERBS = ['get', 'list', 'watch', 'create', 'patch', 'delete'];

/** The controller's Namespace, ServiceAccount, RBAC and Deployment. */
export class ControllerManifests extends Construct {
  constructor(scope: Construct, id: string, props: ControllerManifestsProps) {
    super(scope, id);
    addControllerObjects(this, props);
  }
}

function addControllerObjects(chart: Construct, props: ControllerManifestsProps): void {
  const { namespace, image, policy = {}, takeover = false, nodeAgentImage } = props;
  const agentNamespace = resolveNamespaces(props).nodeAgentNamespace;
  // Taking over: mirror-operator's pods run in the output namespace and do not meet "restricted".
  addMirrorNamespaces(chart, namespace, agentNamespace, takeover);
  const meta = (name: string, ns?: string) => ({ name, ...(ns ? { namespace: ns } : {}), labels });

  new k8s.KubeServiceAccount(chart, 'ServiceAccount', { metadata: meta(CONTROLLER_NAME, namespace) });
  const subjects = [{ kind: 'ServiceAccount', name: CONTROLLER_NAME, namespace }];

  new k8s.KubeClusterRole(chart, 'ClusterRole', {
    metadata: meta(CONTROLLER_NAME),
    rules: [
      // patch: the controller sets mirror=<name> on each RegistryMirror (its own field manager, that label only).
      { apiGroups: [API_GROUP], resources: [PLURAL], verbs: ['get', 'list', 'watch', 'patch'] },
      // The output namespace must exist before anything else; the controller says so when it does not.
      {
        apiGroups: [''],
        resources: ['namespaces'],
        resourceNames: [...new Set([namespace, agentNamespace])],
        verbs: ['get'],
      },
      { apiGroups: [API_GROUP], resources: [`${PLURAL}/status`], verbs: ['get', 'patch', 'update'] },
    ],
  });
  new k8s.KubeClusterRoleBinding(chart, 'ClusterRoleBinding', {
    metadata: meta(CONTROLLER_NAME),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLLER_NAME },
    subjects,
  });

  new k8s.KubeRole(chart, 'Role', {
    metadata: meta(CONTROLLER_NAME, namespace),
    rules: [
      // configmaps: the children, and the allowlist ConfigMap the controller watches (by name).
      { apiGroups: [''], resources: ['configmaps', 'services'], verbs: CHILD_VERBS },
      { apiGroups: ['apps'], resources: ['statefulsets', 'daemonsets'], verbs: CHILD_VERBS },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: CHILD_VERBS },
      { apiGroups: [''], resources: ['secrets'], verbs: SECRET_VERBS },
      // list: why a cache pod does not start.
      { apiGroups: [''], resources: ['pods'], verbs: takeover ? ['list', 'delete'] : ['list'] },
      // Only with the takeover: the original mirror-operator's orphaned pods (above) and its claims.
      ...(takeover ? [{ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['list', 'delete'] }] : []),
      // create cannot be narrowed by name; renewing is limited to the controller's own Lease.
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: [LEASE_NAME],
        verbs: ['get', 'update'],
      },
    ],
  });
  new k8s.KubeRoleBinding(chart, 'RoleBinding', {
    metadata: meta(CONTROLLER_NAME, namespace),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER_NAME },
    subjects,
  });

  if (agentNamespace !== namespace) {
    new k8s.KubeRole(chart, 'NodeAgentRole', {
      metadata: meta(CONTROLLER_NAME, agentNamespace),
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: CHILD_VERBS },
        { apiGroups: ['apps'], resources: ['daemonsets'], verbs: CHILD_VERBS },
        // list: why a node agent pod does not start.
        { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      ],
    });
    new k8s.KubeRoleBinding(chart, 'NodeAgentRoleBinding', {
      metadata: meta(CONTROLLER_NAME, agentNamespace),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER_NAME },
      subjects,
    });
  }

  const eventsRole = `${CONTROLLER_NAME}-events`;
  new k8s.KubeRole(chart, 'EventsRole', {
    metadata: meta(eventsRole, 'default'),
    rules: [{ apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] }],
  });
  new k8s.KubeRoleBinding(chart, 'EventsRoleBinding', {
    metadata: meta(eventsRole, 'default'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: eventsRole },
    subjects,
  });

  addAllowlist(chart, namespace, policy);

  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: k8s.IntOrString.fromString('http-metrics') },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 2,
  });
  new k8s.KubeDeployment(chart, 'Deployment', {
    metadata: meta(CONTROLLER_NAME, namespace),
    spec: {
      // One replica reconciles; leader election keeps a rolling update from running two at once.
      replicas: 1,
      selector: { matchLabels: selector },
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(1), maxUnavailable: k8s.IntOrString.fromNumber(0) },
      },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: CONTROLLER_NAME,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 30,
          securityContext: restrictedPod(10001),
          containers: [
            {
              name: 'controller',
              image,
              args: takeover ? ['controller', '--takeover'] : ['controller'],
              env: [
                { name: 'NAMESPACE', value: namespace },
                { name: 'NODE_AGENT_NAMESPACE', value: agentNamespace },
                ...(nodeAgentImage ? [{ name: 'NODE_AGENT_IMAGE', value: nodeAgentImage }] : []),
                // The streaming fill runs from the controller's own image: the one image the platform chose.
                { name: FILL_IMAGE_ENV, value: image },
                // No ALLOWED_* variables: the controller watches the allowlist ConfigMap itself, so an
                // edit takes effect without a restart (a list set by a variable would be fixed).
                { name: 'SECONDS_BETWEEN_STREAMS', value: String(DEFAULT_SECONDS_BETWEEN_STREAMS) },
                // A small young generation and a capped old one keep RSS near what is live (< 200 MB at 1000 mirrors).
                { name: 'NODE_OPTIONS', value: NODE_OPTIONS },
              ],
              ports: [{ name: 'http-metrics', containerPort: CONTROLLER_METRICS_PORT }],
              livenessProbe: probe('/healthz', 20, 3),
              readinessProbe: probe('/readyz', 10, 3),
              resources: {
                requests: { cpu: k8s.Quantity.fromString('50m'), memory: k8s.Quantity.fromString('96Mi') },
                limits: { memory: k8s.Quantity.fromString('256Mi') },
              },
              securityContext: { ...RESTRICTED_CONTAINER, runAsNonRoot: true },
            },
          ],
        },
      },
    },
  });
}

/**
 * The allowlist ConfigMap and the admission policy that enforces it on the API server: a
 * RegistryMirror whose spec names an upstream, masquerade host, image registry, image digest, pull
 * Secret, priority class or object storage endpoint the ConfigMap does not allow (or that a key
 * with a bad entry governs) is refused on create, and on an update that changes its spec (a spec
 * left as it was, as in the controller's label write, passes). The binding denies when the ConfigMap is
 * missing: deleting it does not open the gate.
 */
function addAllowlist(chart: Construct, namespace: string, policy: MirrorPolicy): void {
  const data: Record<string, string> = {};
  for (const list of ALLOWLISTS) {
    const entries = policy[list];
    if (entries) data[ALLOWLIST_KEYS[list]] = entries.join(',');
  }
  new k8s.KubeConfigMap(chart, 'Allowlist', {
    metadata: { name: ALLOWLIST_NAME, namespace, labels },
    data,
  });
  new ApiObject(chart, 'AllowlistPolicy', {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: ALLOWLIST_NAME, labels },
    spec: {
      failurePolicy: 'Fail',
      paramKind: { apiVersion: 'v1', kind: 'ConfigMap' },
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: [API_GROUP],
            apiVersions: [API_VERSION],
            operations: ['CREATE', 'UPDATE'],
            resources: [PLURAL],
          },
        ],
      },
      matchConditions: [{ name: 'spec-written', expression: 'oldObject == null || object.spec != oldObject.spec' }],
      validations: allowlistValidations(),
    },
  });
  new ApiObject(chart, 'AllowlistPolicyBinding', {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: ALLOWLIST_NAME, labels },
    spec: {
      policyName: ALLOWLIST_NAME,
      validationActions: ['Deny'],
      paramRef: { name: ALLOWLIST_NAME, namespace, parameterNotFoundAction: 'Deny' },
    },
  });
}
