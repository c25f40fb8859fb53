// What a RegistryMirror's status promises, against the real kube-apiserver: one reconcile per
// change (the controller's own status write and a workload's status flap queue nothing), the
// `mirror=<name>` label, and Secret data held for referenced Secrets only. Ready=True only once
// the pods are ready, and a crash-looping container's reason, are shown on the real node, with
// the real kubelet and workload controllers (test/e2e/real-node-controller.test.ts).
//
// The test control plane has no kubelet and no StatefulSet/DaemonSet controllers: the reconcile
// count needs a status flap with nothing else changed, a state no real workload controller can
// be made to write on demand, so the tests patch the workloads' status themselves.
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { SECRET_MIRRORS_ANNOTATION } from '../../src/api/names.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  b64,
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
  installCrd,
  LogCapture,
  setSpec,
  waitForReady,
} from '../support/kube/cluster.js';
import { markDaemonSetReady, markStatefulSetReady } from '../support/kube/workload-status.js';
import { waitFor } from '../support/primitives/wait.js';

const c = clients(inject('kubeconfig'));
const suffix = randomBytes(3).toString('hex');
const namespace = `status-${suffix}`;
const logs = new LogCapture();
const created: string[] = [];
let ctl: RunningController;

async function mirror(base: string, spec: Record<string, unknown>): Promise<string> {
  const n = `${base}-${suffix}`;
  created.push(n);
  await createMirror(c, n, spec, {});
  return n;
}

/** Reconciles of `mirror` so far, from the controller's own log (one 'reconciled' line each). */
function reconciles(mirror: string): number {
  return logs.lines.filter((l) => {
    const o = JSON.parse(l) as { msg?: string; mirror?: string };
    return o.msg === 'reconciled' && o.mirror === mirror;
  }).length;
}

async function idle(): Promise<void> {
  // Settled: idle, and no reconcile for a while (events take a moment to arrive).
  let last = -1;
  await waitFor('the controller to settle', async () => {
    const n = logs.lines.length;
    const settled = ctl.idle() && n === last;
    last = n;
    await new Promise((r) => setTimeout(r, 300));
    return settled;
  });
}

/**
 * Wait until `mirror` has been reconciled `n` times (the event that causes the last one may take
 * a while to arrive under load), then until the controller settles: the count must still be `n`.
 */
async function expectReconciles(mirror: string, n: number): Promise<void> {
  await waitFor(`reconcile ${n} of ${mirror}`, () => Promise.resolve(reconciles(mirror) >= n)).catch(() => undefined);
  await idle();
  expect(reconciles(mirror)).toBe(n);
}

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
  ctl = await startController({
    kubeConfig: c.kc,
    namespace,
    secondsBetweenStreams: 1,
    leaderElection: false,
    resyncSeconds: 3600,
    logLevel: 'debug',
    logDestination: logs,
  });
  await ctl.running;
});

afterAll(async () => {
  await ctl?.stop();
  for (const n of created) await deleteMirror(c, n);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('status', () => {
  it('reconciles once per change: its own status write and a status flap of a workload queue nothing', async () => {
    const n = await mirror('count', { upstreamUrl: 'count.example.com' });
    await waitFor('first status', async () => condition(await getMirror(c, n), 'Ready')?.reason === 'CacheNotReady');
    await idle();
    // Creation: one reconcile (apply, label, status). Its status write, label and the children's
    // echoes come back as events and are recognised as its own.
    const afterCreate = reconciles(n);
    if (afterCreate !== 1)
      console.log(logs.lines.filter((l) => l.includes(n) && /queued|reconciled/.test(l)).join('\n'));
    expect(afterCreate).toBe(1);

    await markStatefulSetReady(c.apps, namespace, `registry-mirror-${n}`);
    await expectReconciles(n, afterCreate + 1);

    // A status update that changes nothing readiness depends on.
    await c.apps.patchNamespacedStatefulSetStatus(
      { name: `registry-mirror-${n}`, namespace, body: { status: { collisionCount: 1 } } },
      (await import('@kubernetes/client-node')).setHeaderOptions('Content-Type', 'application/merge-patch+json'),
    );
    await idle();
    expect(reconciles(n)).toBe(afterCreate + 1);

    await markDaemonSetReady(c.apps, `${namespace}-node`, `registry-mirror-${n}`);
    await waitForReady(c, n);
    await expectReconciles(n, afterCreate + 2);

    // A spec change: one reconcile for the change, one when the StatefulSet reports the new generation.
    await setSpec(c, n, { upstreamUrl: 'count2.example.com' });
    await expectReconciles(n, afterCreate + 3);
    await markStatefulSetReady(c.apps, namespace, `registry-mirror-${n}`);
    await markDaemonSetReady(c.apps, `${namespace}-node`, `registry-mirror-${n}`);
    await waitForReady(c, n);
    await expectReconciles(n, afterCreate + 5);
    console.log(`reconciles of ${n}: create ${afterCreate}, total ${reconciles(n)}`);
  });

  it('labels each RegistryMirror mirror=<name> through a field manager that owns nothing else', async () => {
    const n = await mirror('label', { upstreamUrl: 'label.example.com' });
    await waitFor('the mirror label', async () => (await getMirror(c, n)).metadata?.labels?.mirror === n);
    const listed = (await c.custom.listClusterCustomObject({
      group: 'k8s.osp.tech',
      version: 'v1',
      plural: 'registrymirrors',
      labelSelector: `mirror=${n}`,
    })) as { items: unknown[] };
    expect(listed.items).toHaveLength(1);
    const m = await getMirror(c, n);
    const mine = (m.metadata!.managedFields ?? []).filter((f) => f.manager === 'mirror-synth-label');
    expect(mine).toHaveLength(1);
    expect(mine[0].fieldsV1).toEqual({ 'f:metadata': { 'f:labels': { 'f:mirror': {} } } });
  });

  it('holds the data of referenced Secrets only', async () => {
    const body = (name: string, password: string) => ({
      metadata: {
        name,
        namespace,
        annotations: { [SECRET_MIRRORS_ANNOTATION]: `secret-${suffix}@secret.example.com` },
      },
      data: { username: b64('bot'), password: b64(password) },
    });
    await c.core.createNamespacedSecret({ namespace, body: body(`used-${suffix}`, 'pw-used') });
    await c.core.createNamespacedSecret({ namespace, body: body(`unrelated-${suffix}`, 'pw-unrelated') });
    const n = await mirror('secret', { upstreamUrl: 'secret.example.com', credentialsSecret: `used-${suffix}` });
    await waitFor('applied', async () => condition(await getMirror(c, n), 'Ready')?.reason === 'CacheNotReady');
    expect(ctl.heldSecrets()).toEqual([`used-${suffix}`]);
  });
});
