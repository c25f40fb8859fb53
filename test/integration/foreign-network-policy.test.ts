// A NetworkPolicy of a child's name that mirror-synth did not create, against a real
// kube-apiserver: the controller follows the rule it has for every other child kind. It watches
// NetworkPolicies (only its own, by label), applies one it has not seen as its own without force,
// and so stalls the mirror with ForeignObject instead of repointing the object; a change someone
// makes to its own NetworkPolicy is reverted at once, as for the other kinds.
import { NetworkingV1Api, type V1NetworkPolicy } from '@kubernetes/client-node';
import { describe, expect } from 'vitest';

import { FIELD_MANAGER, MANAGED_BY_LABEL, MIRROR_LABEL } from '../../src/api/names.js';
import { condition, getMirror, waitForReady } from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';
import { controllerTest } from '../support/suites/controller-env.js';

const test = controllerTest({ prefix: 'fnp', simulateReady: true });

/** Someone else's policy: other pods, other peers. */
const FOREIGN_SPEC = {
  podSelector: { matchLabels: { app: 'something-else' } },
  policyTypes: ['Ingress'],
  ingress: [{ from: [{ ipBlock: { cidr: '10.9.0.0/16' } }], ports: [{ protocol: 'TCP', port: 1234 }] }],
};

function managers(np: V1NetworkPolicy): string[] {
  return (np.metadata?.managedFields ?? []).map((f) => f.manager ?? '');
}

describe('a NetworkPolicy of a child’s name', () => {
  test('that someone else made stalls the mirror (ForeignObject) and is left as it is', async ({ env }) => {
    const { c, namespace, controller: ctl } = env;
    const networking = c.kc.makeApiClient(NetworkingV1Api);
    const mirror = env.name('fnp');
    const npName = `registry-mirror-${mirror}`;
    await networking.createNamespacedNetworkPolicy({
      namespace,
      fieldManager: 'someone',
      body: { metadata: { name: npName, namespace }, spec: FOREIGN_SPEC },
    });
    const before = await networking.readNamespacedNetworkPolicy({ name: npName, namespace });
    await env.mirror(mirror, { upstreamUrl: 'fnp.example.com' });

    const stalled = await waitFor(`mirror ${mirror} to be Stalled`, async () => {
      const m = await getMirror(c, mirror);
      const s = condition(m, 'Stalled');
      return s?.status === 'True' && s.observedGeneration === m.metadata?.generation ? s : undefined;
    });
    expect(stalled.reason).toBe('ForeignObject');
    expect(stalled.message).toContain(
      `NetworkPolicy ${namespace}/${npName} exists and was not created by mirror-synth`,
    );
    expect(stalled.message).toContain(`kubectl -n ${namespace} delete networkpolicy ${npName}`);

    // A later reconcile (a resync) does not take it over either.
    ctl.resync();
    await env.idle();
    const after = await networking.readNamespacedNetworkPolicy({ name: npName, namespace });
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(after.spec?.podSelector).toEqual(FOREIGN_SPEC.podSelector);
    expect(after.metadata?.labels?.[MANAGED_BY_LABEL]).toBeUndefined();
    expect(managers(after)).not.toContain(FIELD_MANAGER);
    // What comes after the NetworkPolicy in apply order was not applied either.
    await expect(c.apps.readNamespacedStatefulSet({ name: npName, namespace })).rejects.toMatchObject({ code: 404 });
    expect(condition(await getMirror(c, mirror), 'Stalled')?.reason).toBe('ForeignObject');

    // Once it is deleted (what the message says to do), the mirror gets its own at the next reconcile.
    await networking.deleteNamespacedNetworkPolicy({ name: npName, namespace });
    ctl.resync();
    await waitForReady(c, mirror, 'True', 60_000);
    const own = await networking.readNamespacedNetworkPolicy({ name: npName, namespace });
    expect(own.metadata?.uid).not.toBe(before.metadata?.uid);
    expect(own.metadata?.labels?.[MIRROR_LABEL]).toBe(mirror);
    expect(managers(own)).toContain(FIELD_MANAGER);
  });

  test('the controller made, edited by someone else, is restored at once (it is watched)', async ({ env }) => {
    const { c, namespace } = env;
    const networking = c.kc.makeApiClient(NetworkingV1Api);
    const mirror = await env.mirror(env.name('own'), { upstreamUrl: 'own.example.com' });
    const npName = `registry-mirror-${mirror}`;
    await waitForReady(c, mirror);
    const mine = await networking.readNamespacedNetworkPolicy({ name: npName, namespace });
    const wanted = mine.spec?.podSelector;

    await networking.patchNamespacedNetworkPolicy({
      name: npName,
      namespace,
      fieldManager: 'someone',
      body: [{ op: 'replace', path: '/spec/podSelector', value: { matchLabels: { app: 'something-else' } } }],
    });
    // No resync: the watch event alone brings the controller back to it.
    const restored = await waitFor(
      `NetworkPolicy ${npName} to be restored`,
      async () => {
        const np = await networking.readNamespacedNetworkPolicy({ name: npName, namespace });
        return JSON.stringify(np.spec?.podSelector) === JSON.stringify(wanted) ? np : undefined;
      },
      15_000,
    );
    expect(restored.metadata?.uid).toBe(mine.metadata?.uid);
  });
});
