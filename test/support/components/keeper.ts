// mirror-synth keeper (the size bound, spec.cache.maxSize) as the cache pod runs it, for e2e tests:
// the keeper container's args, run with this checkout's bin/mirror-synth.js (what the mirror-synth
// image's entrypoint runs), with only these changed:
//   --store /var/lib/registry        -> the test's cache volume (Distribution's data dir)
//   --log-listen 127.0.0.1:5515      -> a free port (the front's `syslog:server=127.0.0.1:5515` follows:
//                                       start the keeper first and pass logPort as keeperLogPort)
//   --metrics-listen :9102           -> a free port on loopback (metricsUrl)
// and the container's NODE_OPTIONS (its heap limit) in its environment. It runs as the test's user,
// as Distribution does here (in the pod both run as the pod's user): it deletes what Distribution wrote.
import type { ChildProcess } from 'node:child_process';

import { cacheContainer, type ManifestObject } from '../primitives/manifest.js';
import { reservePort } from '../primitives/ports.js';
import { hasExited, spawnTracked, terminate } from '../primitives/processes.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';
import { findBin } from './fill.js';

const VOLUME = '/var/lib/registry';

function replaceArg(args: string[], flag: string, value: (old: string) => string): string[] {
  const i = args.indexOf(flag);
  if (i < 0 || i + 1 >= args.length) throw new Error(`the keeper container has no ${flag} <value>: ${args.join(' ')}`);
  return [...args.slice(0, i + 1), value(args[i + 1]), ...args.slice(i + 2)];
}

/** The keeper container's args, or undefined when the pod has none (no mirror-synth image). */
export function keeperArgs(objects: readonly ManifestObject[], name: string): string[] | undefined {
  try {
    return cacheContainer(objects, name, 'keeper').args;
  } catch {
    return undefined;
  }
}

export class KeeperProcess {
  private child?: ChildProcess;
  private output: string[] = [];

  private constructor(
    private readonly args: string[],
    private readonly env: Record<string, string>,
    /** The UDP port it hears the front on. */
    readonly logPort: number,
    readonly metricsPort: number,
  ) {}

  static async start(opts: {
    objects: readonly ManifestObject[];
    name: string;
    /** The cache volume (SynthesizedMirror: `<dir>/distribution/data`). */
    volume: string;
    /** Options after the container's own (a later one wins). @default none */
    extraArgs?: readonly string[];
  }): Promise<KeeperProcess> {
    let args = keeperArgs(opts.objects, opts.name);
    if (!args) throw new Error(`StatefulSet/registry-mirror-${opts.name} runs no keeper container`);
    args = replaceArg(args, '--store', (old) => {
      if (old !== VOLUME) throw new Error(`the keeper keeps another directory than the cache volume: ${old}`);
      return opts.volume;
    });
    const logPort = await reservePort();
    args = replaceArg(args, '--log-listen', () => `127.0.0.1:${logPort}`);
    const metricsPort = await reservePort();
    args = replaceArg(args, '--metrics-listen', () => `127.0.0.1:${metricsPort}`);
    args.push(...(opts.extraArgs ?? []));
    const env = Object.fromEntries(
      (cacheContainer(opts.objects, opts.name, 'keeper').env ?? []).flatMap((e) =>
        e.value !== undefined ? [[e.name, e.value]] : [],
      ),
    );
    const keeper = new KeeperProcess(args, env, logPort, metricsPort);
    await keeper.spawn();
    return keeper;
  }

  get metricsUrl(): string {
    return `http://127.0.0.1:${this.metricsPort}/metrics`;
  }

  get running(): boolean {
    return this.child !== undefined && !hasExited(this.child);
  }

  /** Its log lines (pino JSON on stdout, anything on stderr). */
  log(): string[] {
    return [...this.output];
  }

  /** Its `evicted` log lines. */
  evictions(): { images: string[]; blobs: number; freedBytes: number; usedBytes: number }[] {
    return this.output
      .filter((l) => l.startsWith('{'))
      .map(
        (l) =>
          JSON.parse(l) as { msg?: string; images: string[]; blobs: number; freedBytes: number; usedBytes: number },
      )
      .filter((l) => l.msg === 'evicted');
  }

  private async spawn(): Promise<void> {
    this.output = [];
    const child = spawnTracked(process.execPath, [findBin(), ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    for (const s of [child.stdout!, child.stderr!])
      s.on('data', (d: Buffer) => this.output.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor(`mirror-synth keeper's metrics on 127.0.0.1:${this.metricsPort}`, async () => {
      if (child.exitCode !== null)
        throw new StopWaiting(`mirror-synth keeper exited (${child.exitCode}):\n${this.output.join('\n')}`);
      const res = await fetch(this.metricsUrl).catch(() => undefined);
      return res?.ok ? true : undefined;
    });
  }

  async stop(): Promise<void> {
    await terminate(this.child, 10_000);
  }
}
