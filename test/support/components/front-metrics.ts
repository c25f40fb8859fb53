// The front's metrics exporter as synthesized: mtail (built from tools/mtail, the release the
// image pins) running the ConfigMap's front.mtail with the `front-metrics` container's args,
// with exactly these substitutions, each checked to apply once:
//   --progs <dir>                  -> a dir holding the ConfigMap's program
//   --logs udp://127.0.0.1:5514    -> the test's UDP port (the front's nginx.conf gets the same)
//   --port 3903                    -> a free port
// It runs as the pod's runAsUser/runAsGroup. The front sends it one syslog datagram per request.
import { type ChildProcess } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { cacheContainer, cachePodUser, configMapData, type ManifestObject } from '../primitives/manifest.js';
import { reservePorts } from '../primitives/ports.js';
import { spawnTracked } from '../primitives/processes.js';
import { ensureTool } from '../primitives/tools.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';
import { letThrough } from './front.js';

/** The UDP port and metrics port in the synthesized pod (api/names.ts), as the args name them. */
const POD_LOG_PORT = 5514;
const POD_METRICS_PORT = 3903;
export const FRONT_METRICS_CONTAINER = 'front-metrics';
const PROGRAM_KEY = 'front.mtail';

/** The `front-metrics` container's args with one value replaced; the flag must be there once. */
function replaceArg(args: string[], flag: string, from: string, to: string): string[] {
  const at = args.flatMap((a, i) => (a === flag ? [i] : []));
  if (at.length !== 1 || args[at[0] + 1] !== from) {
    throw new Error(
      `synthesized ${FRONT_METRICS_CONTAINER} args: expected '${flag} ${from}' once, got ${args.join(' ')}`,
    );
  }
  return args.map((a, i) => (i === at[0] + 1 ? to : a));
}

export interface FrontMetricsOptions {
  readonly objects: readonly ManifestObject[];
  readonly name: string;
  readonly dir: string;
}

export class FrontMetrics {
  private child?: ChildProcess;
  private stderr: string[] = [];
  readonly url: string;

  private constructor(
    /** The UDP port the front's nginx.conf must send its log to. */
    readonly logPort: number,
    readonly metricsPort: number,
    private readonly binary: string,
    private readonly args: string[],
    private readonly user: { uid: number; gid: number },
  ) {
    this.url = `http://127.0.0.1:${metricsPort}/metrics`;
  }

  static async start(opts: FrontMetricsOptions): Promise<FrontMetrics> {
    const container = cacheContainer(opts.objects, opts.name, FRONT_METRICS_CONTAINER);
    if (!container.args) throw new Error(`the cache pod's '${FRONT_METRICS_CONTAINER}' container has no args`);
    const [logPort, metricsPort] = await reservePorts(2);
    const progs = join(opts.dir, 'progs');
    await mkdir(progs, { recursive: true });
    await writeFile(
      join(progs, PROGRAM_KEY),
      configMapData(opts.objects, `registry-mirror-${opts.name}-config`, PROGRAM_KEY),
    );
    const user = cachePodUser(opts.objects, opts.name);
    await chown(opts.dir, user.uid, user.gid);
    await letThrough([opts.dir]);
    const podProgs = container.args[container.args.indexOf('--progs') + 1];
    let args = replaceArg(container.args, '--progs', podProgs, progs);
    args = replaceArg(args, '--logs', `udp://127.0.0.1:${POD_LOG_PORT}`, `udp://127.0.0.1:${logPort}`);
    args = replaceArg(args, '--port', String(POD_METRICS_PORT), String(metricsPort));
    // the tool cache is under root's home, which the pod's user may not enter: a copy it may run
    const binary = join(opts.dir, 'mtail');
    await copyFile(await ensureTool('mtail'), binary);
    await chmod(binary, 0o755);
    const metrics = new FrontMetrics(logPort, metricsPort, binary, args, user);
    await metrics.spawn();
    return metrics;
  }

  private async spawn(): Promise<void> {
    this.stderr = [];
    const child = spawnTracked(this.binary, this.args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      uid: this.user.uid,
      gid: this.user.gid,
    });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => this.stderr.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor(`mtail on ${this.url}`, async () => {
      if (child.exitCode !== null)
        throw new StopWaiting(`mtail exited (${child.exitCode}):\n${this.stderr.join('\n')}`);
      const res = await fetch(this.url).catch(() => undefined);
      return res?.ok ? true : undefined;
    });
  }

  /** The metrics page as Prometheus scrapes it. */
  async scrape(): Promise<string> {
    return (await fetch(this.url)).text();
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }
}
