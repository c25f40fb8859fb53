/**
 * What the platform decides for every mirror, never a spec: the namespaces, the cluster's DNS
 * domain and node runtime, the node agent's and the fill's image, and the controller's own objects
 * (its name, its Lease, the wait between streams its Deployment sets). The commands' flags and the
 * controller's config resolve to these defaults once. Light (API names only): the CLI's help text
 * and the controller's config read them without loading cdk8s.
 */
import { PROJECT } from '../api/names.js';

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

/** The output and node agent namespaces, defaulted: the one place a library caller's omission is filled in. */
export function resolveNamespaces(opts: { readonly namespace?: string; readonly nodeAgentNamespace?: string }): {
  namespace: string;
  nodeAgentNamespace: string;
} {
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  return { namespace, nodeAgentNamespace: opts.nodeAgentNamespace ?? defaultNodeAgentNamespace(namespace) };
}
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/** Controller: wait before reconnecting after the API server fails or while the CRD is missing. */
export const DEFAULT_SECONDS_BETWEEN_STREAMS = 30;

/** Node runtimes the node agent can configure (`--node-runtime`), one per cluster. */
export const NODE_RUNTIMES = ['containerd', 'k3s', 'rke2', 'cri-o'] as const;
export type NodeRuntime = (typeof NODE_RUNTIMES)[number];
export const DEFAULT_NODE_RUNTIME: NodeRuntime = 'containerd';

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
export const CONTROLLER_NAME = `${PROJECT}-controller`;

/** The leader-election Lease; the controller's RBAC names it in `resourceNames`. */
export const LEASE_NAME = CONTROLLER_NAME;
