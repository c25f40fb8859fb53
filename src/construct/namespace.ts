/**
 * The namespaces a set of mirrors lives in: the output namespace (the caches, the controller) and
 * the node agent namespace (the node agents' DaemonSets and ConfigMaps).
 */
import { Construct } from 'constructs';

import { MANAGED_BY, MANAGED_BY_LABEL, POD_SECURITY_ANNOTATION } from '../api/names.js';
import { k8s } from './k8s.js';

/**
 * What runs in a namespace decides its Pod Security level. `output-takeover`: the output namespace
 * while the controller takes mirrors over from mirror-operator, whose pods (a surge replica of its
 * StatefulSet among them) do not meet `restricted`: enforced `privileged`, warned and audited `restricted`.
 */
export type NamespaceRole = 'output' | 'output-takeover' | 'node-agent' | 'both';

export interface MirrorNamespaceProps {
  readonly name: string;
  /**
   * What lives there: `output` (the caches and the controller: `restricted`), `node-agent` (the
   * node agents: `privileged`), or `both` (one namespace for all, when the node agent namespace is
   * set to the output namespace: `privileged`).
   * @default 'both'
   */
  readonly role?: NamespaceRole;
}

const WHY: Record<NamespaceRole, string> = {
  output:
    'restricted: the cache and controller pods meet it; the node agents (hostPath) run in a namespace of their own',
  'output-takeover':
    'privileged while taking mirrors over from mirror-operator (its pods do not meet "restricted"); restricted once controller-manifests runs without --takeover',
  'node-agent':
    'privileged: the node agent mounts the node runtime\'s registry config directory (hostPath), which only "privileged" admits; nothing else runs here',
  both: 'privileged: the node agent mounts the node runtime\'s registry config directory (hostPath); the registry pods meet "restricted"',
};

/**
 * The output namespace enforces Pod Security `restricted` (and warns and audits at that level), so
 * whoever may create pods there gets no root on the nodes; only the node agent namespace is `privileged`.
 */
export class MirrorNamespace extends Construct {
  public readonly namespace: k8s.KubeNamespace;
  constructor(scope: Construct, id: string, props: MirrorNamespaceProps) {
    super(scope, id);
    const role = props.role ?? 'both';
    const level = role === 'output' ? 'restricted' : 'privileged';
    const checked = role === 'output' || role === 'output-takeover';
    this.namespace = new k8s.KubeNamespace(this, 'Namespace', {
      metadata: {
        name: props.name,
        labels: {
          [MANAGED_BY_LABEL]: MANAGED_BY,
          'pod-security.kubernetes.io/enforce': level,
          ...(checked
            ? { 'pod-security.kubernetes.io/warn': 'restricted', 'pod-security.kubernetes.io/audit': 'restricted' }
            : {}),
        },
        annotations: { [POD_SECURITY_ANNOTATION]: WHY[role] },
      },
    });
  }
}

/**
 * The namespaces of a set of mirrors: the output namespace and, when it is another, the node
 * agent's. `takeover`: the controller takes mirrors over from mirror-operator (see NamespaceRole).
 */
export function addMirrorNamespaces(
  scope: Construct,
  namespace: string,
  nodeAgentNamespace: string,
  takeover = false,
): void {
  if (nodeAgentNamespace === namespace) {
    new MirrorNamespace(scope, 'Namespace', { name: namespace, role: 'both' });
    return;
  }
  new MirrorNamespace(scope, 'Namespace', { name: namespace, role: takeover ? 'output-takeover' : 'output' });
  new MirrorNamespace(scope, 'NodeAgentNamespace', { name: nodeAgentNamespace, role: 'node-agent' });
}
