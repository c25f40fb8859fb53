// Controller benchmark on a control plane of its own (etcd + kube-apiserver, loopback only).
//
// 1. Create N mirrors at once; per-mirror time from its creation to Ready (every child
//    applied, status written), p50/p99, and the time until all are Ready. In-process
//    controller, default settings (4 workers), no leader election.
// 2. R forced resyncs of every mirror in a steady state: write requests counted by the
//    controller and by the API server (apiserver_request_total for POST/PUT/PATCH/DELETE on
//    the resources the controller touches). Target 0.
// 3. Memory: the real binary (`mirror-synth controller`) in its own process with M mirrors and
//    S unrelated Secrets in another namespace; RSS once every mirror is Ready. Target < 200 MB.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Watch } from '@kubernetes/client-node';

import { NODE_OPTIONS } from '../src/construct/controller-manifests.js';
import { startController } from '../src/controller/controller.js';
import { type ControlPlane, startControlPlane } from '../test/support/control-plane.js';
import {
  type Clients,
  GROUP,
  clients,
  createMirror,
  installCrd,
  StopWaiting,
  waitUntil,
} from '../test/controller/cluster-helpers.js';

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

/** Watch RegistryMirrors and record when each first reports Ready=True for its generation. */
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
      const ready = obj.status?.conditions?.find((x) => x.type === 'Ready');
      if (ready?.status === 'True' && obj.status?.observedGeneration === obj.metadata?.generation)
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

    // --- 1. N mirrors at once -------------------------------------------------------------
    const ctl = await startController({
      kubeConfig: c.kc,
      namespace: NAMESPACE,
      secondsBetweenStreams: 5,
      leaderElection: false,
      logLevel: 'warn',
    });
    await ctl.running;
    const created = new Map<string, number>();
    const ready = new Map<string, number>();
    const watcher = await watchReady(c, (name, at) => {
      if (!ready.has(name)) ready.set(name, at);
    });
    const names = Array.from({ length: opts.mirrors }, (_, i) => `m${String(i).padStart(4, '0')}`);
    const t0 = Date.now();
    await pool(names, 32, async (n) => {
      await createMirror(c, n, { upstreamUrl: `registry-${n}.example.com` });
      created.set(n, Date.now());
    });
    await waitUntil(() => Promise.resolve(ready.size >= opts.mirrors), `${opts.mirrors} mirrors Ready`, 600_000, 200);
    const total = Math.max(...ready.values()) - t0;
    const lat = names.map((n) => ready.get(n)! - created.get(n)!).sort((a, b) => a - b);
    watcher.abort();
    const create = {
      mirrors: opts.mirrors,
      p50Ms: pct(lat, 50),
      p99Ms: pct(lat, 99),
      maxMs: lat[lat.length - 1],
      totalMs: total,
    };
    results.create = create;
    log(
      `create ${opts.mirrors} mirrors at once: per mirror p50 ${create.p50Ms} ms, p99 ${create.p99Ms} ms; all Ready after ${total} ms`,
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
        const success = Number(/mirror_synth_reconcile_total\{result="success"\} (\d+)/.exec(text)?.[1] ?? 0);
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
