// A real Prometheus (built from tools/prometheus) scraping loopback targets, and promtool.
// The config is written as given; storage, logs and the rule files live in one temp dir.
import { type ChildProcess, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { stringify } from 'yaml';

import { reservePort } from '../primitives/ports.js';
import { spawnTracked, terminate } from '../primitives/processes.js';
import { ensureTool } from '../primitives/tools.js';
import { waitFor } from '../primitives/wait.js';

const execFileAsync = promisify(execFile);

export interface ScrapeJob {
  readonly job: string;
  /** `host:port` of each target and the labels it gets (as a PodMonitor's relabelings would give). */
  readonly targets: readonly { readonly address: string; readonly labels: Readonly<Record<string, string>> }[];
  /** @default '/metrics' */
  readonly path?: string;
  /**
   * On a clash keep the labels the target exposes over the scrape's (kube-state-metrics' object
   * `namespace`), as kube-prometheus-stack's ServiceMonitor for it does. @default false
   */
  readonly honorLabels?: boolean;
}

export interface PrometheusOptions {
  readonly dir: string;
  readonly jobs: readonly ScrapeJob[];
  /** Rule files' content (Prometheus rule file format: `{ groups: [...] }`), by file name. */
  readonly rules?: Readonly<Record<string, unknown>>;
  /** @default '1s' */
  readonly interval?: string;
}

export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface Alert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly state: 'pending' | 'firing' | 'inactive';
}

export class Prometheus {
  readonly url: string;
  private readonly output: string[] = [];

  private constructor(
    private readonly child: ChildProcess,
    port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    for (const s of [child.stdout!, child.stderr!]) {
      s.on('data', (d: Buffer) => this.output.push(...d.toString().split('\n').filter(Boolean)));
    }
  }

  static async start(opts: PrometheusOptions): Promise<Prometheus> {
    const binary = await ensureTool('prometheus');
    await mkdir(join(opts.dir, 'data'), { recursive: true });
    const interval = opts.interval ?? '1s';
    const ruleFiles: string[] = [];
    for (const [name, content] of Object.entries(opts.rules ?? {})) {
      const file = join(opts.dir, name);
      await writeFile(file, stringify(content, { lineWidth: 0 }));
      ruleFiles.push(file);
    }
    const config = {
      global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
      rule_files: ruleFiles,
      scrape_configs: opts.jobs.map((j) => ({
        job_name: j.job,
        metrics_path: j.path ?? '/metrics',
        ...(j.honorLabels ? { honor_labels: true } : {}),
        static_configs: j.targets.map((t) => ({ targets: [t.address], labels: t.labels })),
      })),
    };
    const configFile = join(opts.dir, 'prometheus.yml');
    await writeFile(configFile, stringify(config));
    const port = await reservePort();
    const log = createWriteStream(join(opts.dir, 'prometheus.log'));
    const child = spawnTracked(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(opts.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--web.enable-lifecycle',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: process.env.HOME } },
    );
    // Both into one file: the first to end must not end it ('close' comes after both).
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    child.once('close', () => log.end());
    const p = new Prometheus(child, port);
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor('Prometheus to be ready', async () => {
      if (exited) throw new Error(`prometheus exited:\n${p.output.slice(-20).join('\n')}`);
      const res = await fetch(`${p.url}/-/ready`).catch(() => undefined);
      return res?.ok ? true : undefined;
    });
    return p;
  }

  /** An instant query; throws on a query error (bad syntax, unknown function). */
  async query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr }).toString()}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    if (body.status !== 'success') throw new Error(`query failed: ${body.error}\n  ${expr}`);
    return body.data!.result;
  }

  async alerts(): Promise<Alert[]> {
    const res = await fetch(`${this.url}/api/v1/alerts`);
    return ((await res.json()) as { data: { alerts: Alert[] } }).data.alerts;
  }

  /** Scrape targets' health, by job. */
  async targets(): Promise<{ job: string; health: string; lastError: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    const body = (await res.json()) as {
      data: { activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] };
    };
    return body.data.activeTargets.map((t) => ({ job: t.labels.job, health: t.health, lastError: t.lastError }));
  }

  logs(): string[] {
    return [...this.output];
  }

  async stop(): Promise<void> {
    await terminate(this.child, 10_000);
  }
}

/** Run promtool; resolves with its output, rejects with it when promtool exits non-zero. */
export async function promtool(args: string[]): Promise<string> {
  const binary = await ensureTool('promtool');
  try {
    const { stdout, stderr } = await execFileAsync(binary, args, { timeout: 60_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}
