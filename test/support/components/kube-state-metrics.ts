// A real kube-state-metrics (built from tools/kube-state-metrics) watching a test API server,
// limited to the resources and namespaces a test names, on reserved loopback ports. Its series
// carry the object's own `namespace` label, so scrape it with honor_labels as
// kube-prometheus-stack's ServiceMonitor does.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { reservePorts } from '../primitives/ports.js';
import { hasExited, spawnTracked, tail, terminate } from '../primitives/processes.js';
import { ensureTool } from '../primitives/tools.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';

export interface KubeStateMetricsOptions {
  /** Directory for its log. */
  readonly dir: string;
  readonly kubeconfigPath: string;
  /** Kubernetes resources to expose, plural (`daemonsets`, `statefulsets`, ...). */
  readonly resources: readonly string[];
  /** Namespaces to watch. */
  readonly namespaces: readonly string[];
}

export interface KubeStateMetrics {
  /** `127.0.0.1:<port>` of the object metrics (`/metrics`), for a scrape target. */
  readonly address: string;
  /** The text of one scrape of `/metrics`. */
  scrape(): Promise<string>;
  stop(): Promise<void>;
}

export async function startKubeStateMetrics(opts: KubeStateMetricsOptions): Promise<KubeStateMetrics> {
  const binary = await ensureTool('kube-state-metrics');
  await mkdir(opts.dir, { recursive: true });
  const [port, telemetryPort] = await reservePorts(2);
  const logFile = join(opts.dir, 'kube-state-metrics.log');
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawnTracked(
    binary,
    [
      `--kubeconfig=${opts.kubeconfigPath}`,
      '--host=127.0.0.1',
      `--port=${port}`,
      '--telemetry-host=127.0.0.1',
      `--telemetry-port=${telemetryPort}`,
      `--resources=${opts.resources.join(',')}`,
      `--namespaces=${opts.namespaces.join(',')}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: process.env.HOME } },
  );
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  child.once('close', () => log.end()); // 'close': after the pipes are drained (data can follow 'exit')

  const address = `127.0.0.1:${port}`;
  const stop = (): Promise<void> => terminate(child, 10_000);
  try {
    // /readyz on the telemetry port answers once its collectors are registered
    await waitFor('kube-state-metrics to be ready', async () => {
      if (hasExited(child)) {
        throw new StopWaiting(
          `kube-state-metrics exited (${child.signalCode ?? child.exitCode}):\n${await tail(logFile)}`,
        );
      }
      const res = await fetch(`http://127.0.0.1:${telemetryPort}/readyz`).catch(() => undefined);
      return res?.ok ? true : undefined;
    });
  } catch (err) {
    await stop();
    if (err instanceof StopWaiting) throw new Error(err.message);
    throw new Error(`${(err as Error).message}:\n${await tail(logFile)}`);
  }
  return {
    address,
    scrape: async () => {
      const res = await fetch(`http://${address}/metrics`);
      if (!res.ok) throw new Error(`kube-state-metrics /metrics: ${res.status}`);
      return res.text();
    },
    stop,
  };
}
