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
//    the resources the controller touches). Target 0.
// 3. Memory: the real binary (`mirror-synth controller`) in its own process with M mirrors and
//    S unrelated Secrets in another namespace; RSS once every mirror is Ready. Target < 200 MB.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Watch } from '@kubernetes/client-node';
import { KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';

import { FIELD_MANAGER, KIND, MIRROR_API_VERSION } from '../src/api/names.js';
import { parseMirrorResource } from '../src/api/validate.js';
import { NODE_OPTIONS } from '../src/construct/controller-manifests.js';
import { startController } from '../src/controller/controller.js';
import { withContentHash } from '../src/controller/hash.js';
import { toClientModel } from '../src/controller/kube.js';
import { sortForApply } from '../src/controller/plan.js';
import { synthesizeMirror } from '../src/synth/chart.js';
import {
  type Clients,
  clients,
  createMirror,
  GROUP,
  installCrd,
  StopWaiting,
  waitUntil,
} from '../test/support/cluster.js';
import { type ControlPlane, startControlPlane } from '../test/support/control-plane.js';

export interface ControllerBenchOptions {
  readonly mirrors: number;
  readonly resyncs: number;
  readonly rssMirrors: number;
  readonly unrelatedSecrets: number;
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

function rssOf(pid: number): { rssMB: number; hwmMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMB: Math.round(kb('VmRSS') / 102.4) / 10, hwmMB: Math.round(kb('VmHWM') / 102.4) / 10 };
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
    });
    await ctl.running;
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
    await waitUntil(() => Promise.resolve(ready.size >= opts.mirrors), `${opts.mirrors} mirrors applied`, 600_000, 200);
    const total = Math.max(...ready.values()) - t0;
    const lat = names.map((n) => ready.get(n)! - created.get(n)!).sort((a, b) => a - b);
    watcher.abort();
    const create = {
      mirrors: opts.mirrors,
      p50Ms: pct(lat, 50),
      p99Ms: pct(lat, 99),
      maxMs: lat[lat.length - 1],
      totalMs: total,
      ratioToBaseline: Math.round((total / base.totalMs) * 100) / 100,
    };
    results.create = create;
    log(
      `create ${opts.mirrors} mirrors at once: per mirror p50 ${create.p50Ms} ms, p99 ${create.p99Ms} ms; all applied after ${total} ms = ${create.ratioToBaseline} x the baseline (target <= 1.3)`,
    );

    // --- 2. no-op resyncs ------------------------------------------------------------------
    await waitUntil(() => Promise.resolve(ctl.idle()), 'idle', 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const ctlWrites = async () => (await ctl.metrics.writesTotal.get()).values.reduce((s, v) => s + v.value, 0);
    const [w0, a0] = [await ctlWrites(), await apiserverWrites(c)];
    const r0 = Date.now();
    for (let i = 0; i < opts.resyncs; i++) {
      ctl.resync();
      await new Promise((r) => setTimeout(r, 50));
      await waitUntil(() => Promise.resolve(ctl.idle()), 'idle', 120_000, 20);
    }
    const resyncMs = Date.now() - r0;
    const resync = {
      resyncs: opts.resyncs,
      mirrors: opts.mirrors,
      controllerWrites: (await ctlWrites()) - w0,
      apiserverWrites: (await apiserverWrites(c)) - a0,
      ms: resyncMs,
    };
    results.resync = resync;
    log(
      `${opts.resyncs} no-op resyncs of ${opts.mirrors} mirrors in ${resyncMs} ms: ${resync.controllerWrites} writes by the controller, ${resync.apiserverWrites} write requests seen by the API server`,
    );
    await ctl.stop();

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
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SECONDS_BETWEEN_STREAMS: '5', NODE_OPTIONS } },
    );
    const allMirrors = opts.rssMirrors;
    let exited: string | undefined;
    child.once('exit', (code, signal) => (exited = `controller process exited (code ${code}, signal ${signal})`));
    // Every mirror reconciled: count reconciles from the process's own metrics.
    await waitUntil(
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
      `${allMirrors} reconciles by the controller process`,
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
    };
    results.memory = mem;
    log(
      `controller process with ${allMirrors} mirrors and ${opts.unrelatedSecrets} unrelated Secrets: RSS ${mem.rssMB} MB (peak ${mem.hwmMB} MB); all reconciled ${settleMs} ms after start`,
    );
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await cp.stop();
  }
  mkdirSync(opts.resultsDir, { recursive: true });
  const file = join(opts.resultsDir, `controller-${Date.now()}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results: ${file}`);
}
