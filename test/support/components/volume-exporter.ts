// The cache pod's volume exporter (node_exporter, built from tools/node-exporter) run the way
// the synthesized pod runs it: the container's args (only the listen address changed), as the
// pod's user without capabilities, with the cache volume, a real tmpfs, bind-mounted where the
// container mounts it and as its volumeMount says (read-only).
//
// node_exporter lists mounts from /proc/1/mountinfo (under --path.procfs), falling back to
// /proc/self/mountinfo only when that file is missing. In the pod, whose containers do not
// share a process namespace, PID 1 is node_exporter itself, so it reads its own mount table.
// Here it runs in PID and mount namespaces of its own with a /proc of its own (unshare), whose
// PID 1 is the shell that mounted the volume and started it: the same mount table, not the
// host's. (The shell stays PID 1 so that killing unshare, which kills the shell, ends the
// namespace and node_exporter with it: a process that changed its uid loses its parent-death
// signal.) The mount sits under --path.rootfs, which node_exporter strips from the mount
// points it reports, so the series name the container's path. Needs root (mount, unshare).
import { type ChildProcess, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { type CacheContainer, cacheContainer, cachePodUser, type ManifestObject } from '../primitives/manifest.js';
import { reservePort } from '../primitives/ports.js';
import { hasExited, spawnTracked, tail } from '../primitives/processes.js';
import { ensureTool } from '../primitives/tools.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';
import { letThrough } from './front.js';

const execFileAsync = promisify(execFile);
const LISTEN = '--web.listen-address=';

export interface VolumeExporterOptions {
  readonly dir: string;
  /** The synthesized objects of one mirror, and its name. */
  readonly objects: readonly ManifestObject[];
  readonly name: string;
  /** Size of the tmpfs that stands for the cache volume. */
  readonly sizeMiB: number;
}

export const VOLUME_EXPORTER_CONTAINER = 'volume-exporter';

/** The volume exporter container of a mirror's cache StatefulSet, and the pod's user. */
export function volumeExporterContainer(
  objects: readonly ManifestObject[],
  name: string,
): CacheContainer & { user: { uid: number; gid: number } } {
  return { ...cacheContainer(objects, name, VOLUME_EXPORTER_CONTAINER), user: cachePodUser(objects, name) };
}

export class VolumeExporter {
  private constructor(
    private readonly child: ChildProcess,
    /** `host:port` to scrape. */
    readonly address: string,
    /** The arguments node_exporter runs with. */
    readonly args: readonly string[],
    /** The volume as the kubelet has it (read-write): write here to fill it. */
    readonly volume: string,
  ) {}

  static async start(opts: VolumeExporterOptions): Promise<VolumeExporter> {
    const binary = await ensureTool('node_exporter');
    const container = volumeExporterContainer(opts.objects, opts.name);
    const containerArgs = container.args ?? [];
    if (containerArgs.filter((a) => a.startsWith(LISTEN)).length !== 1) {
      throw new Error(`the ${VOLUME_EXPORTER_CONTAINER} container's args have no single ${LISTEN}`);
    }
    const mount = container.volumeMounts?.find((m) => m.name === 'cache');
    if (!mount) throw new Error(`the ${VOLUME_EXPORTER_CONTAINER} container does not mount the cache volume`);

    const volume = join(opts.dir, 'volume');
    const rootfs = join(opts.dir, 'rootfs');
    const target = join(rootfs, mount.mountPath);
    await mkdir(volume, { recursive: true });
    await mkdir(target, { recursive: true });
    await letThrough([target]);
    try {
      await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${opts.sizeMiB}m`, 'tmpfs', volume]);
    } catch (err) {
      throw new Error(
        `cannot mount a tmpfs at ${volume} to stand for the cache volume (the volume exporter test needs root): ${(err as Error).message}`,
      );
    }

    const port = await reservePort();
    const args = [
      ...containerArgs.map((a) => (a.startsWith(LISTEN) ? `${LISTEN}127.0.0.1:${port}` : a)),
      `--path.rootfs=${rootfs}`,
    ];
    const log = join(opts.dir, 'node_exporter.log');
    const out = createWriteStream(log);
    const { uid, gid } = container.user;
    // unshare: new PID and mount namespaces, a fresh /proc, SIGKILL for the shell when unshare
    // dies. The shell mounts the volume as the runtime mounts it and runs node_exporter as the
    // pod's user, with no capabilities and no privilege escalation.
    const child = spawnTracked(
      'unshare',
      [
        '--pid',
        '--fork',
        '--mount',
        '--mount-proc',
        '--kill-child',
        '--',
        'sh',
        '-c',
        `mount --bind ${mount.readOnly ? '-o ro ' : ''}"$1" "$2" || exit 1; shift 2; "$@" & wait $!`,
        'sh',
        volume,
        target,
        'setpriv',
        `--reuid=${uid}`,
        `--regid=${gid}`,
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--no-new-privs',
        binary,
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Both into one file: the first to end must not end it ('close' comes after both).
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    child.once('close', () => out.end());
    const exporter = new VolumeExporter(child, `127.0.0.1:${port}`, args, volume);
    try {
      await waitFor(`node_exporter to report ${mount.mountPath}`, async () => {
        if (hasExited(child)) throw new StopWaiting(`node_exporter exited:\n${await tail(log)}`);
        const res = await fetch(`http://${exporter.address}/metrics`).catch(() => undefined);
        const text = res?.ok ? await res.text() : '';
        return text.includes(`mountpoint="${mount.mountPath}"`) ? true : undefined;
      });
    } catch (err) {
      await exporter.stop();
      throw err;
    }
    return exporter;
  }

  /** Stop node_exporter and unmount the volume. */
  async stop(): Promise<void> {
    // unshare does not pass SIGTERM on; its SIGKILL ends the namespace and node_exporter (which
    // has nothing to flush) with it.
    if (!hasExited(this.child)) {
      const exited = new Promise((ok) => this.child.once('exit', ok));
      this.child.kill('SIGKILL');
      await exited;
    }
    await execFileAsync('umount', [this.volume]);
  }
}
