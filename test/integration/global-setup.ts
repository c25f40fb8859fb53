// Starts one control plane (etcd + kube-apiserver + kube-controller-manager) for the whole
// integration project and hands its kubeconfig to the tests through vitest's provide/inject.
// The first run builds the binaries (tools/build.sh), which can take many minutes.
import type { TestProject } from 'vitest/node';

import { serveApiServerControl, startControlPlane } from '../support/components/control-plane.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of an admin kubeconfig for the shared cluster. */
    kubeconfig: string;
    /** True when the suite started the control plane itself (false with MIRROR_SYNTH_TEST_KUBECONFIG). */
    ownControlPlane: boolean;
    /** Whether a garbage collector runs, so ownerReferences are acted on. */
    garbageCollector: boolean;
    /** For apiServerRemote(): lets a test stop and start the shared kube-apiserver. Empty if not own. */
    apiServerControlUrl: string;
  }
}

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const cp = await startControlPlane();
  const control = cp.ownsApiServer ? await serveApiServerControl(cp) : undefined;
  provide('kubeconfig', cp.kubeconfigPath);
  provide('ownControlPlane', cp.ownsApiServer);
  provide('garbageCollector', cp.garbageCollector);
  provide('apiServerControlUrl', control?.url ?? '');
  return async () => {
    await control?.close();
    await cp.stop();
  };
}
