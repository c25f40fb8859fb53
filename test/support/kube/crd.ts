// Installing the RegistryMirror CRD in a test cluster.
//
// client-node's typed serializer knows JSONSchemaProps' fields by their TypeScript names
// (xKubernetesIntOrString) and silently drops the wire names (x-kubernetes-int-or-string)
// of a plain object. loadYaml turns wire JSON (which is YAML) into its typed model first.
import {
  ApiextensionsV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
} from '@kubernetes/client-node';

import { registryMirrorCrd } from '../../../src/api/crd.js';
import { waitFor } from '../primitives/wait.js';

export const CRD_NAME = 'registrymirrors.k8s.osp.tech';

/** Server-side apply the CRD and wait until it is Established. */
export async function installCrd(kc: KubeConfig, timeoutMs = 30_000): Promise<void> {
  const typed = loadYaml<KubernetesObject>(JSON.stringify(registryMirrorCrd()));
  await KubernetesObjectApi.makeApiClient(kc).patch(
    typed,
    undefined,
    undefined,
    'mirror-synth-test',
    true,
    PatchStrategy.ServerSideApply,
  );
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  await waitFor(
    `CRD ${CRD_NAME} to be Established`,
    async () => {
      const crd = await ext.readCustomResourceDefinition({ name: CRD_NAME });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined;
    },
    timeoutMs,
  );
}
