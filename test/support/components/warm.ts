// mirror-synth warm (`spec.cache.pinned`) as the cache pod runs it, for e2e tests and benchmarks:
// the warm container's args, run with this checkout's bin/mirror-synth.js, as the pod's user, with
// only these changed:
//   --pinned /etc/mirror-synth/pinned/pinned.json -> the same key of the pinned ConfigMap, written
//     to a test directory (setList() rewrites it as the kubelet does: beside, then rename)
//   --registry http://127.0.0.1:5000               -> the test's front
//   --pinned-digests /var/lib/registry/...         -> the same path on the test's cache volume
//   --listen :9103                                 -> a free port on loopback
// plus --poll-seconds 1 (the kubelet takes up to a minute to update a ConfigMap volume; the test
// does not wait for that) and the container's NODE_OPTIONS.
import type { ChildProcess } from 'node:child_process';
import { chown, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { mirrorChildNames } from '../../../src/api/children.js';
import { PINNED_LIST_KEY } from '../../../src/construct/warm.js';
import type { PinnedImageStatus } from '../../../src/warm/warm.js';
import { cacheContainer, cachePodUser, configMapData, type ManifestObject } from '../primitives/manifest.js';
import { reservePort } from '../primitives/ports.js';
import { hasExited, spawnTracked, terminate } from '../primitives/processes.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';
import { findBin } from './fill.js';
import { letThrough } from './front.js';

const VOLUME = '/var/lib/registry';

function replaceArg(args: string[], flag: string, value: (old: string) => string): string[] {
  const i = args.indexOf(flag);
  if (i < 0 || i + 1 >= args.length) throw new Error(`the warm container has no ${flag} <value>: ${args.join(' ')}`);
  return [...args.slice(0, i + 1), value(args[i + 1]), ...args.slice(i + 2)];
}

export class WarmProcess {
  private child?: ChildProcess;
  private output: string[] = [];

  private constructor(
    private readonly args: string[],
    private readonly user: { uid: number; gid: number },
    private readonly env: Record<string, string>,
    /** The list file it reads. */
    readonly listFile: string,
    /** pinned.json on the test's cache volume. */
    readonly pinnedFile: string,
    readonly port: number,
  ) {}

  static async start(opts: {
    objects: readonly ManifestObject[];
    name: string;
    /** The test's cache volume (Distribution's data dir, as the front has it). */
    volume: string;
    /** Where the list file goes. */
    dir: string;
    /** The front. */
    frontPort: number;
  }): Promise<WarmProcess> {
    const container = cacheContainer(opts.objects, opts.name, 'warm');
    let args = [...(container.args ?? [])];
    const port = await reservePort();
    await mkdir(opts.dir, { recursive: true });
    const listFile = join(opts.dir, PINNED_LIST_KEY);
    await writeFile(listFile, configMapData(opts.objects, mirrorChildNames(opts.name).pinnedConfig, PINNED_LIST_KEY));
    let pinnedFile = '';
    args = replaceArg(args, '--pinned', () => listFile);
    args = replaceArg(args, '--registry', () => `http://127.0.0.1:${opts.frontPort}`);
    args = replaceArg(args, '--listen', () => `127.0.0.1:${port}`);
    args = replaceArg(args, '--pinned-digests', (old) => {
      if (!old.startsWith(`${VOLUME}/`)) throw new Error(`warm writes outside the cache volume: ${old}`);
      pinnedFile = opts.volume + old.slice(VOLUME.length);
      return pinnedFile;
    });
    args.push('--poll-seconds', '1');
    // the pod's user reads the list and writes pinned.json on the volume (the front made it the user's)
    const user = cachePodUser(opts.objects, opts.name);
    await chown(opts.dir, user.uid, user.gid);
    await chown(listFile, user.uid, user.gid);
    await letThrough([opts.dir, opts.volume]);
    const env = Object.fromEntries(
      (container.env ?? []).flatMap((e) => (e.value !== undefined ? [[e.name, e.value]] : [])),
    );
    const warm = new WarmProcess(args, user, env, listFile, pinnedFile, port);
    await warm.spawn();
    return warm;
  }

  /** Replace the list as the kubelet replaces a ConfigMap volume's file. */
  async setList(images: readonly string[], refreshInterval = '1h'): Promise<void> {
    await writeFile(`${this.listFile}.new`, JSON.stringify({ images, refreshInterval }));
    await chown(`${this.listFile}.new`, this.user.uid, this.user.gid);
    await rename(`${this.listFile}.new`, this.listFile);
  }

  /** /status: each pinned image. */
  async status(): Promise<PinnedImageStatus[]> {
    const res = await fetch(`http://127.0.0.1:${this.port}/status`);
    return ((await res.json()) as { images: PinnedImageStatus[] }).images;
  }

  /** /status once every listed image has been tried (warm or with a reason). */
  async settled(images: readonly string[], timeoutMs = 60_000): Promise<PinnedImageStatus[]> {
    return waitFor(
      `mirror-synth warm to try ${images.join(', ')}`,
      async () => {
        if (!this.running) throw new StopWaiting(`mirror-synth warm exited:\n${this.output.join('\n')}`);
        const s = await this.status().catch(() => []);
        const tried = s.filter((i) => images.includes(i.image) && i.message !== 'not fetched yet');
        return tried.length === images.length ? s : undefined;
      },
      timeoutMs,
      200,
    );
  }

  /** The digests in pinned.json. */
  async pinned(): Promise<string[]> {
    return (JSON.parse(await readFile(this.pinnedFile, 'utf8')) as { digests: string[] }).digests;
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
  }

  get running(): boolean {
    return this.child !== undefined && !hasExited(this.child);
  }

  log(): string[] {
    return [...this.output];
  }

  private async spawn(): Promise<void> {
    this.output = [];
    const child = spawnTracked(process.execPath, [findBin(), ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
      uid: this.user.uid,
      gid: this.user.gid,
    });
    this.child = child;
    for (const s of [child.stdout!, child.stderr!])
      s.on('data', (d: Buffer) => this.output.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor(`mirror-synth warm on 127.0.0.1:${this.port}`, async () => {
      if (child.exitCode !== null)
        throw new StopWaiting(`mirror-synth warm exited (${child.exitCode}):\n${this.output.join('\n')}`);
      const res = await fetch(`http://127.0.0.1:${this.port}/healthz`).catch(() => undefined);
      return res?.ok ? true : undefined;
    });
  }

  async stop(): Promise<void> {
    await terminate(this.child, 10_000);
  }
}
