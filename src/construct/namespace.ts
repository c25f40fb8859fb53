/** The output namespace every mirror's children live in. */
import { Construct } from 'constructs';

import { MANAGED_BY, MANAGED_BY_LABEL, POD_SECURITY_ANNOTATION } from '../api/names.js';
import { k8s } from './k8s.js';

export interface MirrorNamespaceProps {
  readonly name: string;
}

/** The node agent needs hostPath, which only the "privileged" Pod Security level admits; the registry pods meet "restricted". */
export class MirrorNamespace extends Construct {
  public readonly namespace: k8s.KubeNamespace;
  constructor(scope: Construct, id: string, props: MirrorNamespaceProps) {
    super(scope, id);
    this.namespace = new k8s.KubeNamespace(this, 'Namespace', {
      metadata: {
        name: props.name,
        labels: {
          [MANAGED_BY_LABEL]: MANAGED_BY,
          'pod-security.kubernetes.io/enforce': 'privileged',
        },
        annotations: {
          [POD_SECURITY_ANNOTATION]:
            'privileged: the node agent mounts /etc/containerd/certs.d (hostPath); the registry pods meet "restricted"',
        },
      },
    });
  }
}
