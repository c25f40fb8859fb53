/**
 * The node agent: a DaemonSet running a POSIX sh script (shipped in a ConfigMap) that points
 * every node's containerd at the mirror's Service through /etc/containerd/certs.d, and puts
 * the node back as it found it when it stops. One hostPath mount, not privileged.
 */
import { mirrorHosts, upstreamServerUrl } from '../api/hosts.js';
import { CONFIG_HASH_ANNOTATION, DEFAULT_CLUSTER_DOMAIN, REGISTRY_PORT } from '../api/names.js';
import { nodeAgentScript } from './assets.js';
import { NODE_AGENT_IMAGE } from './images.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';
import { RESTRICTED_CONTAINER, RUNTIME_DEFAULT_SECCOMP, configHash, quantities } from './pod.js';
import { withRegistry } from './upstream.js';

/** The node's containerd certs.d, and where the agent's pod mounts it. */
export const NODE_CERTS_DIR = '/etc/containerd/certs.d';
const AGENT_CERTS_DIR = '/host/etc/containerd/certs.d';
const AGENT_SCRIPT_DIR = '/opt/mirror-synth';
/** Seconds between the agent's look-ups of the Service address. */
const RESOLVE_INTERVAL = 60;

export interface NodeAgentProps {
  /**
   * The cluster's DNS domain, in which the agent resolves the mirror Service.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
}

export class NodeAgent {
  /** Registry hosts the agent points at the mirror. */
  public readonly hosts: readonly string[];
  public readonly clusterDomain: string;
  public readonly config: k8s.KubeConfigMap;
  public readonly daemonSet: k8s.KubeDaemonSet;

  constructor(parts: MirrorParts, props: NodeAgentProps = {}) {
    const { scope, spec, namespace, resourceName: name } = parts;
    this.hosts = mirrorHosts(spec);
    this.clusterDomain = props.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    const labels = parts.labelsFor('node-agent');
    const script = nodeAgentScript();

    this.config = new k8s.KubeConfigMap(scope, 'AgentConfig', {
      metadata: { name: `${name}-agent`, namespace, labels },
      data: { 'node-agent.sh': script },
    });
    // What Kubernetes names the Service's ClusterIP env var: the agent's fallback when DNS fails.
    const serviceHostVar = `${name.toUpperCase().replace(/-/g, '_')}_SERVICE_HOST`;
    this.daemonSet = new k8s.KubeDaemonSet(scope, 'NodeAgent', {
      metadata: { name, namespace, labels },
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
                image: withRegistry(NODE_AGENT_IMAGE, spec.imageRegistry),
                command: ['sh', `${AGENT_SCRIPT_DIR}/node-agent.sh`],
                env: [
                  { name: 'MIRROR_NAME', value: parts.mirrorName },
                  { name: 'HOSTS', value: this.hosts.join(' ') },
                  { name: 'SERVER_URL', value: upstreamServerUrl(spec.upstreamUrl) },
                  { name: 'SERVICE_NAME', value: `${name}.${namespace}.svc.${this.clusterDomain}` },
                  { name: 'SERVICE_HOST_VAR', value: serviceHostVar },
                  { name: 'SERVICE_PORT', value: String(REGISTRY_PORT) },
                  { name: 'CERTS_DIR', value: AGENT_CERTS_DIR },
                  { name: 'RESOLVE_INTERVAL', value: String(RESOLVE_INTERVAL) },
                ],
                resources: {
                  requests: quantities({ cpu: '5m', memory: '8Mi' }),
                  limits: quantities({ memory: '32Mi' }),
                },
                // Root without capabilities: enough to write root-owned files under certs.d, nothing more.
                // hostPath rules out Pod Security "restricted" for this pod; see README.
                securityContext: { ...RESTRICTED_CONTAINER, runAsUser: 0, runAsNonRoot: false, privileged: false },
                volumeMounts: [
                  { name: 'certs-d', mountPath: AGENT_CERTS_DIR },
                  { name: 'script', mountPath: AGENT_SCRIPT_DIR, readOnly: true },
                ],
              },
            ],
            volumes: [
              { name: 'certs-d', hostPath: { path: NODE_CERTS_DIR, type: 'DirectoryOrCreate' } },
              { name: 'script', configMap: { name: this.config.name, defaultMode: 0o555 } },
            ],
          },
        },
      },
    });
  }
}
