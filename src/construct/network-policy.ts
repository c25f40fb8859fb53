/**
 * The cache pods' NetworkPolicy: without it every pod of the cluster may pull through the mirror,
 * and a mirror with credentials serves its upstream's private images to any of them, unasked.
 * It admits port 5000 (the front) only from the nodes' address ranges (`spec.networkPolicy.nodeCIDRs`)
 * and the metrics ports only from the monitoring pods (`spec.networkPolicy.monitoring`). Traffic
 * from the node a pod runs on (the kubelet's probes) is always allowed, whatever the policy says.
 *
 * Egress: the cache fetches from its upstream, and Distribution follows the upstream's redirects
 * wherever they point (Docker Hub sends blobs to a CDN, so redirects cannot be refused) and sends
 * on what it gets there: an upstream could make it read cloud metadata or in-cluster services for
 * whoever pulls. So the pods may reach DNS (port 53, anywhere: the cluster's resolver may be
 * link-local), the mirror's other replicas (port 5000, `spec.fill: streaming`), and every address
 * but link-local (LINK_LOCAL_CIDRS) and `spec.networkPolicy.egressDeniedCIDRs`, with
 * `egressAllowedCIDRs` admitted again.
 *
 * A NetworkPolicy does something only where the cluster's CNI plugin enforces it (Calico, Cilium,
 * Antrea, kube-router, ...); elsewhere it is inert.
 */
import { DEFAULT_FILL, DEFAULT_NODE_CIDRS } from '../api/names.js';
import { k8s } from './k8s.js';
import type { MirrorParts } from './parts.js';
import {
  FILL_METRICS_PORT,
  FRONT_METRICS_PORT,
  KEEPER_METRICS_PORT,
  REGISTRY_METRICS_PORT,
  REGISTRY_PORT,
  VOLUME_METRICS_PORT,
  WARM_PORT,
} from './ports.js';

export const DEFAULT_MONITORING_NAMESPACE = 'monitoring';
/**
 * Where the cache pods may never connect, besides `spec.networkPolicy.egressDeniedCIDRs` (and
 * unless `egressAllowedCIDRs` lets them): link-local, where clouds serve instance metadata and
 * credentials (169.254.169.254, EKS Pod Identity's 169.254.170.23). Distribution follows an
 * upstream's redirects anywhere, and sends on what it finds there.
 */
export const LINK_LOCAL_CIDRS: readonly string[] = ['169.254.0.0/16', 'fe80::/10'];
/** DNS, which the cache pods may always reach (the cluster's resolver may be link-local: NodeLocal DNSCache). */
export const DNS_PORT = 53;
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
import { pinnedImages } from './warm.js';

export class MirrorNetworkPolicy {
  /** The address ranges admitted to port 5000. */
  public readonly nodeCidrs: readonly string[];
  /** The address ranges the cache pods may not connect to: link-local and `egressDeniedCIDRs`. */
  public readonly egressDeniedCidrs: readonly string[];
  /** The address ranges inside those the cache pods may connect to anyway. */
  public readonly egressAllowedCidrs: readonly string[];
  public readonly networkPolicy: k8s.KubeNetworkPolicy;

  constructor(parts: MirrorParts, opts: { keeper?: boolean } = {}) {
    const { scope, spec, namespace, resourceName: name } = parts;
    this.nodeCidrs = spec.networkPolicy?.nodeCIDRs ?? DEFAULT_NODE_CIDRS;
    const monitoring = spec.networkPolicy?.monitoring ?? {
      namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: DEFAULT_MONITORING_NAMESPACE } },
    };
    this.egressDeniedCidrs = [...new Set([...LINK_LOCAL_CIDRS, ...(spec.networkPolicy?.egressDeniedCIDRs ?? [])])];
    this.egressAllowedCidrs = spec.networkPolicy?.egressAllowedCIDRs ?? [];
    const port = (protocol: string, p: number): k8s.NetworkPolicyPort => ({
      protocol,
      port: k8s.IntOrString.fromNumber(p),
    });
    const tcp = (p: number) => port('TCP', p);
    const ipv6 = (cidr: string) => cidr.includes(':');
    const streaming = (spec.fill ?? DEFAULT_FILL) === 'streaming';
    const pinned = pinnedImages(spec).length > 0;
    const replicas = { podSelector: { matchLabels: parts.selectorFor('cache') } };
    // Every address of each family but the denied ones; none of a family a /0 denies whole (an
    // `except` must be smaller than its `cidr`).
    const everywhereBut = (['0.0.0.0/0', '::/0'] as const).flatMap((all): k8s.NetworkPolicyPeer[] => {
      const except = this.egressDeniedCidrs.filter((c) => ipv6(c) === ipv6(all));
      return except.some((c) => c.endsWith('/0')) ? [] : [{ ipBlock: { cidr: all, except } }];
    });
    const selector = (s: { matchLabels?: Record<string, string> }): k8s.LabelSelector => ({
      matchLabels: s.matchLabels ?? {},
    });
    this.networkPolicy = new k8s.KubeNetworkPolicy(scope, 'NetworkPolicy', {
      metadata: { name, namespace, labels: parts.labelsFor('cache') },
      spec: {
        podSelector: { matchLabels: parts.selectorFor('cache') },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [
          // minItems 1 in the schema: an empty `from` would admit every source.
          // spec.cache.pinned: the warm port too, where /status is read through the API
          // server's pod proxy, which connects from a control-plane or node address.
          {
            from: this.nodeCidrs.map((cidr) => ({ ipBlock: { cidr } })),
            ports: [tcp(REGISTRY_PORT), ...(pinned ? [tcp(WARM_PORT)] : [])],
          },
          {
            from: [
              {
                ...(monitoring.namespaceSelector ? { namespaceSelector: selector(monitoring.namespaceSelector) } : {}),
                podSelector: selector(monitoring.podSelector ?? {}),
              },
            ],
            ports: [
              tcp(REGISTRY_METRICS_PORT),
              tcp(FRONT_METRICS_PORT),
              tcp(VOLUME_METRICS_PORT),
              ...(streaming ? [tcp(FILL_METRICS_PORT)] : []),
              ...(opts.keeper ? [tcp(KEEPER_METRICS_PORT)] : []),
              ...(pinned ? [tcp(WARM_PORT)] : []),
            ],
          },
          // spec.fill streaming: a replica fetches the digests another one owns from that one's front.
          ...(streaming ? [{ from: [replicas], ports: [tcp(REGISTRY_PORT)] }] : []),
        ],
        egress: [
          { ports: [port('UDP', DNS_PORT), tcp(DNS_PORT)] },
          // spec.fill streaming: to the other replicas' fronts, wherever egressDeniedCIDRs puts pods.
          ...(streaming ? [{ to: [replicas], ports: [tcp(REGISTRY_PORT)] }] : []),
          // minItems 1: an empty `to` would admit every destination.
          ...(everywhereBut.length > 0 ? [{ to: everywhereBut }] : []),
          ...(this.egressAllowedCidrs.length > 0
            ? [{ to: this.egressAllowedCidrs.map((cidr) => ({ ipBlock: { cidr } })) }]
            : []),
        ],
      },
    });
  }
}
