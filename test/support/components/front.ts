// The front (nginx) as synthesized, run with Debian's nginx for e2e tests and benchmarks.
//
// nginx runs the ConfigMap's nginx.conf with exactly these substitutions, each checked to
// apply once so a changed config fails loudly instead of running untested:
//   listen 5000            -> listen 127.0.0.1:<free port>
//   listen 5001            -> listen 127.0.0.1:<free port> (Distribution's metrics, passed on)
//   127.0.0.1:5004/metrics -> Distribution's debug server's test port
//   server 127.0.0.1:5002  -> Distribution's test port
//   listen 127.0.0.1:5003, server 127.0.0.1:5003 -> a free port for the fill server (with
//     spec.fill: streaming, mirror-synth fill's port: test/support/components/fill.ts starts it first)
//   /var/lib/registry      -> the test's cache volume (shared with Distribution, as in the pod)
//   /tmp/                  -> the test's scratch dir
//   syslog:server=127.0.0.1:5514 -> the test's front-metrics (mtail) UDP port
//   syslog:server=127.0.0.1:5515 -> the test's keeper UDP port (a mirror with a keeper: test/support/keeper.ts)
// It runs as the pod's runAsUser/runAsGroup, with stdout (its JSON access log) going to a file.
// The readiness probe is the StatefulSet's exec command, run with `sh` with the same paths.
import { type ChildProcess, execFile } from 'node:child_process';
import { chmod, chown, mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

import {
  type CacheContainer,
  cacheContainer,
  cachePodUser,
  configMapData,
  type ManifestObject,
} from '../primitives/manifest.js';
import { reservePort } from '../primitives/ports.js';
import { spawnTracked } from '../primitives/processes.js';
import { StopWaiting, waitFor, waitForDigests } from '../primitives/wait.js';
import { fillArgs, FillProcess } from './fill.js';

const execFileAsync = promisify(execFile);

const LISTEN = 'listen 5000;';
const METRICS_LISTEN = 'listen 5001;';
const DISTRIBUTION_METRICS = 'http://127.0.0.1:5004/metrics;';
const DISTRIBUTION = 'server 127.0.0.1:5002;';
const FILL_LISTEN = 'listen 127.0.0.1:5003;';
const FILL = 'server 127.0.0.1:5003;';
const VOLUME = '/var/lib/registry';
const METRICS_LOG = 'syslog:server=127.0.0.1:5514,';
const KEEPER_LOG = 'syslog:server=127.0.0.1:5515,';

/** One line of the front's access log (the `registry` log_format). */
export interface FrontLogLine {
  readonly method: string;
  readonly uri: string;
  readonly status: number;
  readonly bytes: number;
  /** $upstream_cache_status: MISS, HIT, STALE ... or '' when the location does not cache. */
  readonly cache: string;
  readonly upstream_status: string;
  readonly user_agent: string;
}

/** Successful blob GETs in the front's access log (FrontProcess.blobGets). */
export interface FrontBlobGets {
  readonly total: number;
  /** Total response bytes of those GETs. */
  readonly bytes: number;
  /** How many of them each $upstream_cache_status served (HIT, MISS, ...). */
  readonly byCache: Record<string, number>;
  readonly byDigest: ReadonlyMap<string, number>;
}

export interface FrontOptions {
  readonly objects: readonly ManifestObject[];
  /** The mirror's name: objects are registry-mirror-<name>... */
  readonly name: string;
  /** Work dir: nginx.conf, scratch space and logs. */
  readonly dir: string;
  /** The cache volume, shared with Distribution's storage. */
  readonly volume: string;
  readonly distributionPort: number;
  /** Distribution's debug server (its /metrics). @default - a free port nothing listens on */
  readonly distributionDebugPort?: number;
  /** @default - a free port */
  readonly port?: number;
  /** Where nginx sends its metrics log (the front-metrics UDP port). @default - a free port nothing listens on */
  readonly metricsLogPort?: number;
  /** spec.fill streaming: this replica's index. @default 0 */
  readonly replica?: number;
  /** spec.fill streaming: every replica's front (host:port) by index. @default - this one alone */
  readonly peers?: readonly string[];
  /** spec.fill streaming: options the test adds after the fill container's own. @default none */
  readonly fillArgs?: readonly string[];
  /** Where nginx tells the keeper what it served (a mirror with a keeper). @default - a free port nothing listens on */
  readonly keeperLogPort?: number;
}

/** `dir`'s parents below the temp dir (the ones a test made). */
function ancestors(dir: string): string[] {
  const out: string[] = [];
  const root = tmpdir();
  for (let d = dirname(dir); d.startsWith(root + '/'); d = dirname(d)) out.push(d);
  return out;
}

/** mkdtemp makes 0700 dirs: let the pod's user through (search only) down to `dirs`. */
export async function letThrough(dirs: readonly string[]): Promise<void> {
  for (const d of new Set(dirs.flatMap(ancestors))) {
    const mode = (await stat(d)).mode;
    if ((mode & 0o001) === 0) await chmod(d, (mode & 0o777) | 0o001);
  }
}

function replaceOnce(text: string, from: string, to: string, what: string): string {
  const n = text.split(from).length - 1;
  if (n !== 1) throw new Error(`synthesized ${what}: expected '${from}' once, found it ${n} times`);
  return text.replace(from, to);
}

function frontContainer(objects: readonly ManifestObject[], name: string): CacheContainer {
  return cacheContainer(objects, name, 'front');
}

function frontCommand(objects: readonly ManifestObject[], name: string): string[] {
  const cmd = frontContainer(objects, name).command;
  if (!cmd?.some((a) => a.endsWith('/nginx.conf'))) throw new Error('the front container does not run nginx.conf');
  return cmd;
}

/** The front container's readiness command from the StatefulSet. */
function readinessScript(objects: readonly ManifestObject[], name: string): string {
  const cmd = frontContainer(objects, name).readinessProbe?.exec?.command;
  if (!cmd || cmd[0] !== 'sh' || cmd[1] !== '-c') throw new Error('the front container has no `sh -c` readiness probe');
  return cmd[2];
}

export class FrontProcess {
  readonly host: string;
  readonly url: string;
  /** The `metrics` port (Distribution's metrics, through the front): `http://127.0.0.1:<port>`. */
  readonly metricsUrl: string;
  private child?: ChildProcess;
  private readonly logFile: string;
  private stderr: string[] = [];

  private constructor(
    private readonly opts: FrontOptions,
    readonly port: number,
    readonly metricsPort: number,
    private readonly configPath: string,
    private readonly user: { uid: number; gid: number },
    /** mirror-synth fill, with `spec.fill: streaming`. */
    readonly fill?: FillProcess,
  ) {
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.metricsUrl = `http://127.0.0.1:${metricsPort}`;
    this.logFile = join(opts.dir, 'access.log');
  }

  static async start(opts: FrontOptions): Promise<FrontProcess> {
    const port = opts.port ?? (await reservePort());
    const user = cachePodUser(opts.objects, opts.name);
    let conf = configMapData(opts.objects, `registry-mirror-${opts.name}-config`, 'nginx.conf');
    conf = replaceOnce(conf, LISTEN, `listen 127.0.0.1:${port};`, 'nginx.conf');
    conf = replaceOnce(conf, DISTRIBUTION, `server 127.0.0.1:${opts.distributionPort};`, 'nginx.conf');
    const metricsPort = await reservePort();
    conf = replaceOnce(conf, METRICS_LISTEN, `listen 127.0.0.1:${metricsPort};`, 'nginx.conf');
    const debugPort = opts.distributionDebugPort ?? (await reservePort());
    conf = replaceOnce(conf, DISTRIBUTION_METRICS, `http://127.0.0.1:${debugPort}/metrics;`, 'nginx.conf');
    const tmp = join(opts.dir, 'tmp');
    for (const d of [opts.dir, tmp, opts.volume]) {
      await mkdir(d, { recursive: true });
      await chown(d, user.uid, user.gid);
    }
    await letThrough([opts.dir, opts.volume]);
    const streaming = fillArgs(opts.objects, opts.name) !== undefined;
    let fillPort: number;
    let fill: FillProcess | undefined;
    if (streaming) {
      // spec.fill: streaming: mirror-synth fill listens where nginx's own fill server would.
      if (conf.includes(FILL_LISTEN)) throw new Error('nginx.conf runs its own fill server beside mirror-synth fill');
      fill = await FillProcess.start({ ...opts, frontPort: port, extraArgs: opts.fillArgs });
      fillPort = fill.port;
    } else {
      fillPort = await reservePort();
      conf = replaceOnce(conf, FILL_LISTEN, `listen 127.0.0.1:${fillPort};`, 'nginx.conf');
    }
    conf = replaceOnce(conf, FILL, `server 127.0.0.1:${fillPort};`, 'nginx.conf');
    const logPort = opts.metricsLogPort ?? (await reservePort());
    conf = replaceOnce(conf, METRICS_LOG, `syslog:server=127.0.0.1:${logPort},`, 'nginx.conf');
    if (conf.includes(KEEPER_LOG)) {
      const keeperPort = opts.keeperLogPort ?? (await reservePort());
      conf = replaceOnce(conf, KEEPER_LOG, `syslog:server=127.0.0.1:${keeperPort},`, 'nginx.conf');
    }
    conf = conf.replaceAll(' /tmp/', ` ${join(opts.dir, 'tmp')}/`).replaceAll(` ${VOLUME}/`, ` ${opts.volume}/`);
    const configPath = join(opts.dir, 'nginx.conf');
    await writeFile(configPath, conf);
    const front = new FrontProcess(opts, port, metricsPort, configPath, user, fill);
    await front.spawn();
    return front;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async spawn(): Promise<void> {
    // nginx reopens /dev/stdout by name: give it a file the pod's user may open (a pipe or socket would not do).
    const log = await open(this.logFile, 'a');
    await log.chown(this.user.uid, this.user.gid);
    this.stderr = [];
    // The front container's command, with only the config path changed.
    const [binary, ...args] = frontCommand(this.opts.objects, this.opts.name).map((a) =>
      a.endsWith('/nginx.conf') ? this.configPath : a,
    );
    const child = spawnTracked(binary, args, {
      stdio: ['ignore', log.fd, 'pipe'],
      uid: this.user.uid,
      gid: this.user.gid,
    });
    await log.close();
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => this.stderr.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor(`nginx on ${this.url}`, async () => {
      if (child.exitCode !== null)
        throw new StopWaiting(`nginx exited (${child.exitCode}):\n${this.stderr.join('\n')}`);
      const res = await fetch(`${this.url}/v2/`).catch(() => undefined);
      return res ? true : undefined;
    });
  }

  /** nginx's error log lines (stderr) of the current process. */
  errors(): string[] {
    return [...this.stderr];
  }

  /** The access log so far. */
  async accessLog(): Promise<FrontLogLine[]> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FrontLogLine);
  }

  /** Access log lines so far: pass it to blobGets() to look at one step only. */
  async mark(): Promise<number> {
    return (await this.accessLog()).length;
  }

  /** Successful blob GETs the front answered since `mark`, by digest, with how it served them. */
  async blobGets(since = 0): Promise<FrontBlobGets> {
    let total = 0;
    let bytes = 0;
    const byCache: Record<string, number> = {};
    const byDigest = new Map<string, number>();
    for (const l of (await this.accessLog()).slice(since)) {
      if (l.method !== 'GET' || l.status !== 200) continue;
      const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(l.uri);
      if (!m) continue;
      total++;
      bytes += l.bytes;
      byCache[l.cache] = (byCache[l.cache] ?? 0) + 1;
      byDigest.set(m[1], (byDigest.get(m[1]) ?? 0) + 1);
    }
    return { total, bytes, byCache, byDigest };
  }

  /**
   * blobGets(since) once every digest of `digests` has been logged as often as it is listed there:
   * nginx writes a request's access log line when it finalizes the request, which can be after the
   * client read the last byte, so counting the moment a pull returns races (as RegistryProcess's
   * loggedBlobGets says of Distribution). On timeout, what was logged, for the caller's assertion.
   */
  async loggedBlobGets(digests: readonly string[], since = 0, timeoutMs = 30_000): Promise<FrontBlobGets> {
    return waitForDigests('the front', digests, () => this.blobGets(since), timeoutMs);
  }

  /**
   * A mark() past `n` requests for `uri` (whatever their status) logged since `since`: waits for
   * their lines, which nginx may write after the client saw the response end, so that a window
   * starting at the mark holds no late line of theirs.
   */
  async markAfter(uri: string, n: number, since = 0, timeoutMs = 30_000): Promise<number> {
    return waitFor(
      `the front to log ${n} request(s) for ${uri}`,
      async () => {
        const log = await this.accessLog();
        return log.slice(since).filter((l) => l.uri === uri).length >= n ? log.length : undefined;
      },
      timeoutMs,
    );
  }

  /** Run the synthesized readiness probe as the kubelet would; `ok` is its exit status 0. */
  async ready(): Promise<{ ok: boolean; output: string }> {
    let script = readinessScript(this.opts.objects, this.opts.name);
    script = replaceOnce(script, `df -Pk ${VOLUME} `, `df -Pk ${this.opts.volume} `, 'readiness probe');
    script = replaceOnce(script, 'http://127.0.0.1:5000/', `http://${this.host}/`, 'readiness probe');
    try {
      const { stdout, stderr } = await execFileAsync('sh', ['-c', script], { timeout: 10_000 });
      return { ok: true, output: stdout + stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      return { ok: false, output: (e.stdout ?? '') + (e.stderr ?? '') || e.message };
    }
  }

  async stop(): Promise<void> {
    await this.stopNginx();
    await this.fill?.stop();
  }

  /** The container killed: nginx's fast shutdown (SIGTERM: connections dropped at once) and the fill SIGKILLed. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child && this.running) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await this.fill?.kill();
  }

  private async stopNginx(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGQUIT'); // graceful: finish serving, then exit
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.fill?.restart();
    await this.spawn();
  }
}
