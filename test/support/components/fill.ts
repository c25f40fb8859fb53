// mirror-synth's streaming fill (`spec.fill: streaming`) as the cache pod runs it, for e2e tests
// and benchmarks: the fill container's args, run with this checkout's bin/mirror-synth.js (what
// the mirror-synth image's entrypoint runs), as the pod's user, with only these changed:
//   --listen 127.0.0.1:5003          -> a free port (the front's `server 127.0.0.1:5003` follows)
//   --distribution http://...:5002   -> Distribution's test port
//   --metrics-listen :9101           -> a free port on loopback (metricsUrl)
//   --spool /var/lib/registry/fill   -> the same dir on the test's cache volume
//   --peers-srv <the headless Service's SRV name> -> --peers with the test's replicas: pod names
//     registry-mirror-<name>-<i> at their fronts' loopback ports (there is no cluster DNS here);
//     POD_NAME (the downward API's metadata.name) -> registry-mirror-<name>-<replica>
// and the container's NODE_OPTIONS (its heap limit) in its environment. A test may add options
// of its own after the container's (`extraArgs`, e.g. a shorter timeout), which the caller says.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cacheContainer, cachePodUser, type ManifestObject } from '../primitives/manifest.js';
import { reservePort } from '../primitives/ports.js';
import { hasExited, spawnTracked, terminate } from '../primitives/processes.js';
import { StopWaiting, waitFor, waitForDigests } from '../primitives/wait.js';

/** This checkout's bin/mirror-synth.js (benchmarks run this file compiled elsewhere: look upwards). */
export function findBin(): string {
  // the checkout run from first: a benchmark compiled into a shared node_modules/.cache would find another
  for (const d of [process.cwd(), ...ancestors(dirname(fileURLToPath(import.meta.url)))]) {
    const bin = join(d, 'bin', 'mirror-synth.js');
    if (existsSync(bin) && existsSync(join(d, 'lib', 'fill', 'fill.js'))) return bin;
  }
  throw new Error('no bin/mirror-synth.js with a built lib/ above test/support: run "npm run build" first');
}

function ancestors(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; d !== dirname(d); d = dirname(d)) out.push(d);
  return out;
}
const VOLUME = '/var/lib/registry';

/**
 * The fill image the tests and benchmarks synthesize streaming mirrors with (synth's
 * `--fill-image`): only a name in the manifests, since the fill runs from this checkout here.
 */
export const TEST_FILL_IMAGE = 'mirror-synth.test/mirror-synth:test';

/** The fill container's args, or undefined when the pod has none (`spec.fill: whole`). */
export function fillArgs(objects: readonly ManifestObject[], name: string): string[] | undefined {
  try {
    return cacheContainer(objects, name, 'fill').args;
  } catch {
    return undefined;
  }
}

/** A transfer the fill logged as completed and verified: its URI, and the owner replica it came from (none: its own Distribution). */
export interface FillTransfer {
  readonly uri: string;
  readonly from?: string;
}

/** The `fill done` lines among the fill's log lines (pino JSON; other lines are skipped). */
export function fillTransfers(lines: readonly string[]): FillTransfer[] {
  return lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string; uri?: string; from?: string })
    .flatMap((l) =>
      l.msg === 'fill done' && l.uri !== undefined
        ? [{ uri: l.uri, ...(l.from !== undefined ? { from: l.from } : {}) }]
        : [],
    );
}

function replaceArg(args: string[], flag: string, value: (old: string) => string): string[] {
  const i = args.indexOf(flag);
  if (i < 0 || i + 1 >= args.length) throw new Error(`the fill container has no ${flag} <value>: ${args.join(' ')}`);
  return [...args.slice(0, i + 1), value(args[i + 1]), ...args.slice(i + 2)];
}

export class FillProcess {
  private child?: ChildProcess;
  private output: string[] = [];

  private constructor(
    private readonly args: string[],
    private readonly user: { uid: number; gid: number },
    readonly port: number,
    /** Its /metrics (--metrics-listen). */
    readonly metricsPort: number,
    /** POD_NAME. */
    readonly podName: string,
    /** The container's env vars with a value (NODE_OPTIONS). */
    private readonly env: Record<string, string>,
  ) {}

  static async start(opts: {
    objects: readonly ManifestObject[];
    name: string;
    volume: string;
    distributionPort: number;
    /** This replica's index: its pod name is registry-mirror-<name>-<replica>. @default 0 */
    replica?: number;
    /** The fronts of every replica, by index (this one's included). @default - this replica alone, at `frontPort` */
    peers?: readonly string[];
    /** This replica's front. */
    frontPort: number;
    /** Options after the container's own (a later one wins). @default none */
    extraArgs?: readonly string[];
  }): Promise<FillProcess> {
    let args = fillArgs(opts.objects, opts.name);
    if (!args) throw new Error(`StatefulSet/registry-mirror-${opts.name} runs no fill container`);
    const port = await reservePort();
    args = replaceArg(args, '--listen', () => `127.0.0.1:${port}`);
    const metricsPort = await reservePort();
    args = replaceArg(args, '--metrics-listen', () => `127.0.0.1:${metricsPort}`);
    args = replaceArg(args, '--distribution', () => `http://127.0.0.1:${opts.distributionPort}`);
    args = replaceArg(args, '--spool', (old) => {
      if (!old.startsWith(`${VOLUME}/`)) throw new Error(`the fill spools outside the cache volume: ${old}`);
      return opts.volume + old.slice(VOLUME.length);
    });
    const pod = (i: number): string => `registry-mirror-${opts.name}-${i}`;
    const replica = opts.replica ?? 0;
    const peers = (opts.peers ?? []).map((address, n) => `${pod(n)}=${address}`);
    if (!opts.peers) peers.push(`${pod(replica)}=127.0.0.1:${opts.frontPort}`);
    const i = args.indexOf('--peers-srv');
    if (i < 0) throw new Error(`the fill container has no --peers-srv: ${args.join(' ')}`);
    args.splice(i, 2, '--peers', peers.join(','));
    args.push(...(opts.extraArgs ?? []));
    const env = Object.fromEntries(
      (cacheContainer(opts.objects, opts.name, 'fill').env ?? []).flatMap((e) =>
        e.value !== undefined ? [[e.name, e.value]] : [],
      ),
    );
    const fill = new FillProcess(args, cachePodUser(opts.objects, opts.name), port, metricsPort, pod(replica), env);
    await fill.spawn();
    return fill;
  }

  /** Its Prometheus endpoint. */
  get metricsUrl(): string {
    return `http://127.0.0.1:${this.metricsPort}/metrics`;
  }

  get running(): boolean {
    return this.child !== undefined && !hasExited(this.child);
  }

  /** The process's pid, while it runs. */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  /** Its resident memory now and at its peak (VmRSS, VmHWM in /proc/<pid>/status), in bytes. */
  async memory(): Promise<{ rss: number; peak: number }> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1]) * 1024;
    return { rss: kib('VmRSS'), peak: kib('VmHWM') };
  }

  /** Its log lines (pino JSON on stdout, anything on stderr). */
  log(): string[] {
    return [...this.output];
  }

  /** Transfers that completed verified, by digest (its `fill done` log lines). */
  transfers(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { uri } of fillTransfers(this.output)) {
      const m = /(sha256:[0-9a-f]{64})$/.exec(uri);
      if (m) out.set(m[1], (out.get(m[1]) ?? 0) + 1);
    }
    return out;
  }

  /**
   * transfers() once each of `digests` has a completed transfer logged: the fill logs a transfer
   * as its last client gets the last byte, and its output comes through a pipe, so counting the
   * moment a client is done races. On timeout, what was logged, for the caller's assertion.
   */
  async loggedTransfers(digests: readonly string[], timeoutMs = 10_000): Promise<Map<string, number>> {
    const got = await waitForDigests('mirror-synth fill', digests, () => ({ byDigest: this.transfers() }), timeoutMs);
    return got.byDigest;
  }

  private async spawn(): Promise<void> {
    this.output = [];
    const child = spawnTracked(process.execPath, [findBin(), ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env, POD_NAME: this.podName },
      uid: this.user.uid,
      gid: this.user.gid,
    });
    this.child = child;
    for (const s of [child.stdout!, child.stderr!])
      s.on('data', (d: Buffer) => this.output.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor(`mirror-synth fill on 127.0.0.1:${this.port}`, async () => {
      if (child.exitCode !== null)
        throw new StopWaiting(`mirror-synth fill exited (${child.exitCode}):\n${this.output.join('\n')}`);
      // anything not a digest GET goes straight to Distribution: an answer means both are up
      const res = await fetch(`http://127.0.0.1:${this.port}/v2/`).catch(() => undefined);
      return res ? true : undefined;
    });
  }

  async stop(): Promise<void> {
    await terminate(this.child, 10_000);
  }

  /** SIGKILL, as a container killed mid-transfer. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }
}
