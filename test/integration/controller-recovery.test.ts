// The controller on a control plane of its own, so the tests may run before the CRD exists and
// stop the API server: it waits for the CRD, recovers after an API server outage by itself,
// and hands over leadership through its Lease.
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningController, startController } from '../../src/controller/controller.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import {
  children,
  type Clients,
  clients,
  createMirror,
  createMirrorNamespaces,
  installCrd,
  LogCapture,
  setSpec,
  waitForReady,
} from '../support/kube/cluster.js';
import { simulateReadyWorkloads } from '../support/kube/workload-status.js';
import { waitFor } from '../support/primitives/wait.js';

const own = !process.env.MIRROR_SYNTH_TEST_KUBECONFIG;
const namespace = 'kube-extra';
let cp: ControlPlane;
let c: Clients;
const running: RunningController[] = [];
let stopSimulating: (() => Promise<void>) | undefined;

async function start(
  extra: Partial<Parameters<typeof startController>[0]> = {},
  logs = new LogCapture(),
): Promise<RunningController> {
  const ctl = await startController({
    kubeConfig: c.kc,
    namespace,
    secondsBetweenStreams: 1,
    metricsPort: 0,
    leaderElection: false,
    logDestination: logs,
    logLevel: 'debug',
    ...extra,
  });
  running.push(ctl);
  return ctl;
}

describe.runIf(own)('controller recovery', () => {
  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    c = clients(cp.kubeconfigPath);
    await createMirrorNamespaces(c, namespace);
    // No kubelet here: the workloads' status is patched to report ready pods (see workload-status.ts).
    stopSimulating = simulateReadyWorkloads(c.kc, namespace);
  });

  afterAll(async () => {
    await stopSimulating?.();
    for (const r of running) await r.stop();
    await cp?.stop();
  });

  it('fails /readyz with the fix while the output namespace is missing, says so once, and starts once it exists', async () => {
    const logs = new LogCapture();
    const ns = `late-${randomBytes(3).toString('hex')}`;
    const ctl = await start({ namespace: ns, leaderElection: true, leaseName: `l-${ns}` }, logs);
    // /readyz first waits for the informers to sync, then names the missing namespace, with the fix
    const readyz = await waitFor('readyz to name the missing namespace', async () => {
      const res = await fetch(`http://127.0.0.1:${ctl.metricsPort}/readyz`);
      const body = await res.text();
      return body.includes(`namespace ${ns}`) ? { status: res.status, body } : undefined;
    });
    expect(readyz.status).toBe(503);
    expect(readyz.body).toContain(
      `namespace ${ns} (the output namespace) does not exist: apply \`mirror-synth controller-manifests\``,
    );
    await new Promise((r) => setTimeout(r, 2500)); // several checks, 1 s apart
    const complaints = logs.lines.filter((l) => l.includes('does not exist'));
    expect(complaints).toHaveLength(1);
    expect(logs.text()).not.toContain('could not write the Lease');
    await createMirrorNamespaces(c, ns);
    await waitFor(
      'readyz to stop complaining about the namespace',
      async () => !(await (await fetch(`http://127.0.0.1:${ctl.metricsPort}/readyz`)).text()).includes('namespace'),
    );
    // The namespace check and the Lease are separate steps: leadership follows within a retry.
    await waitFor('the controller to become leader', () => Promise.resolve(logs.text().includes('became leader')));
    await ctl.stop();
    running.splice(running.indexOf(ctl), 1);
  });

  it('waits while the CRD does not exist, then works once it is created', async () => {
    const logs = new LogCapture();
    const ctl = await start({}, logs);
    await waitFor(
      'readyz to report not ready',
      async () => (await fetch(`http://127.0.0.1:${ctl.metricsPort}/readyz`)).status === 503,
    );
    const body = await (await fetch(`http://127.0.0.1:${ctl.metricsPort}/readyz`)).text();
    expect(body).toContain('CRD');
    // It retries every SECONDS_BETWEEN_STREAMS (1 s here), not in a tight loop: restarts of the
    // RegistryMirror informer keep coming, each a pause after the one before. (Timed from its own
    // log lines, not a window from the first 503: on a loaded machine the first failure can come late.)
    const restartTimes = () =>
      logs.lines
        .map((l) => JSON.parse(l) as { msg?: string; informer?: string; time: string | number })
        .filter((o) => o.msg === 'informer restarting' && o.informer === 'registrymirrors')
        .map((o) => new Date(o.time).getTime());
    const times = await waitFor('three restarts of the RegistryMirror informer', () =>
      Promise.resolve(restartTimes().length >= 3 && restartTimes()),
    );
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(850);
    const failures = (await ctl.metrics.informerRestarts.get()).values.reduce((s, v) => s + v.value, 0);
    expect(failures).toBeGreaterThanOrEqual(times.length);

    await installCrd(c);
    await createMirror(c, 'quay', { upstreamUrl: 'quay.io' });
    await waitForReady(c, 'quay', 'True', 30_000);
    expect((await children(c, namespace, 'quay')).size).toBe(6);
    expect((await fetch(`http://127.0.0.1:${ctl.metricsPort}/readyz`)).status).toBe(200);
  });

  it('recovers by itself after the API server was stopped and started again', async () => {
    const ctl = running[0];
    await cp.stopApiServer();
    await new Promise((r) => setTimeout(r, 3000)); // several reconnect attempts fail meanwhile
    expect((await fetch(`http://127.0.0.1:${ctl.metricsPort}/healthz`)).status).toBe(200);
    await cp.startApiServer();

    // A change made after the restart, and a new mirror, are picked up without restarting the controller.
    await setSpec(c, 'quay', { upstreamUrl: 'registry.k8s.io' });
    await createMirror(c, 'after', { upstreamUrl: 'ghcr.io' });
    const m = await waitForReady(c, 'quay', 'True', 60_000);
    expect(m.metadata!.generation).toBe(2);
    await waitForReady(c, 'after', 'True', 60_000);
    const config = (await children(c, namespace, 'quay')).get('ConfigMap/registry-mirror-quay-config')!;
    expect(JSON.stringify(config.data)).toContain('https://registry.k8s.io');
  });

  it('started while the API server is down (leader election on), it waits, stays healthy, and works once the API server is back', async () => {
    for (const r of running.splice(0)) await r.stop();
    await cp.stopApiServer();
    try {
      const ctl = await start({
        leaderElection: true,
        leaseDurationSeconds: 4,
        renewDeadlineSeconds: 3,
        retryPeriodSeconds: 1,
      });
      await new Promise((r) => setTimeout(r, 3000)); // several attempts fail meanwhile
      expect((await fetch(`http://127.0.0.1:${ctl.metricsPort}/healthz`)).status).toBe(200);
    } finally {
      await cp.startApiServer();
    }
    // (a host no other mirror of this file names: two mirrors may not configure the same one)
    await setSpec(c, 'quay', { upstreamUrl: 'mirror.gcr.io' });
    const m = await waitForReady(c, 'quay', 'True', 60_000);
    expect(m.status?.observedGeneration).toBe(m.metadata!.generation);
  });

  it('runs one leader at a time and hands over when the leader stops', async () => {
    for (const r of running.splice(0)) await r.stop();
    const lease = `lease-${randomBytes(3).toString('hex')}`;
    const opts = {
      leaderElection: true,
      leaseName: lease,
      leaseDurationSeconds: 4,
      renewDeadlineSeconds: 3,
      retryPeriodSeconds: 1,
    };
    const a = await start({ ...opts, identity: 'a' });
    await a.running;
    const bLogs = new LogCapture();
    const b = await start({ ...opts, identity: 'b' }, bLogs);
    // From b's first failed try on (not from its start, which may take a while under load), two
    // retry periods in which it must stay a standby.
    await waitFor('b to find the Lease held', () => Promise.resolve(bLogs.text().includes('waiting for leadership')));
    await new Promise((r) => setTimeout(r, 2000));
    expect((await a.metrics.isLeader.get()).values[0].value).toBe(1);
    expect((await b.metrics.isLeader.get()).values[0].value).toBe(0);
    expect((await fetch(`http://127.0.0.1:${b.metricsPort}/readyz`)).status).toBe(200); // a healthy standby

    await a.stop(); // releases the Lease
    await b.running;
    expect((await b.metrics.isLeader.get()).values[0].value).toBe(1);
    await setSpec(c, 'after', { upstreamUrl: 'quay.io' });
    await waitForReady(c, 'after', 'True', 30_000);
    const l = await c.kc
      .makeApiClient((await import('@kubernetes/client-node')).CoordinationV1Api)
      .readNamespacedLease({ name: lease, namespace });
    expect(l.spec?.holderIdentity).toBe('b');
    expect(l.spec?.leaseTransitions).toBe(1);
  });
});
