// Two mirrors whose children would share a kind and name, against a real kube-apiserver: the
// later mirror stalls (NameCollision) and the older one's objects are left as it made them; and
// the controller never applies over an object another RegistryMirror controls, whatever labels
// it carries.
import { randomBytes } from 'node:crypto';

import { PatchStrategy } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL, MIRROR_LABEL } from '../../src/api/names.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  children,
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
  installCrd,
  waitForReady,
} from '../support/kube/cluster.js';
import { simulateReadyWorkloads } from '../support/kube/workload-status.js';
import { waitFor } from '../support/primitives/wait.js';

const c = clients(inject('kubeconfig'));
const suffix = randomBytes(3).toString('hex');
const namespace = `nc-${suffix}`;
const created: string[] = [];
let ctl: RunningController;
let stopSimulating: (() => Promise<void>) | undefined;

async function mirror(name: string, spec: Record<string, unknown>): Promise<string> {
  created.push(name);
  await createMirror(c, name, spec);
  return name;
}

async function stalled(name: string, reason: string) {
  return waitFor(`mirror ${name} to be Stalled with ${reason}`, async () => {
    const m = await getMirror(c, name);
    const s = condition(m, 'Stalled');
    return s?.status === 'True' && s.reason === reason && s.observedGeneration === m.metadata?.generation
      ? s
      : undefined;
  });
}

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
  stopSimulating = simulateReadyWorkloads(c.kc, namespace);
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
  await stopSimulating?.();
  await ctl?.stop();
  for (const n of created) await deleteMirror(c, n);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('children of two mirrors with the same kind and name', () => {
  it("stalls the later of 'x' and 'x-headless' and leaves the older one's headless Service alone", async () => {
    const older = await mirror(`n${suffix}`, { upstreamUrl: 'older.example.com' });
    await waitForReady(c, older);
    const headless = `registry-mirror-${older}-headless`;
    const before = await c.core.readNamespacedService({ name: headless, namespace });
    expect(before.spec?.clusterIP).toBe('None');

    const later = await mirror(`${older}-headless`, { upstreamUrl: 'later.example.com' });
    const s = await stalled(later, 'NameCollision');
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
    created.splice(created.indexOf(older), 1);
    if (inject('garbageCollector')) {
      await waitForReady(c, later, 'True', 60_000);
      const svc = await c.core.readNamespacedService({ name: headless, namespace });
      expect(svc.spec?.clusterIP).not.toBe('None');
      expect(svc.metadata?.ownerReferences?.map((r) => r.name)).toEqual([later]);
    }
  });

  it('does not apply over an object another RegistryMirror controls, even one labelled as its own', async () => {
    const owner = await mirror(`owner-${suffix}`, { upstreamUrl: 'owner.example.com' });
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
    await mirror(victim, { upstreamUrl: 'victim.example.com' });
    const s = await stalled(victim, 'NameCollision');
    expect(s.message).toContain(`ConfigMap ${namespace}/${cmName} belongs to mirror '${owner}'`);
    const cm = await c.core.readNamespacedConfigMap({ name: cmName, namespace });
    expect(cm.data).toEqual({ marker: 'owned by another mirror' });
    expect(cm.metadata?.ownerReferences?.map((r) => r.name)).toEqual([owner]);
  });
});
