// CNCF Distribution (`registry`) processes for e2e tests and benchmarks: an authenticated
// TLS "upstream" (htpasswd + a throw-away CA made with openssl) and mirrors running the
// config.yml that mirror-synth synthesizes, each on a free 127.0.0.1 port.
//
// Distribution writes its application log (JSON with `log.formatter: json`) to stderr and an
// Apache "combined" access log to stdout. Both are kept in memory; `requests()` reads the
// "response completed" lines, which carry method, URI, status and bytes written, so a test can
// count what a registry served without scraping metrics.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { parse as parseYaml } from 'yaml';

import {
  configMapData,
  containerEnv,
  credentialsSecretName,
  type ManifestObject,
  type SecretData,
} from '../primitives/manifest.js';
import { reservePort } from '../primitives/ports.js';
import { spawnTracked } from '../primitives/processes.js';
import { makeTestCA, type TestCA, writeHtpasswd } from '../primitives/tls.js';
import { StopWaiting, waitFor, waitForDigests } from '../primitives/wait.js';
import { FrontProcess } from './front.js';
import { FrontMetrics } from './front-metrics.js';

// ---------------------------------------------------------------------------------------------
// Registry processes

/** One JSON line of Distribution's application log. */
export type RegistryLogLine = Record<string, unknown> & { msg?: string; level?: string };

/** One request as the registry logged it ("response completed"). */
export interface ServedRequest {
  readonly method: string;
  readonly uri: string;
  readonly status: number;
  /** Response body bytes written. */
  readonly written: number;
  readonly user?: string;
  readonly userAgent: string;
}

export interface RegistryOptions {
  /** Path of the `registry` binary (ensureTool('registry')). */
  readonly binary: string;
  /** config.yml to run as-is; only address, storage and debug paths are overridden through env. */
  readonly config: string;
  /** Work dir: config.yml, storage (`data/`) and the captured logs go here. */
  readonly dir: string;
  /** Extra environment (REGISTRY_PROXY_USERNAME, SSL_CERT_FILE ...). Nothing else is inherited but PATH/HOME. */
  readonly env?: Readonly<Record<string, string>>;
  /** Serve TLS with this certificate. @default - plain HTTP */
  readonly tls?: Pick<TestCA, 'cert' | 'key'>;
  /** Name for log files and errors. @default 'registry' */
  readonly name?: string;
  /** Listen port. @default - a free port */
  readonly port?: number;
  /** Wait until /v2/ answers. @default true */
  readonly waitReady?: boolean;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class RegistryProcess {
  /** `127.0.0.1:<port>`: the registry host as image references name it. */
  readonly host: string;
  /** `http(s)://127.0.0.1:<port>`. */
  readonly url: string;
  readonly debugUrl: string;
  /** Application log lines (JSON), across restarts. */
  readonly logs: RegistryLogLine[] = [];
  /** Lines on stderr that are not JSON (panics, Go runtime errors). */
  readonly rawErrors: string[] = [];
  /** Access log lines (stdout, combined format). */
  readonly accessLog: string[] = [];
  private child?: ChildProcess;
  private exitPromise?: Promise<Exit>;
  private logFile?: WriteStream;
  private logsAtSpawn = 0;
  private rawAtSpawn = 0;

  private constructor(
    private opts: RegistryOptions,
    readonly port: number,
    readonly debugPort: number,
  ) {
    this.host = `127.0.0.1:${port}`;
    this.url = `${opts.tls ? 'https' : 'http'}://${this.host}`;
    this.debugUrl = `http://127.0.0.1:${debugPort}`;
  }

  static async start(opts: RegistryOptions): Promise<RegistryProcess> {
    await mkdir(join(opts.dir, 'data'), { recursive: true });
    await writeFile(join(opts.dir, 'config.yml'), opts.config);
    const reg = new RegistryProcess(opts, opts.port ?? (await reservePort()), await reservePort());
    await reg.spawn();
    return reg;
  }

  get name(): string {
    return this.opts.name ?? 'registry';
  }

  /** The storage root (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY). */
  get dataDir(): string {
    return join(this.opts.dir, 'data');
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The current process's pid (to stop it with SIGSTOP, as a hung registry). */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  /** Resolves when the current process exits (also after stop()). */
  get exited(): Promise<Exit> {
    return this.exitPromise ?? Promise.resolve({ code: null, signal: null });
  }

  /** The environment the process runs with: what the caller gave plus the address/path overrides. */
  private environment(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      ...this.opts.env,
      REGISTRY_HTTP_ADDR: this.host,
      REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${this.debugPort}`,
    };
    // A config with a bucket (s3) keeps it: a second storage driver from env would be refused.
    const storage = (parseYaml(this.opts.config) as { storage?: Record<string, unknown> } | null)?.storage;
    if (storage?.filesystem !== undefined) env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY = join(this.opts.dir, 'data');
    if (this.opts.tls) {
      env.REGISTRY_HTTP_TLS_CERTIFICATE = this.opts.tls.cert;
      env.REGISTRY_HTTP_TLS_KEY = this.opts.tls.key;
    }
    return env;
  }

  private async spawn(): Promise<void> {
    this.logFile ??= createWriteStream(join(this.opts.dir, 'registry.log'), { flags: 'a' });
    const logFile = this.logFile;
    this.logsAtSpawn = this.logs.length;
    this.rawAtSpawn = this.rawErrors.length;
    const child = spawnTracked(this.opts.binary, ['serve', join(this.opts.dir, 'config.yml')], {
      env: this.environment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // Lines can still arrive after 'exit' (and so after dispose() ended the file): keep them in
    // memory only then, as a write after end would be an uncaught error.
    const write = (line: string) => {
      if (!logFile.writableEnded) logFile.write(line + '\n');
    };
    createInterface({ input: child.stderr! }).on('line', (line) => {
      write(line);
      try {
        this.logs.push(JSON.parse(line) as RegistryLogLine);
      } catch {
        this.rawErrors.push(line);
      }
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      write(line);
      this.accessLog.push(line);
    });
    if (this.opts.waitReady ?? true) await this.waitReady();
  }

  /** Wait until GET /v2/ answers (any status: 401 from an authenticated registry is ready). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    let gone: Exit | undefined;
    void this.exited.then((e) => (gone = e));
    const ca = this.opts.tls ? await readFile(caOf(this.opts)) : undefined;
    await waitFor(
      `${this.name} on ${this.url} to answer /v2/`,
      async () => {
        if (gone) {
          // An exit is final: say so at once rather than "timed out".
          throw new StopWaiting(
            `${this.name} exited (${gone.signal ?? `code ${gone.code}`}) before answering /v2/:\n${this.tail()}`,
          );
        }
        return (await probe(`${this.url}/v2/`, ca)) > 0 ? true : undefined;
      },
      timeoutMs,
    );
  }

  /** The last log lines of the current process and the start of any non-JSON output (a panic), for errors. */
  tail(n = 10): string {
    const json = this.logs.slice(Math.max(this.logsAtSpawn, this.logs.length - n)).map((l) => JSON.stringify(l));
    return [...json, ...this.rawErrors.slice(this.rawAtSpawn, this.rawAtSpawn + n)].join('\n');
  }

  /** Non-JSON stderr of the current (or last) process: where a Go panic shows. */
  rawOutput(): string {
    return this.rawErrors.slice(this.rawAtSpawn).join('\n');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call when stopped. */
  async stop(graceMs = 10_000): Promise<Exit> {
    const child = this.child;
    if (!child || !this.running) return this.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Start the same registry again (same port, storage and logs); `env` replaces the extra environment. */
  async restart(changes: { env?: Readonly<Record<string, string>>; waitReady?: boolean } = {}): Promise<void> {
    await this.stop();
    this.opts = { ...this.opts, ...(changes.env ? { env: changes.env } : {}), waitReady: changes.waitReady ?? true };
    await this.spawn();
  }

  /** Stop and close the log file. */
  async dispose(): Promise<void> {
    await this.stop();
    await new Promise<void>((resolve) => (this.logFile ? this.logFile.end(resolve) : resolve()));
    this.logFile = undefined;
  }

  /** Every request the registry logged as completed since `mark` (or ever), oldest first. */
  requests(since = 0): ServedRequest[] {
    return this.logs
      .slice(since)
      .filter((l) => l.msg === 'response completed')
      .map((l) => ({
        method: String(l['http.request.method']),
        uri: String(l['http.request.uri']),
        status: Number(l['http.response.status']),
        written: Number(l['http.response.written'] ?? 0),
        user: typeof l['auth.user.name'] === 'string' ? l['auth.user.name'] : undefined,
        userAgent: typeof l['http.request.useragent'] === 'string' ? l['http.request.useragent'] : '',
      }));
  }

  /** Number of log lines so far: pass it to blobGets()/requests() windows to look at one step only. */
  mark(): number {
    return this.logs.length;
  }

  /**
   * Successful blob GETs served since `mark` (or ever), by digest, with bytes written;
   * `userAgent` keeps only requests whose User-Agent contains it (e.g. 'containerd').
   */
  blobGets(since = 0, userAgent?: string): BlobGets {
    const byDigest = new Map<string, number>();
    let bytes = 0;
    const lines = this.logs.slice(since).filter((l) => l.msg === 'response completed');
    for (const l of lines) {
      if (
        userAgent !== undefined &&
        !(typeof l['http.request.useragent'] === 'string' && l['http.request.useragent'].includes(userAgent))
      )
        continue;
      if (l['http.request.method'] !== 'GET') continue;
      const status = Number(l['http.response.status']);
      if (status < 200 || status >= 300) continue;
      const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(String(l['http.request.uri']));
      if (!m) continue;
      byDigest.set(m[1], (byDigest.get(m[1]) ?? 0) + 1);
      bytes += Number(l['http.response.written'] ?? 0);
    }
    return { byDigest, bytes, total: [...byDigest.values()].reduce((a, b) => a + b, 0) };
  }

  /**
   * blobGets(since, userAgent) once every digest of `digests` has been logged as often as it is
   * listed there: a client can have read the last byte of a blob before the registry writes that
   * request's log line, and the line reaches this process through a pipe. Counting the moment a
   * pull returns raced. On timeout, what was logged (for the caller's assertion to show).
   */
  async loggedBlobGets(
    digests: readonly string[],
    since = 0,
    userAgent?: string,
    timeoutMs = 30_000,
  ): Promise<BlobGets> {
    return waitForDigests(this.name, digests, () => this.blobGets(since, userAgent), timeoutMs);
  }

  /** Log lines since `mark` whose message or any field contains `text`. */
  logsContaining(text: string, since = 0): RegistryLogLine[] {
    return this.logs.slice(since).filter((l) => JSON.stringify(l).includes(text));
  }

  /** Everything the process printed (JSON log, raw stderr, access log) as one string. */
  allOutput(): string {
    return [...this.logs.map((l) => JSON.stringify(l)), ...this.rawErrors, ...this.accessLog].join('\n');
  }

  /** The Prometheus text from the debug server (config must enable `http.debug.prometheus`). */
  async metrics(): Promise<string> {
    return getText(`${this.debugUrl}/metrics`);
  }

  /**
   * Sum of a Prometheus metric's series whose labels include `labels`, e.g.
   * `metric('registry_http_requests_total', { handler: 'blob', method: 'get', code: '200' })`.
   */
  async metric(name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
    let sum = 0;
    for (const line of (await this.metrics()).split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries(
        [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
      );
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
    }
    return sum;
  }
}

export interface BlobGets {
  readonly byDigest: ReadonlyMap<string, number>;
  /** Total response bytes of those GETs. */
  readonly bytes: number;
  readonly total: number;
}

function caOf(opts: RegistryOptions): string {
  const ca = opts.env?.SSL_CERT_FILE ?? (opts.tls as Partial<TestCA> | undefined)?.caCert;
  if (!ca) throw new Error(`${opts.name ?? 'registry'}: TLS needs tls.caCert or env SSL_CERT_FILE to probe it`);
  return ca;
}

/** HTTP status of a GET, or 0 if nothing answers. */
async function probe(url: string, ca?: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', ca, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// The upstream

export interface UpstreamOptions {
  readonly binary: string;
  readonly dir: string;
  /** With `password`, the htpasswd user every request must authenticate as. @default - a public upstream: anyone may pull and push */
  readonly username?: string;
  readonly password?: string;
  /** @default - a new CA in `<dir>/tls` */
  readonly ca?: TestCA;
}

export interface Upstream extends RegistryProcess {
  readonly ca: TestCA;
  readonly username: string | undefined;
  /** The password the upstream accepts now. */
  readonly password: string | undefined;
  /** Change the accepted password (new htpasswd, restart on the same port, same content). */
  setPassword(password: string): Promise<void>;
}

/**
 * The "remote" registry: Distribution with TLS (a test CA) and htpasswd basic auth (or none: a
 * public registry), Prometheus metrics on its debug port and JSON logs. It stands for quay.io or a
 * private registry.
 */
export async function startUpstream(opts: UpstreamOptions): Promise<Upstream> {
  const ca = opts.ca ?? (await makeTestCA(join(opts.dir, 'tls')));
  const htpasswd = join(opts.dir, 'htpasswd');
  await mkdir(opts.dir, { recursive: true });
  const { username, password } = opts;
  const authenticated = username !== undefined && password !== undefined;
  if (authenticated) await writeHtpasswd(htpasswd, username, password);
  const config = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: json',
    '  fields: {service: upstream}',
    'storage:',
    '  filesystem: {rootdirectory: /var/lib/registry}',
    '  delete: {enabled: true}',
    '  maintenance: {uploadpurging: {enabled: false}}',
    'http:',
    '  addr: :5000',
    '  debug:',
    '    addr: :5001',
    '    prometheus: {enabled: true, path: /metrics}',
    ...(authenticated ? ['auth:', '  htpasswd:', '    realm: upstream', `    path: ${htpasswd}`] : []),
    '',
  ].join('\n');
  const reg = await RegistryProcess.start({
    binary: opts.binary,
    config,
    dir: opts.dir,
    tls: ca,
    name: 'upstream',
    // Distribution v3 exports OpenTelemetry traces to localhost:4318 unless told not to.
    env: { SSL_CERT_FILE: ca.caCert, OTEL_TRACES_EXPORTER: 'none' },
  });
  const upstream = Object.assign(reg, {
    ca,
    username,
    password,
    async setPassword(password: string): Promise<void> {
      if (username === undefined) throw new Error('a public upstream has no password to change');
      await writeHtpasswd(htpasswd, username, password);
      upstream.password = password;
      await reg.restart();
    },
  });
  return upstream;
}

/** Remove a directory tree synchronously (for afterAll hooks that must not leave temp dirs). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Running what mirror-synth synthesized

export interface SynthesizedMirrorOptions {
  readonly binary: string;
  readonly dir: string;
  /** The mirror's name (objects are registry-mirror-<name>...). */
  readonly name: string;
  readonly objects: readonly ManifestObject[];
  /** The content of the Secrets the pod mounts, by name. */
  readonly secrets?: SecretData;
  /**
   * CA file for the upstream's test certificate (SSL_CERT_FILE). The only environment the
   * test adds beyond address/storage/path overrides: a real upstream has a publicly trusted certificate.
   */
  readonly upstreamCaFile?: string;
  /** The front's port. @default - a free port */
  readonly port?: number;
  /** Run the front (nginx, and mtail for its metrics) before Distribution, as the pod does. @default true */
  readonly front?: boolean;
  /** This replica's index (its pod name's), for spec.fill streaming. @default 0 */
  readonly replica?: number;
  /** Every replica's front (host:port) by index, for spec.fill streaming. @default - this one alone */
  readonly peers?: readonly string[];
  /** spec.fill streaming: options the test adds after the fill container's own. @default none */
  readonly fillArgs?: readonly string[];
  /** Where the front tells the keeper what it served (test/support/keeper.ts). @default - a free port nothing listens on */
  readonly keeperLogPort?: number;
}

/**
 * A synthesized cache pod, run for real: the front (Debian's nginx with the ConfigMap's
 * nginx.conf, see front.ts) on `host`, and Distribution behind it with the ConfigMap's config.yml
 * and the registry container's env. Overridden for the test, and nothing else: addresses,
 * storage dir, and two paths through env (REGISTRY_PROXY_EXEC_COMMAND: the ConfigMap's
 * credential helper written to the work dir; CREDENTIALS_DIR: the Secret's files there, as the
 * kubelet mounts them). Both share one volume dir, as the containers share the PVC.
 */
export class SynthesizedMirror {
  private constructor(
    private readonly opts: SynthesizedMirrorOptions,
    /** Distribution, behind the front. */
    readonly distribution: RegistryProcess,
    /** The front nodes pull from; undefined with `front: false`. */
    readonly front: FrontProcess | undefined,
    /** The front's metrics (mtail); undefined with `front: false`. */
    readonly frontMetrics: FrontMetrics | undefined,
  ) {}

  static async start(opts: SynthesizedMirrorOptions): Promise<SynthesizedMirror> {
    const distDir = join(opts.dir, 'distribution');
    await mkdir(distDir, { recursive: true });
    await writeSecretFiles(opts);
    const distribution = await RegistryProcess.start({
      binary: opts.binary,
      config: configMapData(opts.objects, `registry-mirror-${opts.name}-config`, 'config.yml'),
      dir: distDir,
      env: await mirrorEnv(opts),
      name: `mirror ${opts.name}`,
    });
    if (opts.front === false) return new SynthesizedMirror(opts, distribution, undefined, undefined);
    const frontMetrics = await FrontMetrics.start({
      objects: opts.objects,
      name: opts.name,
      dir: join(opts.dir, 'front-metrics'),
    });
    const front = await FrontProcess.start({
      objects: opts.objects,
      name: opts.name,
      dir: join(opts.dir, 'front'),
      volume: join(distDir, 'data'),
      distributionPort: distribution.port,
      distributionDebugPort: distribution.debugPort,
      port: opts.port,
      metricsLogPort: frontMetrics.logPort,
      ...(opts.replica !== undefined ? { replica: opts.replica } : {}),
      ...(opts.peers ? { peers: opts.peers } : {}),
      ...(opts.fillArgs ? { fillArgs: opts.fillArgs } : {}),
      ...(opts.keeperLogPort !== undefined ? { keeperLogPort: opts.keeperLogPort } : {}),
    });
    return new SynthesizedMirror(opts, distribution, front, frontMetrics);
  }

  /** What nodes talk to: the front, or Distribution itself without one. */
  get port(): number {
    return this.front?.port ?? this.distribution.port;
  }
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }
  get url(): string {
    return `http://${this.host}`;
  }

  /** Replace the mounted Secret's files, as the kubelet does when the Secret changes. */
  async updateSecret(secrets: SecretData): Promise<void> {
    await writeSecretFiles({ ...this.opts, secrets });
  }

  async stop(): Promise<void> {
    await this.front?.stop();
    await this.frontMetrics?.stop();
    await this.distribution.stop();
  }

  /** The pod killed mid-work: nothing finishes what it was serving. */
  async kill(): Promise<void> {
    await Promise.all([this.front?.kill(), this.frontMetrics?.stop(), this.distribution.stop(0)]);
  }

  /** Stop and start both containers again (same ports, volume and Secret files), as a pod restart does. */
  async restart(): Promise<void> {
    await this.stop();
    await this.distribution.restart({ env: await mirrorEnv(this.opts) });
    await this.frontMetrics?.restart();
    await this.front?.restart();
  }

  async dispose(): Promise<void> {
    await this.front?.stop();
    await this.frontMetrics?.stop();
    await this.distribution.dispose();
  }
}

function credentialsDir(opts: Pick<SynthesizedMirrorOptions, 'dir'>): string {
  return join(opts.dir, 'credentials');
}

async function writeSecretFiles(opts: SynthesizedMirrorOptions): Promise<void> {
  const secret = credentialsSecretName(opts.objects, opts.name);
  if (secret === undefined) return;
  const values = opts.secrets?.[secret];
  if (values === undefined)
    throw new Error(`the cache pod mounts Secret ${secret}, which is not in the test's secrets`);
  const dir = credentialsDir(opts);
  await mkdir(dir, { recursive: true });
  // The kubelet swaps a Secret volume's files at once; so do we (write beside, rename over).
  for (const [key, value] of Object.entries(values)) {
    await writeFile(join(dir, `.${key}.new`), value, { mode: 0o440 });
    await rename(join(dir, `.${key}.new`), join(dir, key));
  }
}

/** The registry container's env, with the helper and Secret paths of the test, plus the test CA. */
export async function mirrorEnv(
  opts: Pick<SynthesizedMirrorOptions, 'name' | 'objects' | 'upstreamCaFile' | 'dir' | 'secrets'>,
): Promise<Record<string, string>> {
  const env = containerEnv(opts.objects, 'StatefulSet', `registry-mirror-${opts.name}`, 'registry', opts.secrets);
  const config = configMapData(opts.objects, `registry-mirror-${opts.name}-config`, 'config.yml');
  const helper = /^\s+command: (\S+credential-helper\.sh)$/m.exec(config)?.[1];
  if (helper !== undefined) {
    const file = join(opts.dir, 'credential-helper.sh');
    await writeFile(
      file,
      configMapData(opts.objects, `registry-mirror-${opts.name}-config`, helper.split('/').pop()!),
      { mode: 0o755 },
    );
    env.REGISTRY_PROXY_EXEC_COMMAND = file;
    // Set only for a mirror with credentials; without, the helper answers with none.
    if (env.CREDENTIALS_DIR !== undefined) env.CREDENTIALS_DIR = credentialsDir(opts);
  }
  if (opts.upstreamCaFile) env.SSL_CERT_FILE = opts.upstreamCaFile;
  return env;
}

/** Start a synthesized cache pod (front and Distribution); see SynthesizedMirror. */
export async function startSynthesizedMirror(opts: SynthesizedMirrorOptions): Promise<SynthesizedMirror> {
  return SynthesizedMirror.start(opts);
}
