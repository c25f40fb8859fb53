// Installing the RegistryMirror CRD in a test cluster.
//
// client-node's typed serializer knows JSONSchemaProps' fields by their TypeScript names
// (xKubernetesIntOrString) and silently drops the wire names (x-kubernetes-int-or-string)
// of a plain object. loadYaml turns wire JSON (which is YAML) into its typed model first.
import {
  ApiextensionsV1Api,
  KubeConfig,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  type KubernetesObject,
} from '@kubernetes/client-node';

import { registryMirrorCrd } from '../../src/crd.js';

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
  const end = Date.now() + timeoutMs;
  for (;;) {
    const crd = await ext.readCustomResourceDefinition({ name: CRD_NAME });
    if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    if (Date.now() > end) throw new Error(`CRD ${CRD_NAME} was not Established within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Delete the CRD (and with it every RegistryMirror) and wait until it is gone. */
export async function uninstallCrd(kc: KubeConfig, timeoutMs = 60_000): Promise<void> {
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  await ext.deleteCustomResourceDefinition({ name: CRD_NAME }).catch(() => undefined);
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await ext.readCustomResourceDefinition({ name: CRD_NAME });
    } catch {
      return;
    }
    if (Date.now() > end) throw new Error(`CRD ${CRD_NAME} still exists after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
