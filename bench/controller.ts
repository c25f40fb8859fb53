// Controller benchmark on a control plane of its own (etcd + kube-apiserver, loopback only).
//
// 0. Baseline: the same children of the same N mirrors, server-side applied by a bare loop
//    (4 at a time, as the controller's 4 workers), into a namespace of their own.
// 1. Create N mirrors at once; per-mirror time from its creation until its status reports its
//    children applied (observedGeneration written; Ready itself then waits for pods, which this
//    control plane has none of), p50/p99, the time until all are, and that time as a ratio of
//    the baseline's (target <= 1.3). In-process controller, default settings (4 workers), no
//    leader election.
// 2. R forced resyncs of every mirror in a steady state: write requests counted by the
//    controller and by the API server (apiserver_request_total for POST/PUT/PATCH/DELETE on
//    the resources the controller touches). Target 0. What the controller holds, from its own
//    /metrics, before and after: API requests in flight (mirror_synth_api_requests_in_flight),
//    RSS, heap used after a full GC, active handles. Target: flat, and no request in flight at rest.
// 2b. Soak: a second in-process controller (same process, 4 workers) whose watches are aborted
//    after 0.25 s without an event and restarted 50 ms later, so its informers restart
//    thousands of times (mirror_synth_informer_restarts_total), while it resyncs every mirror
//    back to back (no-op reconciles) and each round changes `spec.upstreamUrl` of a few mirrors
//    (to another host and back), so applies and status writes go through the request fence
//    several at once.
//    The same figures at the start, at each quarter and at the end. Target: flat; no
//    MaxListenersExceededWarning from the bench process (which hosts both controllers) or the
//    controller process of phase 3.
// 3. Memory: the real binary (`mirror-synth controller`) in its own process with M mirrors and
//    S unrelated Secrets in another namespace; RSS once every mirror is Ready. Target < 200 MB.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { Watch } from '@kubernetes/client-node';
import { KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';

import { FIELD_MANAGER, KIND, MIRROR_API_VERSION } from '../src/api/names.js';
import { parseMirrorResource } from '../src/api/validate.js';
import { NODE_OPTIONS } from '../src/construct/controller-manifests.js';
import { type RunningController, startController } from '../src/controller/controller.js';
import { withContentHash } from '../src/controller/hash.js';
import { toClientModel } from '../src/controller/kube.js';
import { sortForApply } from '../src/controller/plan.js';
import { synthesizeMirror } from '../src/synth/chart.js';
import { type ControlPlane, startControlPlane } from '../test/support/components/control-plane.js';
import { type Clients, clients, createMirror, GROUP, installCrd, StopWaiting } from '../test/support/kube/cluster.js';
import { waitFor } from '../test/support/primitives/wait.js';

export interface ControllerBenchOptions {
  readonly mirrors: number;
  readonly resyncs: number;
  readonly rssMirrors: number;
  readonly unrelatedSecrets: number;
  /** Informer restarts the soak runs for. */
  readonly soakRestarts: number;
  /** Mirrors whose spec changes in each soak round. */
  readonly soakChurn: number;
  readonly root: string;
  readonly resultsDir: string;
}

const NAMESPACE = 'kube-extra';
const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);
const OUR_RESOURCES = new Set([
  'configmaps',
  'services',
  'statefulsets',
  'daemonsets',
  'secrets',
  'registrymirrors',
  'events',
]);

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/** Sum of apiserver_request_total for write verbs on the resources the controller touches. */
async function apiserverWrites(c: Clients): Promise<number> {
  const text = await c.core.getAPIResources().then(() => rawGet(c, '/metrics'));
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? '';
    const resource = /resource="([a-z]+)"/.exec(line)?.[1] ?? '';
    const subresource = /subresource="([a-z]*)"/.exec(line)?.[1] ?? '';
    if (WRITE_VERBS.has(verb) && OUR_RESOURCES.has(resource) && subresource !== 'token')
      sum += Number(line.split(' ').pop());
  }
  return sum;
}

async function rawGet(c: Clients, path: string): Promise<string> {
  const { request } = await import('node:https');
  const init = (await c.kc.applyToFetchOptions({})) as unknown as {
    agent?: import('node:https').Agent;
    headers?: unknown;
  };
  const h = init.headers as { entries?: () => Iterable<[string, string]> } | undefined;
  const headers =
    h && typeof h.entries === 'function' ? Object.fromEntries(h.entries()) : ((h as Record<string, string>) ?? {});
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(`${c.kc.getCurrentCluster()!.server}${path}`),
      { agent: init.agent, headers },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * The bare loop the controller is measured against: for each mirror, the children the controller
 * would apply (same synthesis, ownerReferences and content hash), server-side applied in apply
 * order, `concurrency` mirrors at a time. Returns the total and each mirror's time.
 */
async function bareApply(
  c: Clients,
  namespace: string,
  names: readonly string[],
  concurrency: number,
): Promise<{ totalMs: number; perMirror: number[] }> {
  const objects = KubernetesObjectApi.makeApiClient(c.kc);
  const perMirror: number[] = [];
  const t0 = Date.now();
  await pool(names, concurrency, async (n) => {
    const start = Date.now();
    const input = parseMirrorResource(
      {
        apiVersion: MIRROR_API_VERSION,
        kind: KIND,
        metadata: { name: n },
        spec: { upstreamUrl: `registry-${n}.example.com` },
      },
      'bench',
    );
    const ownerReferences = [
      {
        apiVersion: MIRROR_API_VERSION,
        kind: KIND,
        name: n,
        uid: '00000000-0000-0000-0000-000000000000',
        controller: true,
      },
    ];
    const children = synthesizeMirror(input, { namespace }).map((o) =>
      withContentHash({ ...o, metadata: { ...o.metadata, namespace, ownerReferences } }),
    );
    for (const child of sortForApply(children)) {
      await objects.patch(
        toClientModel(child),
        undefined,
        undefined,
        FIELD_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
    }
    perMirror.push(Date.now() - start);
  });
  return { totalMs: Date.now() - t0, perMirror: perMirror.sort((a, b) => a - b) };
}

/** Watch RegistryMirrors and record when each first reports status for its generation with its children applied. */
async function watchReady(c: Clients, onReady: (name: string, at: number) => void): Promise<AbortController> {
  const watch = new Watch(c.kc);
  return watch.watch(
    `/apis/${GROUP.group}/${GROUP.version}/${GROUP.plural}`,
    {},
    (
      _type,
      obj: {
        metadata?: { name?: string; generation?: number };
        status?: { observedGeneration?: number; conditions?: Array<{ type: string; status: string }> };
      },
    ) => {
      // Applied: Ready=True, or Ready=False only because pods are not ready (no kubelet here).
      const ready = obj.status?.conditions?.find((x) => x.type === 'Ready') as
        { status: string; reason?: string } | undefined;
      const applied =
        ready?.status === 'True' || ready?.reason === 'CacheNotReady' || ready?.reason === 'NodeAgentNotReady';
      if (applied && obj.status?.observedGeneration === obj.metadata?.generation)
        onReady(obj.metadata!.name!, Date.now());
    },
    () => undefined,
  );
}

/** A full GC in this process (the bench hosts the in-process controllers), for heap figures without garbage. */
const fullGc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** What a controller holds, as its /metrics shows it. */
interface Held {
  /** mirror_synth_api_requests_in_flight: requests the request fence holds. */
  readonly inFlight: number;
  readonly rssMB: number;
  readonly heapUsedMB: number;
  /** Memory of C++ objects bound to JavaScript ones (socket and response buffers, ...). */
  readonly externalMB: number;
  /** Handles (sockets, timers, servers) keeping the event loop alive. */
  readonly activeHandles: number;
  /** mirror_synth_informer_restarts_total, every informer. */
  readonly informerRestarts: number;
  /** mirror_synth_reconcile_total by result. */
  readonly reconciles: Readonly<Record<string, number>>;
}

async function scrapeHeld(port: number, gc: boolean): Promise<Held> {
  if (gc) fullGc();
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
      .reduce((total, l) => total + Number(l.split(' ').pop()), 0);
  const mb = (bytes: number) => Math.round(bytes / 104857.6) / 10;
  return {
    inFlight: sum('mirror_synth_api_requests_in_flight'),
    rssMB: mb(sum('mirror_synth_process_resident_memory_bytes')),
    heapUsedMB: mb(sum('mirror_synth_nodejs_heap_size_used_bytes')),
    externalMB: mb(sum('mirror_synth_nodejs_external_memory_bytes')),
    activeHandles: sum('mirror_synth_nodejs_active_handles_total'),
    informerRestarts: sum('mirror_synth_informer_restarts_total'),
    reconciles: Object.fromEntries(
      [...text.matchAll(/^mirror_synth_reconcile_total\{result="([a-z]+)"\} (\d+)$/gm)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
    ),
  };
}

function describeHeld(h: Held): string {
  return `${h.inFlight} requests in flight, RSS ${h.rssMB} MB, heap used ${h.heapUsedMB} MB, external ${h.externalMB} MB, ${h.activeHandles} active handles`;
}

/** The highest mirror_synth_api_requests_in_flight seen while sampling. */
function sampleInFlight(ctl: RunningController): { stop: () => number } {
  let peak = 0;
  const timer = setInterval(() => {
    void ctl.metrics.apiRequestsInFlight.get().then((m) => (peak = Math.max(peak, m.values[0]?.value ?? 0)));
  }, 10);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}

function rssOf(pid: number): { rssMB: number; hwmMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMB: Math.round(kb('VmRSS') / 102.4) / 10, hwmMB: Math.round(kb('VmHWM') / 102.4) / 10 };
}

/**
 * Phase 2b: a controller whose informers restart every few hundred milliseconds, resyncing every
 * mirror back to back while a few mirrors change each round, until its informers restarted
 * `opts.soakRestarts` times. What it holds at the start, at each quarter and at the end.
 */
async function soak(
  c: Clients,
  names: readonly string[],
  opts: ControllerBenchOptions,
  log: (s: string) => void,
): Promise<Record<string, unknown>> {
  const ctl = await startController({
    kubeConfig: c.kc,
    namespace: NAMESPACE,
    // A watch that hears nothing for 0.25 s is aborted (WatchIdleError) and started again after
    // min(50 ms, ...): thousands of restarts in minutes, each a new watch request.
    watchIdleTimeoutSeconds: 0.25,
    secondsBetweenStreams: 0.05,
    leaderElection: false,
    logLevel: 'error', // each restart logs a warning
    workers: 4,
    metricsPort: 0,
    metricsHost: '127.0.0.1',
  });
  try {
    await ctl.running;
    const port = ctl.metricsPort!;
    const idle = () => waitFor('idle', () => Promise.resolve(ctl.idle()), 120_000, 20);
    await idle();
    const start = await scrapeHeld(port, true);
    const checkpoints: Array<Held & { resyncs: number; changes: number; seconds: number }> = [];
    const peak = sampleInFlight(ctl);
    const t0 = Date.now();
    let resyncs = 0;
    let changes = 0;
    let restarts = 0;
    let next = 0;
    let flip = true;
    const apiRequests0 = await apiserverRequests(c);
    while (restarts < opts.soakRestarts) {
      // A few mirrors change upstream (both ConfigMaps and both workloads' templates are applied
      // again; a later round sets it back), then every mirror is resynced.
      const round = names.slice(next, next + opts.soakChurn);
      await Promise.all(
        round.map((n) =>
          c.custom.patchClusterCustomObject({
            ...GROUP,
            name: n,
            body: [
              {
                op: 'replace',
                path: '/spec/upstreamUrl',
                value: flip ? `registry-${n}-soak.example.com` : `registry-${n}.example.com`,
              },
            ],
          }),
        ),
      );
      changes += round.length;
      next += opts.soakChurn;
      if (next >= names.length) [next, flip] = [0, !flip]; // each pass sets the other upstream
      ctl.resync();
      await new Promise((r) => setTimeout(r, 50));
      await idle();
      resyncs++;
      restarts = (await scrapeHeld(port, false)).informerRestarts - start.informerRestarts;
      const quarter = Math.floor((4 * restarts) / Math.max(1, opts.soakRestarts));
      if (quarter > checkpoints.length && checkpoints.length < 3) {
        checkpoints.push({
          ...(await scrapeHeld(port, true)),
          resyncs,
          changes,
          seconds: Math.round((Date.now() - t0) / 1000),
        });
        log(`  soak ${checkpoints.length}/4: ${resyncs} resyncs, ${restarts} informer restarts`);
      }
    }
    const peakInFlight = peak.stop();
    await idle();
    await new Promise((r) => setTimeout(r, 1000));
    const end = await scrapeHeld(port, true);
    const byResult = Object.fromEntries(
      Object.entries(end.reconciles).map(([r, n]) => [r, n - (start.reconciles[r] ?? 0)]),
    );
    const result = {
      mirrors: names.length,
      resyncs,
      reconciles: byResult,
      mirrorChanges: changes,
      informerRestarts: end.informerRestarts - start.informerRestarts,
      apiRequests: (await apiserverRequests(c)) - apiRequests0,
      peakRequestsInFlight: peakInFlight,
      seconds: Math.round((Date.now() - t0) / 1000),
      start,
      checkpoints,
      end,
    };
    const results = Object.entries(byResult)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${n} ${r}`)
      .join(', ');
    log(
      `soak: ${result.resyncs} resyncs of ${names.length} mirrors and ${changes} upstream changes (reconciles: ${results}), ${result.informerRestarts} informer restarts (each a new watch), ${result.apiRequests} API requests other than watches seen by the API server, at most ${peakInFlight} in flight at once, in ${result.seconds} s`,
    );
    log(`  soak start: ${describeHeld(start)}`);
    for (const [i, p] of checkpoints.entries()) log(`  soak ${i + 1}/4:   ${describeHeld(p)}`);
    log(`  soak end:   ${describeHeld(end)}`);
    return result;
  } finally {
    await ctl.stop();
  }
}

/** Sum of apiserver_request_total over every verb but WATCH. */
async function apiserverRequests(c: Clients): Promise<number> {
  const text = await rawGet(c, '/metrics');
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{') || /verb="WATCH"/.test(line)) continue;
    sum += Number(line.split(' ').pop());
  }
  return sum;
}

export async function runControllerBench(opts: ControllerBenchOptions): Promise<void> {
  const log = (s: string) => process.stdout.write(`[bench/controller] ${s}\n`);
  const cp: ControlPlane = await startControlPlane({ controllerManager: false });
  const c = clients(cp.kubeconfigPath);
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    opts: { ...opts, root: undefined, resultsDir: undefined },
  };
  let child: ChildProcess | undefined;
  // Node prints MaxListenersExceededWarning ("Possible EventTarget memory leak detected") as a
  // process warning: counted here for the in-process controllers, from stderr for the process.
  const leakWarnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === 'MaxListenersExceededWarning') leakWarnings.push(w.message);
  };
  process.on('warning', onWarning);
  let childLeakWarnings = 0;
  try {
    await installCrd(c);
    await c.core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    const names = Array.from({ length: opts.mirrors }, (_, i) => `m${String(i).padStart(4, '0')}`);
    const WORKERS = 4;

    // --- 0. baseline: a bare server-side-apply loop -----------------------------------------
    await c.core.createNamespace({ body: { metadata: { name: 'baseline' } } });
    const base = await bareApply(c, 'baseline', names, WORKERS);
    results.baseline = {
      mirrors: opts.mirrors,
      concurrency: WORKERS,
      p50Ms: pct(base.perMirror, 50),
      p99Ms: pct(base.perMirror, 99),
      totalMs: base.totalMs,
    };
    log(
      `baseline: bare server-side apply of the same children, ${WORKERS} mirrors at a time: per mirror p50 ${pct(base.perMirror, 50)} ms, p99 ${pct(base.perMirror, 99)} ms; all ${base.totalMs} ms`,
    );

    // --- 1. N mirrors at once -------------------------------------------------------------
    const ctl = await startController({
      kubeConfig: c.kc,
      namespace: NAMESPACE,
      secondsBetweenStreams: 5,
      leaderElection: false,
      logLevel: 'warn',
      workers: WORKERS,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
    });
    await ctl.running;
    const ctlPort = ctl.metricsPort!;
    const createPeak = sampleInFlight(ctl);
    const created = new Map<string, number>();
    const ready = new Map<string, number>();
    const watcher = await watchReady(c, (name, at) => {
      if (!ready.has(name)) ready.set(name, at);
    });
    const t0 = Date.now();
    await pool(names, 32, async (n) => {
      await createMirror(c, n, { upstreamUrl: `registry-${n}.example.com` });
      created.set(n, Date.now());
    });
    await waitFor(`${opts.mirrors} mirrors applied`, () => Promise.resolve(ready.size >= opts.mirrors), 600_000, 200);
    const total = Math.max(...ready.values()) - t0;
    const lat = names.map((n) => ready.get(n)! - created.get(n)!).sort((a, b) => a - b);
    watcher.abort();
    const create = {
      mirrors: opts.mirrors,
      peakRequestsInFlight: createPeak.stop(),
      p50Ms: pct(lat, 50),
      p99Ms: pct(lat, 99),
      maxMs: lat[lat.length - 1],
      totalMs: total,
      ratioToBaseline: Math.round((total / base.totalMs) * 100) / 100,
    };
    results.create = create;
    log(
      `create ${opts.mirrors} mirrors at once: per mirror p50 ${create.p50Ms} ms, p99 ${create.p99Ms} ms; all applied after ${total} ms = ${create.ratioToBaseline} x the baseline (target <= 1.3); at most ${create.peakRequestsInFlight} API requests in flight at once`,
    );

    // --- 2. no-op resyncs ------------------------------------------------------------------
    await waitFor('idle', () => Promise.resolve(ctl.idle()), 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const ctlWrites = async () => (await ctl.metrics.writesTotal.get()).values.reduce((s, v) => s + v.value, 0);
    const [w0, a0] = [await ctlWrites(), await apiserverWrites(c)];
    const heldBefore = await scrapeHeld(ctlPort, true);
    const r0 = Date.now();
    for (let i = 0; i < opts.resyncs; i++) {
      ctl.resync();
      await new Promise((r) => setTimeout(r, 50));
      await waitFor('idle', () => Promise.resolve(ctl.idle()), 120_000, 20);
    }
    const resyncMs = Date.now() - r0;
    const resync = {
      resyncs: opts.resyncs,
      mirrors: opts.mirrors,
      controllerWrites: (await ctlWrites()) - w0,
      apiserverWrites: (await apiserverWrites(c)) - a0,
      ms: resyncMs,
      heldBefore,
      heldAfter: await scrapeHeld(ctlPort, true),
    };
    results.resync = resync;
    log(
      `${opts.resyncs} no-op resyncs of ${opts.mirrors} mirrors in ${resyncMs} ms: ${resync.controllerWrites} writes by the controller, ${resync.apiserverWrites} write requests seen by the API server`,
    );
    log(`  before the resyncs: ${describeHeld(resync.heldBefore)}`);
    log(`  after the resyncs:  ${describeHeld(resync.heldAfter)}`);
    await ctl.stop();

    // --- 2b. soak: no-op resyncs, watch restarts, a little churn -----------------------------
    results.soak = await soak(c, names, opts, log);
    log(`MaxListenersExceededWarning in the bench process (both in-process controllers): ${leakWarnings.length}`);
    results.leakWarnings = { inProcess: leakWarnings };

    // --- 3. memory of the real binary ------------------------------------------------------
    const more = Array.from(
      { length: Math.max(0, opts.rssMirrors - opts.mirrors) },
      (_, i) => `r${String(i).padStart(5, '0')}`,
    );
    await pool(more, 32, (n) => createMirror(c, n, { upstreamUrl: `registry-${n}.example.com` }).then(() => undefined));
    await c.core.createNamespace({ body: { metadata: { name: 'unrelated' } } });
    const payload = Buffer.from('x'.repeat(1024)).toString('base64');
    const s0 = Date.now();
    await pool(
      Array.from({ length: opts.unrelatedSecrets }, (_, i) => i),
      48,
      async (i) => {
        await c.core.createNamespacedSecret({
          namespace: 'unrelated',
          body: { metadata: { name: `s${i}` }, data: { blob: payload } },
        });
      },
    );
    log(
      `created ${more.length} more mirrors and ${opts.unrelatedSecrets} unrelated Secrets (1 KiB each) in ${Date.now() - s0} ms`,
    );
    const metricsPort = 18000 + Math.floor(Math.random() * 2000);
    const p0 = Date.now();
    child = spawn(
      process.execPath,
      [
        join(opts.root, 'bin', 'mirror-synth.js'),
        'controller',
        '--kubeconfig',
        cp.kubeconfigPath,
        '--namespace',
        NAMESPACE,
        '--no-leader-election',
        '--metrics-port',
        String(metricsPort),
        '--log-level',
        'warn',
      ],
      // The V8 settings of the Deployment (controller-manifests), so this measures what is deployed.
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SECONDS_BETWEEN_STREAMS: '5', NODE_OPTIONS } },
    );
    child.stderr!.on('data', (d: Buffer) => {
      process.stderr.write(d);
      childLeakWarnings += d.toString().split('MaxListenersExceededWarning').length - 1;
    });
    const allMirrors = opts.rssMirrors;
    let exited: string | undefined;
    child.once('exit', (code, signal) => (exited = `controller process exited (code ${code}, signal ${signal})`));
    // Every mirror reconciled: count reconciles from the process's own metrics.
    await waitFor(
      `${allMirrors} reconciles by the controller process`,
      async () => {
        if (exited) throw new StopWaiting(exited);
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        // No kubelet here: a reconciled mirror waits for its pods ('waiting'), or serves ('success').
        const count = (result: string) =>
          Number(new RegExp(`mirror_synth_reconcile_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
        const success = count('success') + count('waiting');
        const depth = Number(/mirror_synth_queue_depth (\d+)/.exec(text)?.[1] ?? 1);
        return success >= allMirrors && depth === 0;
      },
      900_000,
      500,
    );
    const settleMs = Date.now() - p0;
    await new Promise((r) => setTimeout(r, 3000));
    const mem = {
      nodeOptions: NODE_OPTIONS,
      mirrors: allMirrors,
      unrelatedSecrets: opts.unrelatedSecrets,
      ...rssOf(child.pid!),
      startToAllReconciledMs: settleMs,
      held: await scrapeHeld(metricsPort, false),
    };
    results.memory = mem;
    log(
      `controller process with ${allMirrors} mirrors and ${opts.unrelatedSecrets} unrelated Secrets: RSS ${mem.rssMB} MB (peak ${mem.hwmMB} MB); all reconciled ${settleMs} ms after start`,
    );
    log(`  at rest: ${describeHeld(mem.held)} (no GC forced)`);
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    process.off('warning', onWarning);
    await cp.stop();
  }
  if (child) {
    results.leakWarnings = { ...(results.leakWarnings as object), controllerProcess: childLeakWarnings };
    log(`MaxListenersExceededWarning from the controller process: ${childLeakWarnings}`);
  }
  mkdirSync(opts.resultsDir, { recursive: true });
  const file = join(opts.resultsDir, `controller-${Date.now()}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results: ${file}`);
}
