// The controller behind a proxy that black-holes its connection to the real API server (keeps the
// sockets open, drops every byte): nothing fails fast, only deadlines notice.
// - A leader that cannot renew its Lease exits non-zero, saying why (at its renew deadline), before
//   a standby (talking to the API server directly) may take the Lease, never alongside it.
// - Reconciles that hang turn /healthz non-200 within the stall time, and each request times out
//   with an error that names the call. (A no-op reconcile sends no request, every child kind
//   being watched: the one that hangs is a waiting mirror's, which lists its pods.)
// The leader runs as the real binary (compiled lib/, built by `npm test`), so its exit is a process's.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CoordinationV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { LEASE_NAME } from '../../src/api/names.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import { BlackholeProxy } from '../support/faults/blackhole-proxy.js';
import {
  clients,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  installCrd,
  LogCapture,
  waitForReady,
} from '../support/kube/cluster.js';
import { readyDaemonSetStatus, simulateReadyWorkloads } from '../support/kube/workload-status.js';
import { bin } from '../support/primitives/cli.js';
import { spawnTracked, terminate } from '../support/primitives/processes.js';
import { waitFor } from '../support/primitives/wait.js';

const kubeconfigPath = inject('kubeconfig');
const c = clients(kubeconfigPath);
const suffix = randomBytes(3).toString('hex');
const namespace = `deadline-${suffix}`;
const created: string[] = [];
const running: RunningController[] = [];
let proxy: BlackholeProxy;
/** A kubeconfig like the suite's, whose server is the proxy. */
let proxiedKubeconfig: string;
let stopSimulating: (() => Promise<void>) | undefined;
let leader: ChildProcess | undefined;

async function mirror(base: string, spec: Record<string, unknown>): Promise<string> {
  const n = `${base}-${suffix}`;
  created.push(n);
  await createMirror(c, n, spec);
  return n;
}

const healthz = async (ctl: RunningController) => {
  const res = await fetch(`http://127.0.0.1:${ctl.metricsPort}/healthz`);
  return { status: res.status, body: await res.text() };
};

/** JSON log lines of a process, parsed as they come; other lines kept as text. */
class ProcessLog {
  readonly lines: Array<Record<string, unknown> & { msg?: string; at: number }> = [];
  text = '';
  constructor(child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      // A chunk may end mid-line: its unfinished tail waits for the rest in the next chunk.
      let partial = '';
      stream?.on('data', (chunk: string) => {
        this.text += chunk;
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        for (const line of lines) this.parse(line);
      });
      stream?.on('end', () => {
        if (partial) this.parse(partial);
        partial = '';
      });
    }
  }
  private parse(line: string): void {
    try {
      this.lines.push({ ...(JSON.parse(line) as Record<string, unknown>), at: Date.now() });
    } catch {
      // not a log line (the CLI's one-line error on stderr)
    }
  }
  find(msg: string) {
    return this.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith(msg));
  }
}

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
  stopSimulating = simulateReadyWorkloads(c.kc, namespace);
  const server = new URL(c.kc.getCurrentCluster()!.server);
  proxy = await BlackholeProxy.start({ target: { host: server.hostname, port: Number(server.port) } });
  const dir = mkdtempSync(join(tmpdir(), 'deadline-'));
  proxiedKubeconfig = join(dir, 'kubeconfig');
  writeFileSync(proxiedKubeconfig, readFileSync(kubeconfigPath, 'utf8').replaceAll(server.origin, proxy.url), {
    mode: 0o600,
  });
});

afterAll(async () => {
  await terminate(leader);
  for (const r of running) await r.stop();
  await stopSimulating?.();
  await proxy?.stop();
  for (const n of created) await deleteMirror(c, n);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('the controller on a black-holed connection', () => {
  it('exits non-zero when it cannot renew its Lease, before a standby may take it over', async () => {
    const timings = { leaseDurationSeconds: 8, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 };
    const n = await mirror('lease', { upstreamUrl: 'quay.io' });
    leader = spawnTracked(
      'node',
      [
        bin,
        'controller',
        `--kubeconfig=${proxiedKubeconfig}`,
        `--namespace=${namespace}`,
        '--metrics-bind-address=0',
        `--lease-duration=${timings.leaseDurationSeconds}`,
        `--renew-deadline=${timings.renewDeadlineSeconds}`,
        `--retry-period=${timings.retryPeriodSeconds}`,
        '--request-timeout=10',
        '--seconds-between-streams=1',
      ],
      { env: { ...process.env, NAMESPACE: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
      leader!.once('exit', (code) => resolve({ code, at: Date.now() })),
    );
    const aLog = new ProcessLog(leader);
    await waitFor('the leader to reconcile', () => Promise.resolve(aLog.find('caches synced')), 60_000);
    await waitForReady(c, n);

    // The standby talks to the API server directly: only the leader's connection is black-holed.
    const bLogs = new LogCapture();
    const b = await startController({
      kubeConfig: c.kc,
      namespace,
      secondsBetweenStreams: 1,
      metricsPort: 0,
      leaderElection: true,
      identity: 'standby',
      ...timings,
      logDestination: bLogs,
    });
    running.push(b);
    await waitFor('the standby to wait', () => Promise.resolve(bLogs.text().includes('waiting for leadership')));

    const holedAt = Date.now();
    proxy.blackhole();
    const exit = await Promise.race([
      exited,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), timings.leaseDurationSeconds * 1000 + 10_000)),
    ]);
    expect(
      exit,
      `the leader is still running ${timings.leaseDurationSeconds + 10}s later:\n${aLog.text.slice(-2000)}`,
    ).toBeDefined();
    expect(exit!.code).toBe(1);
    // Its last renew began before the black hole; the renew deadline counts from then. What matters
    // is that it is gone before the Lease, unrenewed, may pass to the standby (asserted below too);
    // a tighter bound (renew deadline + 2 s) measured a loaded machine's scheduling as much as this.
    expect(exit!.at - holedAt).toBeLessThan(timings.leaseDurationSeconds * 1000);
    expect(aLog.find('lost leadership')).toMatchObject({ level: 'error' });
    expect(aLog.text).toContain(
      `error: lost leadership of Lease ${namespace}/${LEASE_NAME}: could not renew it within the renew deadline (${timings.renewDeadlineSeconds}s`,
    );

    // The standby takes over only once the Lease has gone unrenewed for its whole duration: after the exit.
    await b.running;
    const tookOver = bLogs.lines
      .map((l) => JSON.parse(l) as { msg?: string; time: string })
      .find((l) => l.msg === 'became leader');
    expect(new Date(tookOver!.time).getTime()).toBeGreaterThan(exit!.at);
    const lease = await c.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_NAME, namespace });
    expect(lease.spec?.holderIdentity).toBe('standby');
    expect(lease.spec?.leaseTransitions).toBe(1);
    await b.stop();
    running.splice(running.indexOf(b), 1);
    proxy.forward();
  });

  it('fails /healthz within the stall time while reconciles hang, and times each request out naming the call', async () => {
    const n = await mirror('stall', { upstreamUrl: 'ghcr.io' });
    const logs = new LogCapture();
    const kc = clients(proxiedKubeconfig).kc;
    const ctl = await startController({
      kubeConfig: kc,
      namespace,
      secondsBetweenStreams: 1,
      metricsPort: 0,
      leaderElection: false,
      requestTimeoutSeconds: 6,
      stallSeconds: 2,
      workers: 2,
      logDestination: logs,
      logLevel: 'debug',
    });
    running.push(ctl);
    await ctl.running;
    await waitForReady(c, n);
    // A node agent with one of its two pods ready (the simulator leaves a DaemonSet alone once
    // it reports its generation observed): the mirror waits for it, and each of its reconciles
    // lists the agent's pods to say why. That list is the request that hangs below; every
    // other read of a reconcile comes from the informer caches.
    const agent = `registry-mirror-${n}`;
    const agentNamespace = `${namespace}-node`;
    const generation =
      (await c.apps.readNamespacedDaemonSet({ name: agent, namespace: agentNamespace })).metadata?.generation ?? 1;
    await c.apps.patchNamespacedDaemonSetStatus(
      {
        name: agent,
        namespace: agentNamespace,
        body: { status: { ...readyDaemonSetStatus(generation, 2), numberReady: 1, numberAvailable: 1 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await waitForReady(c, n, 'False');
    await waitFor('the controller to be idle', () => Promise.resolve(ctl.idle()));
    expect(await healthz(ctl)).toEqual({ status: 200, body: 'ok\n' });

    proxy.blackhole();
    const holedAt = Date.now();
    ctl.resync(); // the waiting mirror's reconcile lists its agent's pods: it hangs
    const stalled = await waitFor('/healthz to fail', async () => {
      const h = await healthz(ctl);
      return h.status !== 200 && h;
    });
    // the stall time (2 s), and room for a loaded machine to notice and answer
    expect(Date.now() - holedAt).toBeLessThan(2_000 + 5_000);
    expect(stalled.status).toBe(503);
    expect(stalled.body).toMatch(
      new RegExp(`^stalled: the reconcile of mirror ${n} has run for [0-9.]+s, longer than the stall time \\(2s\\)`),
    );

    // The hung request fails at its deadline, naming the call, and the reconcile ends (a failed
    // list of pods only leaves the reason out of the message).
    type Line = { msg?: string; mirror?: string; err?: string; result?: string };
    const lines = (from = 0) => logs.lines.slice(from).map((l) => JSON.parse(l) as Line);
    const failed = await waitFor('the list of pods to fail on the request deadline', () =>
      Promise.resolve(lines().find((l) => l.msg === 'could not list pods' && l.mirror === n)),
    );
    expect(failed.err).toBe(`RequestTimeoutError: GET /api/v1/namespaces/${namespace}-node/pods: no answer within 6s`);
    await waitFor('the reconcile to end', () => Promise.resolve(ctl.idle()));
    expect(await healthz(ctl)).toEqual({ status: 200, body: 'ok\n' });

    // Forwarding again, the next reconcile's list gets its answer.
    const forwardedAt = logs.lines.length;
    proxy.forward();
    ctl.resync();
    await waitFor(
      'the next reconcile to end',
      () => Promise.resolve(lines(forwardedAt).some((l) => l.msg === 'reconciled' && l.mirror === n) || undefined),
      60_000,
    );
    expect(lines(forwardedAt).filter((l) => l.msg === 'could not list pods')).toEqual([]);
    await waitFor('the controller to be idle', () => Promise.resolve(ctl.idle()));
    expect(await healthz(ctl)).toEqual({ status: 200, body: 'ok\n' });
  });
});
