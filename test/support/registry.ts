// CNCF Distribution (`registry`) processes for e2e tests and benchmarks: an authenticated
// TLS "upstream" (htpasswd + a throw-away CA made with openssl) and mirrors running the
// config.yml that mirror-synth synthesizes, each on a free 127.0.0.1 port.
//
// Distribution writes its application log (JSON with `log.formatter: json`) to stderr and an
// Apache "combined" access log to stdout. Both are kept in memory; `requests()` reads the
// "response completed" lines, which carry method, URI, status and bytes written, so a test can
// count what a registry served without scraping metrics.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Child processes still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** Spawn a long-running helper process that is SIGKILLed if the test process exits first. */
export function spawnTracked(...args: Parameters<typeof spawn>): ChildProcess {
  const child = spawn(...args);
  track(child);
  return child;
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Poll `check` until it returns a value other than undefined, or throw after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// TLS

export interface TestCA {
  /** PEM of the self-signed CA: give it to clients as SSL_CERT_FILE or hosts.toml `ca`. */
  readonly caCert: string;
  /** Server certificate for 127.0.0.1 and localhost, signed by the CA. */
  readonly cert: string;
  readonly key: string;
}

/** A throw-away CA and a server certificate for 127.0.0.1/localhost, made with openssl in `dir`. */
export async function makeTestCA(dir: string): Promise<TestCA> {
  await mkdir(dir, { recursive: true });
  const p = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=mirror-synth test CA']);
  await openssl(['req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(
    p('server.ext'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await openssl([
    'x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('server.pem'), '-days', '2', '-extfile', p('server.ext'),
  ]);
  return { caCert: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/** An htpasswd file with one bcrypt entry (Distribution accepts bcrypt only), made with `htpasswd -B`. */
export async function writeHtpasswd(file: string, username: string, password: string): Promise<void> {
  // -i reads the password from stdin so it never shows in a process list.
  const child = spawn('htpasswd', ['-niB', username], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end(password + '\n');
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`htpasswd failed (exit ${code}): ${err}`);
  await writeFile(file, out.trim() + '\n', { mode: 0o600 });
}

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
    const reg = new RegistryProcess(opts, opts.port ?? (await freePort()), await freePort());
    await reg.spawn();
    return reg;
  }

  get name(): string {
    return this.opts.name ?? 'registry';
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
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
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(this.opts.dir, 'data'),
      REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${this.debugPort}`,
    };
    if (this.opts.tls) {
      env.REGISTRY_HTTP_TLS_CERTIFICATE = this.opts.tls.cert;
      env.REGISTRY_HTTP_TLS_KEY = this.opts.tls.key;
    }
    return env;
  }

  private async spawn(): Promise<void> {
    this.logFile ??= createWriteStream(join(this.opts.dir, 'registry.log'), { flags: 'a' });
    const logFile = this.logFile;
    const child = spawnTracked(this.opts.binary, ['serve', join(this.opts.dir, 'config.yml')], {
      env: this.environment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      logFile.write(line + '\n');
      try {
        this.logs.push(JSON.parse(line) as RegistryLogLine);
      } catch {
        this.rawErrors.push(line);
      }
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      logFile.write(line + '\n');
      this.accessLog.push(line);
    });
    if (this.opts.waitReady ?? true) await this.waitReady();
  }

  /** Wait until GET /v2/ answers (any status: 401 from an authenticated registry is ready). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const exited = this.exited.then((e) => e);
    let gone: Exit | undefined;
    void exited.then((e) => (gone = e));
    await waitFor(
      `${this.name} on ${this.url} to answer /v2/`,
      async () => {
        if (gone) {
          throw new Error(
            `${this.name} exited (${gone.signal ?? `code ${gone.code}`}) before answering:\n${this.tail()}`,
          );
        }
        const status = await probe(`${this.url}/v2/`, this.opts.tls ? await readFile(caOf(this.opts)) : undefined);
        return status > 0 ? true : undefined;
      },
      timeoutMs,
    ).catch((err: Error) => {
      // An exit is final: say so rather than "timed out".
      if (gone) throw new Error(`${this.name} exited (${gone.signal ?? `code ${gone.code}`}) before answering /v2/:\n${this.tail()}`);
      throw err;
    });
  }

  /** The last lines the process printed, for error messages. */
  tail(n = 20): string {
    const lines = [...this.logs.slice(-n).map((l) => JSON.stringify(l)), ...this.rawErrors.slice(-n)];
    return lines.slice(-n).join('\n');
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

  /** Every request the registry logged as completed, oldest first. */
  requests(): ServedRequest[] {
    return this.logs
      .filter((l) => l.msg === 'response completed')
      .map((l) => ({
        method: String(l['http.request.method']),
        uri: String(l['http.request.uri']),
        status: Number(l['http.response.status']),
        written: Number(l['http.response.written'] ?? 0),
        user: typeof l['auth.user.name'] === 'string' ? l['auth.user.name'] : undefined,
      }));
  }

  /** Number of log lines so far: pass it to blobGets()/requests() windows to look at one step only. */
  mark(): number {
    return this.logs.length;
  }

  /** Successful blob GETs served since `mark` (or ever), by digest, with bytes written. */
  blobGets(since = 0): BlobGets {
    const byDigest = new Map<string, number>();
    let bytes = 0;
    const lines = this.logs.slice(since).filter((l) => l.msg === 'response completed');
    for (const l of lines) {
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
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET', ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
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
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: ${res.statusCode}`))));
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
  readonly username: string;
  readonly password: string;
  /** @default - a new CA in `<dir>/tls` */
  readonly ca?: TestCA;
}

export interface Upstream extends RegistryProcess {
  readonly ca: TestCA;
  readonly username: string;
  readonly password: string;
}

/**
 * The "remote" registry: Distribution with TLS (a test CA) and htpasswd basic auth, Prometheus
 * metrics on its debug port and JSON logs. It stands for quay.io or a private registry.
 */
export async function startUpstream(opts: UpstreamOptions): Promise<Upstream> {
  const ca = opts.ca ?? (await makeTestCA(join(opts.dir, 'tls')));
  const htpasswd = join(opts.dir, 'htpasswd');
  await mkdir(opts.dir, { recursive: true });
  await writeHtpasswd(htpasswd, opts.username, opts.password);
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
    'auth:',
    '  htpasswd:',
    '    realm: upstream',
    `    path: ${htpasswd}`,
    '',
  ].join('\n');
  const reg = await RegistryProcess.start({
    binary: opts.binary,
    config,
    dir: opts.dir,
    tls: ca,
    name: 'upstream',
    env: { SSL_CERT_FILE: ca.caCert },
  });
  return Object.assign(reg, { ca, username: opts.username, password: opts.password }) as Upstream;
}

/** Remove a directory tree synchronously (for afterAll hooks that must not leave temp dirs). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
