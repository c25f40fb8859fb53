/**
 * The node agent: a DaemonSet running a POSIX sh script (shipped in a ConfigMap) that points
 * every node's container runtime at the mirror's Service, and puts the node back as it found
 * it when it stops. The node runtime picks the one host directory it mounts (not privileged,
 * no capabilities) and what it writes there: containerd's certs.d hosts.toml files (also in
 * k3s's and RKE2's own certs.d) or a CRI-O registries.conf.d drop-in.
 */
import { mirrorChildNames } from '../api/children.js';
import { mirrorHosts, upstreamServerUrl } from '../api/hosts.js';
import { CONFIG_HASH_ANNOTATION, DEFAULT_PULL_FROM_MIRROR, type PullFromMirror } from '../api/names.js';
import { nodeAgentScript } from './assets.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';
import {
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_NODE_AGENT_IMAGE,
  DEFAULT_NODE_RUNTIME,
  type NodeRuntime,
} from './platform.js';
import { configHash, quantities, RESTRICTED_CONTAINER, RUNTIME_DEFAULT_SECCOMP } from './pod.js';
import { REGISTRY_PORT } from './ports.js';

/** The one host directory each node runtime reads mirror configuration from: all the agent mounts. */
export const NODE_CONFIG_DIRS: Readonly<Record<NodeRuntime, string>> = {
  containerd: '/etc/containerd/certs.d',
  // k3s and RKE2 run their own containerd with config_path set to their own certs.d.
  k3s: '/var/lib/rancher/k3s/agent/etc/containerd/certs.d',
  rke2: '/var/lib/rancher/rke2/agent/etc/containerd/certs.d',
  // containers-registries.conf.d(5): CRI-O and Podman read *.conf drop-ins here.
  'cri-o': '/etc/containers/registries.conf.d',
};
/** The pod sees the node's directory at the same path under /host. */
const HOST_MOUNT_ROOT = '/host';
const AGENT_SCRIPT_DIR = '/opt/mirror-synth';
/** Seconds between the agent's look-ups of the Service address. */
const RESOLVE_INTERVAL = 60;

export interface NodeAgentProps {
  /**
   * The cluster's DNS domain, in which the agent resolves the mirror Service.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * The cluster's node container runtime: which directory the agent mounts and what it writes.
   * @default 'containerd'
   */
  readonly nodeRuntime?: NodeRuntime;
  /**
   * The agent's image, set by the platform (never from the spec).
   * @default DEFAULT_NODE_AGENT_IMAGE
   */
  readonly image?: string;
}

export class NodeAgent {
  /** Registry hosts the agent points at the mirror. */
  public readonly hosts: readonly string[];
  public readonly clusterDomain: string;
  public readonly nodeRuntime: NodeRuntime;
  public readonly image: string;
  /** `spec.pullFromMirror`: whether nodes look tags up through the mirror (`all`) or at the upstream. */
  public readonly pullFromMirror: PullFromMirror;
  /** The node's directory the agent mounts (the only host path it touches). */
  public readonly hostDir: string;
  public readonly config: k8s.KubeConfigMap;
  public readonly daemonSet: k8s.KubeDaemonSet;

  constructor(parts: MirrorParts, props: NodeAgentProps = {}) {
    const { scope, spec } = parts;
    // The agent in its own namespace; the Service it points nodes at is in the output namespace.
    const namespace = parts.nodeAgentNamespace;
    const names = mirrorChildNames(parts.mirrorName);
    this.hosts = mirrorHosts(spec);
    this.clusterDomain = props.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    this.nodeRuntime = props.nodeRuntime ?? DEFAULT_NODE_RUNTIME;
    this.image = props.image ?? DEFAULT_NODE_AGENT_IMAGE;
    this.hostDir = NODE_CONFIG_DIRS[this.nodeRuntime];
    this.pullFromMirror = spec.pullFromMirror ?? DEFAULT_PULL_FROM_MIRROR;
    const mountPath = `${HOST_MOUNT_ROOT}${this.hostDir}`;
    const volume = this.nodeRuntime === 'cri-o' ? 'registries-conf-d' : 'certs-d';
    const labels = parts.labelsFor('node-agent');
    const script = nodeAgentScript();

    this.config = new k8s.KubeConfigMap(scope, 'AgentConfig', {
      metadata: { name: names.agentConfig, namespace, labels },
      data: { 'node-agent.sh': script },
    });
    // What Kubernetes names the Service's ClusterIP env var: the agent's fallback when DNS fails.
    // Kubernetes sets it only for Services of the pod's own namespace.
    const serviceHostVar =
      namespace === parts.namespace ? `${names.service.toUpperCase().replace(/-/g, '_')}_SERVICE_HOST` : '';
    this.daemonSet = new k8s.KubeDaemonSet(scope, 'NodeAgent', {
      metadata: { name: names.daemonSet, namespace, labels },
      spec: {
        selector: { matchLabels: parts.selectorFor('node-agent') },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(1) } },
        template: {
          metadata: { labels, annotations: { [CONFIG_HASH_ANNOTATION]: configHash(script) } },
          spec: {
            securityContext: RUNTIME_DEFAULT_SECCOMP,
            automountServiceAccountToken: false,
            priorityClassName: spec.priorityClassName,
            // Every node's runtime should use the mirror, tainted nodes included, unless told otherwise.
            tolerations: spec.tolerations?.map((t) => ({ ...t })) ?? [{ operator: 'Exists' }],
            imagePullSecrets: parts.imagePullSecrets,
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                name: 'node-agent',
                image: this.image,
                command: ['sh', `${AGENT_SCRIPT_DIR}/node-agent.sh`],
                env: [
                  { name: 'NODE_RUNTIME', value: this.nodeRuntime },
                  { name: 'MIRROR_NAME', value: parts.mirrorName },
                  { name: 'HOSTS', value: this.hosts.join(' ') },
                  { name: 'SERVER_URL', value: upstreamServerUrl(spec.upstreamUrl) },
                  { name: 'SERVICE_NAME', value: `${names.service}.${parts.namespace}.svc.${this.clusterDomain}` },
                  ...(serviceHostVar ? [{ name: 'SERVICE_HOST_VAR', value: serviceHostVar }] : []),
                  { name: 'SERVICE_PORT', value: String(REGISTRY_PORT) },
                  { name: 'CONFIG_DIR', value: mountPath },
                  { name: 'RESOLVE_INTERVAL', value: String(RESOLVE_INTERVAL) },
                  { name: 'PULL_FROM_MIRROR', value: this.pullFromMirror },
                ],
                resources: {
                  requests: quantities({ cpu: '5m', memory: '8Mi' }),
                  limits: quantities({ memory: '32Mi' }),
                },
                // Root without capabilities: enough to write root-owned files in the node's directory, nothing more.
                // hostPath rules out Pod Security "restricted" for this pod; see docs/security.md.
                securityContext: { ...RESTRICTED_CONTAINER, runAsUser: 0, runAsNonRoot: false, privileged: false },
                volumeMounts: [
                  { name: volume, mountPath },
                  { name: 'script', mountPath: AGENT_SCRIPT_DIR, readOnly: true },
                ],
              },
            ],
            volumes: [
              { name: volume, hostPath: { path: this.hostDir, type: 'DirectoryOrCreate' } },
              { name: 'script', configMap: { name: this.config.name, defaultMode: 0o555 } },
            ],
          },
        },
      },
    });
  }
}
