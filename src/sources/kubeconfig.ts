/** The one kubeconfig loader: `synth --from-cluster` and the controller read the cluster through it. */
import { KubeConfig } from '@kubernetes/client-node';

import { ClusterError } from '../api/errors.js';
import { describeError } from '../api/kube-errors.js';

/** Load a kubeconfig the way kubectl does: the given file, else the default chain. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ClusterError(`cannot load kubeconfig${path ? ` ${path}` : ''}: ${describeError(err)}`);
  }
  if (!kc.getCurrentCluster()) {
    throw new ClusterError(
      `kubeconfig${path ? ` ${path}` : ''} has no current cluster; set one with kubectl config use-context`,
    );
  }
  return kc;
}
