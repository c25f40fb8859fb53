/**
 * The RegistryMirror construct: one mirror spec in, the Kubernetes objects that run it out.
 * It resolves the spec once and composes the mirror's parts: the cache (cache.ts) and the
 * node agent (node-agent.ts). Pure: no clock, no randomness, no network; the only file it
 * reads is the node agent's packaged script. Same props, same objects.
 */
import { Construct } from 'constructs';

import { childName } from '../api/children.js';
import {
  COMPONENT_LABEL,
  INSTANCE_LABEL,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MIRROR_APP_NAME,
  MIRROR_LABEL,
  NAME_LABEL,
} from '../api/names.js';
import type { MirrorSpec } from '../api/schema.js';
import { MirrorCache } from './cache.js';
import type { k8s } from './k8s.js';
import { MirrorNetworkPolicy } from './network-policy.js';
import { NodeAgent } from './node-agent.js';
import type { MirrorParts } from './parts.js';
import { type NodeRuntime, resolveNamespaces } from './platform.js';
import { MirrorWarm } from './warm.js';

export interface RegistryMirrorProps extends Readonly<MirrorSpec> {
  /** The mirror's name (the RegistryMirror's metadata.name); children are `registry-mirror-<name>`. */
  readonly name: string;
  /**
   * Namespace of every child.
   * @default 'kube-extra'
   */
  readonly namespace?: string;
  /**
   * Namespace of the node agent's DaemonSet and ConfigMap: the one namespace that must admit Pod
   * Security `privileged` (the agent mounts a node directory). The same as `namespace` puts
   * everything in one namespace.
   * @default `<namespace>-node`
   */
  readonly nodeAgentNamespace?: string;
  /**
   * Hash of the content of the Secrets the registry reads (upstream credentials, bucket key).
   * Set by the controller, which reads them, so a change of either rolls the registry pods.
   * @default - no annotation; the pods roll only when the spec changes
   */
  readonly credentialsHash?: string;
  /**
   * The cluster's DNS domain, used by the node agent to find the mirror Service, and by the
   * streaming fill (`fill: streaming`) to find the other replicas.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * The cluster's node container runtime, which decides what the node agent writes and where.
   * @default 'containerd'
   */
  readonly nodeRuntime?: NodeRuntime;
  /**
   * The node agent's image. The platform's choice, not the spec's: the agent runs as root with a
   * node directory writable, so `imageRegistry` and `imageDigests` do not apply to it.
   * @default DEFAULT_NODE_AGENT_IMAGE (busybox, pinned)
   */
  readonly nodeAgentImage?: string;
  /**
   * The mirror-synth image the streaming fill runs (`fill: streaming`): the controller's own, or
   * the one synth is given. No default: mirror-synth publishes no image (docs/controller.md, "The controller image").
   * @default - none: `fill: streaming` is refused
   */
  readonly fillImage?: string;
}

export class RegistryMirror extends Construct {
  /** Resolved settings. */
  public readonly mirrorName: string;
  public readonly namespace: string;
  public readonly nodeAgentNamespace: string;
  public readonly resourceName: string;
  public readonly upstreamUrl: string;
  public readonly replicas: number;
  public readonly storage: string | number;
  /** Registry hosts the node agent points at this mirror (upstream first, then masqueradeUrl). */
  public readonly hosts: readonly string[];
  public readonly labels: Readonly<Record<string, string>>;

  /** The parts. */
  public readonly cachePart: MirrorCache;
  public readonly nodeAgentPart: NodeAgent;
  public readonly networkPolicyPart: MirrorNetworkPolicy;
  /** `spec.cache.pinned`: the list's ConfigMap (the warm container is the cache's). */
  public readonly warmPart: MirrorWarm;

  /** Children. */
  public readonly cacheConfig: k8s.KubeConfigMap;
  public readonly agentConfig: k8s.KubeConfigMap;
  public readonly service: k8s.KubeService;
  public readonly headlessService: k8s.KubeService;
  public readonly cache: k8s.KubeStatefulSet;
  public readonly nodeAgent: k8s.KubeDaemonSet;
  /** Who may reach the cache pods: port 5000 from the nodes, the metrics ports from monitoring. */
  public readonly networkPolicy: k8s.KubeNetworkPolicy;

  constructor(scope: Construct, id: string, props: RegistryMirrorProps) {
    super(scope, id);
    const {
      name,
      namespace,
      nodeAgentNamespace,
      credentialsHash,
      clusterDomain,
      nodeRuntime,
      nodeAgentImage,
      fillImage,
      ...spec
    } = props;
    this.mirrorName = name;
    ({ namespace: this.namespace, nodeAgentNamespace: this.nodeAgentNamespace } = resolveNamespaces({
      namespace,
      nodeAgentNamespace,
    }));
    this.resourceName = childName(name);
    this.upstreamUrl = spec.upstreamUrl;
    this.labels = {
      ...spec.labels,
      [MIRROR_LABEL]: name,
      [NAME_LABEL]: MIRROR_APP_NAME,
      [INSTANCE_LABEL]: name,
      [MANAGED_BY_LABEL]: MANAGED_BY,
    };
    const parts: MirrorParts = {
      scope: this,
      mirrorName: name,
      resourceName: this.resourceName,
      namespace: this.namespace,
      nodeAgentNamespace: this.nodeAgentNamespace,
      spec,
      labelsFor: (component) => ({ ...this.labels, [COMPONENT_LABEL]: component }),
      selectorFor: (component) => ({ [MIRROR_LABEL]: name, [COMPONENT_LABEL]: component }),
      imagePullSecrets: spec.imagePullSecrets?.map((s) => ({ name: s.name })),
    };

    this.cachePart = new MirrorCache(parts, { credentialsHash, clusterDomain, fillImage });
    this.nodeAgentPart = new NodeAgent(parts, { clusterDomain, nodeRuntime, image: nodeAgentImage });
    this.replicas = this.cachePart.replicas;
    this.storage = this.cachePart.storage;
    this.hosts = this.nodeAgentPart.hosts;
    this.cacheConfig = this.cachePart.config;
    this.service = this.cachePart.service;
    this.headlessService = this.cachePart.headlessService;
    this.cache = this.cachePart.statefulSet;
    this.agentConfig = this.nodeAgentPart.config;
    this.nodeAgent = this.nodeAgentPart.daemonSet;
    this.networkPolicyPart = new MirrorNetworkPolicy(parts, { keeper: this.cachePart.keeper !== undefined });
    this.networkPolicy = this.networkPolicyPart.networkPolicy;
    this.warmPart = new MirrorWarm(parts);
  }
}
