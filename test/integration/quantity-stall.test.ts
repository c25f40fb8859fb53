// A RegistryMirror stored before the CRD refused its size (`storage: 500m`, which the schema's
// old quantity pattern let by and synthesis could not read) stalls in the controller with the
// field's message, once, instead of failing inside and retrying forever. Against a real
// kube-apiserver: the object is created under a CRD without the size rule, as an earlier
// release installed it, and the current CRD is put back before the controller starts.
import { randomBytes } from 'node:crypto';

import { type KubernetesObject, KubernetesObjectApi, loadYaml, PatchStrategy } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { registryMirrorCrd } from '../../src/api/crd.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
  installCrd,
} from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';

const c = clients(inject('kubeconfig'));
const suffix = randomBytes(3).toString('hex');
const namespace = `qs-${suffix}`;
const name = `milli-${suffix}`;
const STORAGE = 'spec.volumeClaimTemplate.spec.resources.requests.storage';
let ctl: RunningController | undefined;

/** The CRD as it is, but with no rule on the cache size (what the loose quantity pattern amounted to for 500m). */
async function installCrdWithoutSizeRule(): Promise<void> {
  const crd = registryMirrorCrd() as Record<string, any>;
  const storage =
    crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.volumeClaimTemplate.properties.spec
      .properties.resources.properties.requests.properties.storage;
  delete storage['x-kubernetes-validations'];
  delete storage.pattern;
  // the same field manager as installCrd, so that putting the CRD back restores the rule
  await KubernetesObjectApi.makeApiClient(c.kc).patch(
    loadYaml<KubernetesObject>(JSON.stringify(crd)),
    undefined,
    undefined,
    'mirror-synth-test',
    true,
    PatchStrategy.ServerSideApply,
  );
}

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
  const spec = {
    upstreamUrl: 'milli.example.com',
    volumeClaimTemplate: { spec: { resources: { requests: { storage: '500m' } } } },
  };
  // today's CRD refuses it, in the CLI's words
  const refused = await createMirror(c, name, spec).then(
    () => '',
    (err: unknown) => String((JSON.parse((err as { body: string }).body) as { message: string }).message),
  );
  expect(refused).toContain(`${STORAGE} must be a size in bytes`);
  try {
    await installCrdWithoutSizeRule();
    await waitFor('the API server to store the mirror under the CRD without the size rule', () =>
      createMirror(c, name, spec).then(
        () => true,
        (err: unknown) => (err as { code?: number }).code === 409, // made by the first try
      ),
    );
  } finally {
    await installCrd(c);
  }
  ctl = await startController({
    kubeConfig: c.kc,
    namespace,
    secondsBetweenStreams: 1,
    metricsPort: 0,
    leaderElection: false,
    logLevel: 'warn',
  });
  await ctl.running;
});

afterAll(async () => {
  await ctl?.stop();
  await deleteMirror(c, name);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
  await installCrd(c);
});

describe('a size the schema refuses, stored under an older CRD', () => {
  it('stalls the mirror with InvalidSpec naming the field, and nothing is retried', async () => {
    const stalled = await waitFor(`mirror ${name} to be Stalled`, async () => {
      const m = await getMirror(c, name);
      const s = condition(m, 'Stalled');
      return s?.status === 'True' ? s : undefined;
    });
    expect(stalled.reason).toBe('InvalidSpec');
    expect(stalled.message).toContain(`${STORAGE} must be a size in bytes such as 20Gi, 500M or 1e9`);
    expect(stalled.message).toContain("got '500m'");
    // stalled, not failing inside: no reconcile ended in an internal error queued for a retry
    const results = (await ctl!.metrics.reconcileTotal.get()).values;
    expect(results.filter((v) => v.labels.result === 'error')).toEqual([]);
    expect(results.find((v) => v.labels.result === 'stalled')?.value).toBeGreaterThanOrEqual(1);
    const nothing = await c.apps.listNamespacedStatefulSet({ namespace });
    expect(nothing.items).toEqual([]);
  });
});
