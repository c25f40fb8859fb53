/**
 * The cache pods' NetworkPolicy: without it every pod of the cluster may pull through the mirror,
 * and a mirror with credentials serves its upstream's private images to any of them, unasked.
 * It admits port 5000 (the front) only from the nodes' address ranges (`spec.networkPolicy.nodeCIDRs`)
 * and the metrics ports only from the monitoring pods (`spec.networkPolicy.monitoring`). Traffic
 * from the node a pod runs on (the kubelet's probes) is always allowed, whatever the policy says.
 * Egress is left open: the cache fetches from its upstream, wherever that is.
 *
 * A NetworkPolicy does something only where the cluster's CNI plugin enforces it (Calico, Cilium,
 * Antrea, kube-router, ...); elsewhere it is inert.
 */
import {
  DEFAULT_FILL,
  DEFAULT_MONITORING_NAMESPACE,
  DEFAULT_NODE_CIDRS,
  FILL_METRICS_PORT,
  FRONT_METRICS_PORT,
  NAMESPACE_NAME_LABEL,
  REGISTRY_DEBUG_PORT,
  REGISTRY_PORT,
  VOLUME_METRICS_PORT,
} from '../api/names.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';

export class MirrorNetworkPolicy {
  /** The address ranges admitted to port 5000. */
  public readonly nodeCidrs: readonly string[];
  public readonly networkPolicy: k8s.KubeNetworkPolicy;

  constructor(parts: MirrorParts) {
    const { scope, spec, namespace, resourceName: name } = parts;
    this.nodeCidrs = spec.networkPolicy?.nodeCIDRs ?? DEFAULT_NODE_CIDRS;
    const monitoring = spec.networkPolicy?.monitoring ?? {
      namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: DEFAULT_MONITORING_NAMESPACE } },
    };
    const tcp = (port: number): k8s.NetworkPolicyPort => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) });
    const selector = (s: { matchLabels?: Record<string, string> }): k8s.LabelSelector => ({
      matchLabels: s.matchLabels ?? {},
    });
    this.networkPolicy = new k8s.KubeNetworkPolicy(scope, 'NetworkPolicy', {
      metadata: { name, namespace, labels: parts.labelsFor('cache') },
      spec: {
        podSelector: { matchLabels: parts.selectorFor('cache') },
        policyTypes: ['Ingress'],
        ingress: [
          // minItems 1 in the schema: an empty `from` would admit every source.
          { from: this.nodeCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: [tcp(REGISTRY_PORT)] },
          {
            from: [
              {
                ...(monitoring.namespaceSelector ? { namespaceSelector: selector(monitoring.namespaceSelector) } : {}),
                podSelector: selector(monitoring.podSelector ?? {}),
              },
            ],
            ports: [
              tcp(REGISTRY_DEBUG_PORT),
              tcp(FRONT_METRICS_PORT),
              tcp(VOLUME_METRICS_PORT),
              ...((spec.fill ?? DEFAULT_FILL) === 'streaming' ? [tcp(FILL_METRICS_PORT)] : []),
            ],
          },
          // spec.fill streaming: a replica fetches the digests another one owns from that one's front.
          ...((spec.fill ?? DEFAULT_FILL) === 'streaming'
            ? [{ from: [{ podSelector: { matchLabels: parts.selectorFor('cache') } }], ports: [tcp(REGISTRY_PORT)] }]
            : []),
        ],
      },
    });
  }
}
