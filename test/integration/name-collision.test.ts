// Two mirrors whose children would share a kind and name, against a real kube-apiserver: the
// later mirror stalls (NameCollision) and the older one's objects are left as it made them; and
// the controller never applies over an object another RegistryMirror controls, whatever labels
// it carries.
import { PatchStrategy } from '@kubernetes/client-node';
import { describe, expect, inject } from 'vitest';

import { FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL, MIRROR_LABEL } from '../../src/api/names.js';
import { children, type Clients, condition, deleteMirror, getMirror, waitForReady } from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';
import { controllerTest } from '../support/suites/controller-env.js';

const test = controllerTest({ prefix: 'nc', simulateReady: true });

async function stalled(c: Clients, name: string, reason: string) {
  return waitFor(`mirror ${name} to be Stalled with ${reason}`, async () => {
    const m = await getMirror(c, name);
    const s = condition(m, 'Stalled');
    return s?.status === 'True' && s.reason === reason && s.observedGeneration === m.metadata?.generation
      ? s
      : undefined;
  });
}

describe('children of two mirrors with the same kind and name', () => {
  test("stalls the later of 'x' and 'x-headless' and leaves the older one's headless Service alone", async ({
    env,
  }) => {
    const { c, namespace, suffix } = env;
    const older = await env.mirror(`n${suffix}`, { upstreamUrl: 'older.example.com' });
    await waitForReady(c, older);
    const headless = `registry-mirror-${older}-headless`;
    const before = await c.core.readNamespacedService({ name: headless, namespace });
    expect(before.spec?.clusterIP).toBe('None');

    const later = await env.mirror(`${older}-headless`, { upstreamUrl: 'later.example.com' });
    const s = await stalled(c, later, 'NameCollision');
    expect(s.message).toContain(`Service/${headless}`);
    expect(s.message).toContain(`the older mirror '${older}'`);
    expect((await children(c, namespace, later)).size).toBe(0);
    // the older mirror's Service is untouched: same object, same owner, same content
    const after = await c.core.readNamespacedService({ name: headless, namespace });
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(after.metadata?.ownerReferences?.map((r) => r.name)).toEqual([older]);
    expect(condition(await getMirror(c, older), 'Ready')?.status).toBe('True');

    // deleting the older mirror frees the name: the later one reconciles without being touched
    await deleteMirror(c, older);
    if (inject('garbageCollector')) {
      await waitForReady(c, later, 'True', 60_000);
      const svc = await c.core.readNamespacedService({ name: headless, namespace });
      expect(svc.spec?.clusterIP).not.toBe('None');
      expect(svc.metadata?.ownerReferences?.map((r) => r.name)).toEqual([later]);
    }
  });

  test('does not apply over an object another RegistryMirror controls, even one labelled as its own', async ({
    env,
  }) => {
    const { c, namespace, suffix } = env;
    const owner = await env.mirror(`owner-${suffix}`, { upstreamUrl: 'owner.example.com' });
    const ownerUid = (await waitForReady(c, owner)).metadata!.uid!;
    // A ConfigMap with a child's name of mirror `victim`, carrying victim's labels but controlled
    // by `owner`, written by the controller's own field manager (as if relabelled after the fact).
    const victim = `victim-${suffix}`;
    const cmName = `registry-mirror-${victim}-config`;
    await c.objects.patch(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: cmName,
          namespace,
          labels: { [MIRROR_LABEL]: victim, [MANAGED_BY_LABEL]: MANAGED_BY },
          ownerReferences: [
            {
              apiVersion: 'k8s.osp.tech/v1',
              kind: 'RegistryMirror',
              name: owner,
              uid: ownerUid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        data: { marker: 'owned by another mirror' },
      } as never,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    );
    await env.mirror(victim, { upstreamUrl: 'victim.example.com' });
    const s = await stalled(c, victim, 'NameCollision');
    expect(s.message).toContain(`ConfigMap ${namespace}/${cmName} belongs to mirror '${owner}'`);
    const cm = await c.core.readNamespacedConfigMap({ name: cmName, namespace });
    expect(cm.data).toEqual({ marker: 'owned by another mirror' });
    expect(cm.metadata?.ownerReferences?.map((r) => r.name)).toEqual([owner]);
  });
});
