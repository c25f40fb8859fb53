// Fronts benchmark: off-the-shelf caching reverse proxies side by side, for one big immutable
// blob (issue 16, "streaming coalescing at any size"). Everything runs on 127.0.0.1: an upstream
// written here (a Node HTTP server sending a deterministic pseudo-random blob at a capped total
// rate, counting what it sends per URL) and, one after another, each proxy as a foreground child
// with its own temp config and cache. Fixed counts: it always stops by itself.
//
//   node bench/fronts.mjs [--blob-mib 1024] [--rate-mib 64] [--concurrency 20]
//                         [--fronts none,nginx,varnish,squid,trafficserver] [--json]
//
// For each front ("none" = straight to the upstream):
//   (a) one cold GET alone: seconds, and its ratio to the direct one;
//   (c) a warm GET of that same URL;
//   (b) N concurrent cold GETs of a new URL: upstream bytes / blob size, each client's time to
//       first body byte and to completion (from the common start), firstByteSpreadSeconds
//       (max - min first byte), p50/p99 completion, p99 / single cold, and whether every client
//       got exactly the blob (length and sha256);
//   (d) the same N GETs again, warm: the p99 this machine manages for N clients when nothing is
//       cold (on a small machine the bench's own receiving and hashing bound it, cold or warm).
// Proxies: Debian's nginx (proxy_cache + proxy_cache_lock, as the synthesized front's digests
// location), Varnish (streams a miss to the requests its waiting list coalesced), Squid
// (collapsed_forwarding), Apache Traffic Server (read-while-writer). Needs root and the packages
// in scripts/test-deps.txt (nginx) and scripts/bench-deps.txt.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { releasePorts, reservePort } from '../test/support/primitives/ports.js';
import { hasExited, spawnTracked, terminate } from '../test/support/primitives/processes.js';
import { writeResults } from './results.js';

export const FRONTS = ['none', 'nginx', 'varnish', 'squid', 'trafficserver'] as const;
export type FrontName = (typeof FRONTS)[number];

export interface FrontsOptions {
  readonly blobMiB: number;
  /** Cap on the upstream's sending rate, MiB/s, all connections together (0: none). */
  readonly rateMiB: number;
  readonly concurrency: number;
  readonly fronts: readonly FrontName[];
  /** Leave out "none"'s concurrent GETs (N copies through the cap: N times a single pull). @default false */
  readonly skipDirectBurst?: boolean;
  /** Print the summary (FrontsSummary) as one JSON line at the end. @default false */
  readonly json?: boolean;
  /** Where to write the JSON results. @default - not written */
  readonly resultsDir?: string;
}

const MiB = 1024 * 1024;
const CHUNK = 128 * 1024;

// ---------------------------------------------------------------- the upstream

/** The blob at /blobs/<name>: AES-128-CTR keystream under a key from the name (fast, deterministic, distinct per name). */
function blobCipher(name: string) {
  const key = createHash('sha256').update(`mirror-synth bench/fronts ${name}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}

function blobDigest(name: string, size: number): string {
  const cipher = blobCipher(name);
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(4 * MiB);
  for (let off = 0; off < size; off += zeros.length)
    hash.update(cipher.update(zeros.subarray(0, Math.min(zeros.length, size - off))));
  return hash.digest('hex');
}

interface Sent {
  requests: number;
  bytes: number;
}

/** Serves /blobs/<name> (the blob, cacheable for a year) and /ping (not cacheable); caps its total sending rate. */
class BlobUpstream {
  readonly sent = new Map<string, Sent>();
  private available = 0;
  private last = performance.now();
  private readonly queue: { n: number; resolve: () => void }[] = [];
  private pumping = false;
  private readonly zeros = Buffer.alloc(CHUNK);

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly size: number,
    private readonly bytesPerSecond: number,
  ) {}

  static async start(size: number, bytesPerSecond: number): Promise<BlobUpstream> {
    const port = await reservePort();
    const self: { up?: BlobUpstream } = {};
    const server = createServer((req, res) => void self.up!.handle(req, res));
    server.keepAliveTimeout = 120_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    self.up = new BlobUpstream(server, port, size, bytesPerSecond);
    return self.up;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    releasePorts([this.port]);
  }

  /**
   * Wait until `n` bytes may pass: a token bucket holding at most 50 ms of bytes, shared by every
   * response and granted first come, first served (each response queues again after each chunk,
   * so concurrent responses share the rate evenly).
   */
  private take(n: number): Promise<void> {
    if (!this.bytesPerSecond) return Promise.resolve();
    return new Promise((resolve) => {
      this.queue.push({ n, resolve });
      if (!this.pumping) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    const rate = this.bytesPerSecond;
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      const want = Math.min(next.n, rate / 20);
      for (;;) {
        const now = performance.now();
        this.available = Math.min(rate / 20, this.available + ((now - this.last) / 1000) * rate);
        this.last = now;
        if (this.available >= want) break;
        await sleep(Math.max(1, ((want - this.available) / rate) * 1000));
      }
      this.available -= next.n;
      next.resolve();
    }
    this.pumping = false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url === '/ping') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('ok\n');
      return;
    }
    const m = /^\/blobs\/([a-z0-9-]+)$/.exec(req.url ?? '');
    if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(m ? 405 : 404, { 'cache-control': 'no-store' }).end();
      return;
    }
    const name = m[1];
    const sent = this.sent.get(name) ?? { requests: 0, bytes: 0 };
    this.sent.set(name, sent);
    sent.requests++;
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(this.size),
      'cache-control': 'public, max-age=31536000, immutable',
      etag: `"${name}"`,
      'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cipher = blobCipher(name);
    let closed = false;
    res.once('close', () => (closed = true));
    for (let off = 0; off < this.size && !closed;) {
      const n = Math.min(CHUNK, this.size - off);
      await this.take(n);
      if (closed) break;
      const ok = res.write(cipher.update(n === CHUNK ? this.zeros : this.zeros.subarray(0, n)));
      off += n;
      sent.bytes += n;
      if (!ok && !closed) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    if (!closed) res.end();
  }
}

// ---------------------------------------------------------------- clients

interface Get {
  readonly ok: boolean;
  readonly status: number;
  readonly bytes: number;
  /** From the common start, ms; NaN when no byte came. */
  readonly firstByteMs: number;
  readonly doneMs: number;
  readonly error?: string;
}

/** GET `url` on a new connection, hashing the body; times relative to `t0` (performance.now()). */
function get(url: string, t0: number, size: number, digest: string, timeoutMs: number): Promise<Get> {
  return new Promise((resolve) => {
    let status = 0;
    let bytes = 0;
    let firstByteMs = NaN;
    const hash = createHash('sha256');
    let settled = false;
    const finish = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const doneMs = performance.now() - t0;
      let err = error;
      if (!err && status !== 200) err = `status ${status}`;
      if (!err && bytes !== size) err = `${bytes} bytes, expected ${size}`;
      if (!err && hash.digest('hex') !== digest) err = 'sha256 mismatch';
      resolve({ ok: !err, status, bytes, firstByteMs, doneMs, error: err });
    };
    const req = request(url, { agent: false, headers: { 'user-agent': 'mirror-synth-bench-fronts' } }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0) firstByteMs = performance.now() - t0;
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('end', () => finish());
      res.on('error', (e) => finish(e.message));
      res.on('aborted', () => finish('aborted'));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(`timed out after ${timeoutMs / 1000} s`);
    }, timeoutMs);
    req.on('error', (e) => finish(e.message));
    req.end();
  });
}

/** One GET for a client worker. */
interface Job {
  readonly url: string;
  readonly size: number;
  readonly digest: string;
  readonly timeoutMs: number;
}

/**
 * The clients run in worker threads (one per core), so receiving and hashing N streams is not
 * squeezed onto the thread that also runs the upstream. A batch starts at a common instant; times
 * come back relative to it.
 */
class ClientPool {
  private readonly workers: Worker[];
  private nextId = 0;
  private readonly pending = new Map<number, { results: Get[][]; left: number; resolve: (r: Get[][]) => void }>();

  constructor(size = Math.max(1, Math.min(4, availableParallelism()))) {
    this.workers = Array.from({ length: size }, (_, w) => {
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { role: 'fronts-client' } });
      worker.on('message', (m: { id: number; results: Get[] }) => {
        const p = this.pending.get(m.id)!;
        p.results[w] = m.results;
        if (--p.left === 0) {
          this.pending.delete(m.id);
          p.resolve(p.results);
        }
      });
      worker.on('error', (e) => {
        throw e;
      });
      return worker;
    });
  }

  /** Run the jobs concurrently, spread over the workers; results in the jobs' order. */
  async run(jobs: readonly Job[]): Promise<Get[]> {
    const id = this.nextId++;
    const shares = this.workers.map((_, w) => jobs.filter((_, i) => i % this.workers.length === w));
    const results = await new Promise<Get[][]>((resolve) => {
      this.pending.set(id, { results: [], left: this.workers.length, resolve });
      // Start a little ahead so every worker has the message before the common start.
      const startAt = performance.timeOrigin + performance.now() + 20;
      this.workers.forEach((worker, w) => worker.postMessage({ id, jobs: shares[w], startAt }));
    });
    return jobs.map((_, i) => results[i % this.workers.length][Math.floor(i / this.workers.length)]);
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'fronts-client') {
  parentPort!.on('message', (m: { id: number; jobs: Job[]; startAt: number }) => {
    void (async () => {
      const t0 = m.startAt - performance.timeOrigin;
      const wait = t0 - performance.now();
      if (wait > 0) await sleep(wait);
      const results = await Promise.all(m.jobs.map((j) => get(j.url, t0, j.size, j.digest, j.timeoutMs)));
      parentPort!.postMessage({ id: m.id, results });
    })();
  });
}

// ---------------------------------------------------------------- the proxies

interface RunningFront {
  readonly url: string;
  stop(): Promise<void>;
}

interface FrontContext {
  /** This front's own temp dir (mode 0755). */
  readonly dir: string;
  readonly upstreamPort: number;
  readonly blobBytes: number;
}

interface FrontSpec {
  version(): string;
  start(ctx: FrontContext): Promise<RunningFront>;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return `${cmd}: ${r.error.message}`;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => l.trim()) ?? '?';
}

/** Room in a cache for the blobs one front sees (two), with headroom. */
const cacheMiB = (blobBytes: number): number => Math.ceil((3 * blobBytes) / MiB) + 512;

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Run `cmd` as a tracked foreground child (stdout and stderr to `log`); resolve when a GET /ping through `port` answers 200. */
async function runForeground(
  cmd: string,
  args: string[],
  port: number,
  log: string,
  env: NodeJS.ProcessEnv = process.env,
  readyTimeoutMs = 60_000,
): Promise<RunningFront> {
  const fd = openSync(log, 'a');
  const child = spawnTracked(cmd, args, { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await terminate(child, 10_000);
    releasePorts([port]);
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (hasExited(child)) {
      releasePorts([port]);
      throw new Error(`${cmd} exited (${child.exitCode ?? child.signalCode}) before it answered:\n${tail(log)}`);
    }
    const r = await get(`${url}/ping`, performance.now(), 3, '', 2_000);
    if (r.status === 200) return { url, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `${cmd} did not answer GET /ping with 200 in ${readyTimeoutMs / 1000} s (last: ${r.error}):\n${tail(log)}`,
      );
    }
    await sleep(250);
  }
}

function chownTree(dir: string, user: string): void {
  const r = spawnSync('chown', ['-R', `${user}:`, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chown -R ${user}: ${dir}: ${r.stderr}`);
}

const none: FrontSpec = {
  version: () => 'direct to the upstream',
  start: (ctx) => Promise.resolve({ url: `http://127.0.0.1:${ctx.upstreamPort}`, stop: () => Promise.resolve() }),
};

/**
 * nginx as the synthesized front's digests location caches (src/construct/front.ts), straight to
 * the upstream (no Distribution, no fill server): proxy_cache keyed on $uri with proxy_cache_lock.
 * The lock holder streams to its client while writing the cache file; the others poll the lock
 * (every 500 ms) and get nothing until the whole response is in the cache.
 */
const nginx: FrontSpec = {
  version: () => firstLine('nginx', ['-v']),
  async start(ctx) {
    const port = await reservePort();
    const d = ctx.dir;
    const conf = `daemon off;
master_process on;
worker_processes 2;
user root root;
pid ${d}/nginx.pid;
error_log ${d}/error.log notice;
events { worker_connections 4096; }
http {
  access_log ${d}/access.log;
  client_body_temp_path ${d}/client_temp;
  proxy_temp_path ${d}/proxy_temp;
  fastcgi_temp_path ${d}/fastcgi_temp;
  uwsgi_temp_path ${d}/uwsgi_temp;
  scgi_temp_path ${d}/scgi_temp;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65s;
  proxy_cache_path ${d}/cache levels=1:2 keys_zone=digests:16m max_size=${cacheMiB(ctx.blobBytes)}m inactive=168h use_temp_path=off;
  upstream up {
    server 127.0.0.1:${ctx.upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout 2s;
    proxy_read_timeout 300s;
    location /blobs/ {
      proxy_pass http://up;
      proxy_cache digests;
      proxy_cache_key $uri;
      proxy_cache_valid 200 168h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 240s;
      proxy_cache_lock_age 240s;
      proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires X-Accel-Buffering X-Accel-Limit-Rate;
      add_header X-Cache $upstream_cache_status always;
    }
    location / {
      proxy_pass http://up;
      proxy_buffering off;
    }
  }
}
`;
    await writeFile(join(d, 'nginx.conf'), conf);
    return runForeground(
      'nginx',
      ['-p', d, '-e', join(d, 'error.log'), '-c', join(d, 'nginx.conf')],
      port,
      join(d, 'stdout.log'),
    );
  },
};

/**
 * Varnish: a miss's fetch streams (beresp.do_stream, the default since 4.0) and requests for the
 * same object that arrived meanwhile wait on the object's waiting list; once the backend's headers
 * are in and the object is cacheable, the waiting list is rushed (rush_exponent at a time) and each
 * delivers the object while it is still being fetched. Storage: malloc, room for both blobs.
 */
const varnish: FrontSpec = {
  version: () => firstLine('varnishd', ['-V']),
  async start(ctx) {
    const port = await reservePort();
    const d = ctx.dir;
    const vcl = `vcl 4.1;

backend up {
  .host = "127.0.0.1";
  .port = "${ctx.upstreamPort}";
  .connect_timeout = 2s;
  .first_byte_timeout = 300s;
  .between_bytes_timeout = 60s;
}

sub vcl_recv {
  if (req.url ~ "^/blobs/" && (req.method == "GET" || req.method == "HEAD")) {
    return (hash);
  }
}

sub vcl_backend_response {
  if (bereq.url ~ "^/blobs/") {
    set beresp.do_stream = true;
    set beresp.ttl = 7d;
  }
}

sub vcl_deliver {
  set resp.http.X-Cache-Hits = obj.hits;
}
`;
    await writeFile(join(d, 'bench.vcl'), vcl);
    await mkdir(join(d, 'varnish'), { mode: 0o755 });
    return runForeground(
      'varnishd',
      [
        '-F',
        '-n',
        join(d, 'varnish'),
        '-a',
        `127.0.0.1:${port}`,
        '-T',
        'none',
        '-f',
        join(d, 'bench.vcl'),
        '-s',
        `malloc,${cacheMiB(ctx.blobBytes)}M`,
        '-p',
        'send_timeout=600',
      ],
      port,
      join(d, 'varnishd.log'),
    );
  },
};

/**
 * Squid as an accelerator for the upstream (cache_peer originserver), collapsed_forwarding on: the
 * requests for a URL that arrive before the first one's response headers are parsed wait for it
 * and, the response being cacheable, read the same store entry while it fills. One process (no
 * SMP: with workers 2 and a rock cache_dir each worker fetched the blob once and a single pull
 * took twice as long). A memory cache that holds the blobs (readers and warm hits from memory;
 * from the aufs cache_dir alone a warm GET ran at about 30 MiB/s), an aufs cache_dir too,
 * maximum_object_size above the blob, a large read_ahead_gap so the server side is not paced by
 * the clients, quick_abort_min -1 so a fill always completes.
 */
const squid: FrontSpec = {
  version: () => firstLine('squid', ['-v']),
  async start(ctx) {
    const port = await reservePort();
    const d = ctx.dir;
    const mib = cacheMiB(ctx.blobBytes);
    const conf = `http_port 127.0.0.1:${port} accel defaultsite=127.0.0.1:${ctx.upstreamPort} no-vhost
cache_peer 127.0.0.1 parent ${ctx.upstreamPort} 0 no-query no-digest originserver name=up
cache_peer_access up allow all
never_direct allow all
acl loopback src 127.0.0.1
http_access allow loopback
http_access deny all
collapsed_forwarding on
cache_mem ${mib} MB
maximum_object_size_in_memory ${mib} MB
memory_cache_mode always
maximum_object_size ${mib} MB
cache_dir aufs ${d}/cache ${mib} 16 256
read_ahead_gap 64 MB
quick_abort_min -1 KB
cache_effective_user proxy
pid_filename ${d}/squid.pid
cache_log ${d}/cache.log
access_log stdio:${d}/access.log
cache_store_log none
coredump_dir ${d}
dns_nameservers 127.0.0.1
icp_port 0
htcp_port 0
pinger_enable off
shutdown_lifetime 1 second
visible_hostname fronts-bench
`;
    await writeFile(join(d, 'squid.conf'), conf);
    chownTree(d, 'proxy');
    const z = spawnSync('squid', ['-N', '-z', '-f', join(d, 'squid.conf')], { encoding: 'utf8', timeout: 60_000 });
    if (z.status !== 0) throw new Error(`squid -z: ${z.stderr}${z.stdout}\n${tail(join(d, 'cache.log'))}`);
    return runForeground('squid', ['-N', '-d', '1', '-f', join(d, 'squid.conf')], port, join(d, 'squid.log'));
  },
};

/**
 * Apache Traffic Server as a reverse proxy (remap to the upstream) with read-while-writer: the
 * four settings its docs require (enable_read_while_writer, background fill with no timeout and
 * a 0 threshold, max_doc_size 0), and open-read retries so requests that arrive before the first
 * one's headers wait for the writer instead of going to the origin. traffic_server alone (no
 * traffic_manager), its config dir from PROXY_CONFIG_CONFIG_DIR, DNS pointed at 127.0.0.1.
 */
const trafficserver: FrontSpec = {
  version: () => firstLine('traffic_server', ['-V']),
  async start(ctx) {
    const port = await reservePort();
    const d = ctx.dir;
    const etc = join(d, 'etc');
    await cp('/etc/trafficserver', etc, { recursive: true });
    await mkdir(join(d, 'run'));
    await mkdir(join(d, 'log'));
    await mkdir(join(d, 'cache'));
    const records = `CONFIG proxy.config.http.server_ports STRING ${port}:ip-in=127.0.0.1
CONFIG proxy.local.incoming_ip_to_bind STRING 127.0.0.1
CONFIG proxy.local.outgoing_ip_to_bind STRING 127.0.0.1
CONFIG proxy.config.admin.user_id STRING trafficserver
CONFIG proxy.config.local_state_dir STRING ${d}/run
CONFIG proxy.config.log.logfile_dir STRING ${d}/log
CONFIG proxy.config.bin_path STRING /usr/bin
CONFIG proxy.config.plugin.plugin_dir STRING /usr/lib/trafficserver/modules
CONFIG proxy.config.body_factory.template_sets_dir STRING ${etc}/body_factory
CONFIG proxy.config.dns.nameservers STRING 127.0.0.1
CONFIG proxy.config.dns.resolv_conf STRING NULL
CONFIG proxy.config.exec_thread.autoconfig INT 1
CONFIG proxy.config.exec_thread.autoconfig.scale FLOAT 1.0
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.http.wait_for_cache INT 2
CONFIG proxy.config.cache.enable_read_while_writer INT 1
CONFIG proxy.config.http.background_fill_active_timeout INT 0
CONFIG proxy.config.http.background_fill_completed_threshold FLOAT 0.000000
CONFIG proxy.config.cache.max_doc_size INT 0
CONFIG proxy.config.cache.read_while_writer.max_retries INT 100
CONFIG proxy.config.cache.read_while_writer_retry.delay INT 50
CONFIG proxy.config.http.cache.max_open_read_retries INT 100
CONFIG proxy.config.http.cache.open_read_retry_time INT 10
CONFIG proxy.config.http.transaction_no_activity_timeout_in INT 120
CONFIG proxy.config.http.transaction_no_activity_timeout_out INT 120
CONFIG proxy.config.http.transaction_active_timeout_in INT 0
CONFIG proxy.config.http.insert_response_via_str INT 2
CONFIG proxy.config.log.logging_enabled INT 3
`;
    await writeFile(join(etc, 'records.config'), records);
    await writeFile(join(etc, 'remap.config'), `map http://127.0.0.1:${port}/ http://127.0.0.1:${ctx.upstreamPort}/\n`);
    await writeFile(join(etc, 'storage.config'), `${d}/cache ${cacheMiB(ctx.blobBytes)}M\n`);
    await writeFile(join(etc, 'plugin.config'), '');
    chownTree(d, 'trafficserver');
    return runForeground('traffic_server', [], port, join(d, 'traffic_server.log'), {
      ...process.env,
      PROXY_CONFIG_CONFIG_DIR: etc,
    });
  },
};

const SPECS: Record<FrontName, FrontSpec> = { none, nginx, varnish, squid, trafficserver };

// ---------------------------------------------------------------- the measurements

export interface ClientTimes {
  readonly firstByteSeconds: number;
  readonly doneSeconds: number;
  readonly ok: boolean;
  readonly error?: string;
}

export interface FrontRow {
  readonly front: FrontName;
  readonly version: string;
  readonly error?: string;
  readonly single?: { seconds: number; ratioToDirect: number; upstreamBytesRatio: number; ok: boolean; error?: string };
  readonly warm?: { seconds: number; upstreamBytesRatio: number; ok: boolean; error?: string };
  /** N concurrent GETs of the burst's URL again, once it is cached. */
  readonly warmBurst?: {
    p50Seconds: number;
    p99Seconds: number;
    upstreamBytesRatio: number;
    allCorrect: boolean;
    benchCpuShare: number;
  };
  readonly concurrent?: {
    n: number;
    upstreamBytesRatio: number;
    upstreamRequests: number;
    firstByteSpreadSeconds: number;
    firstByteMaxSeconds: number;
    p50Seconds: number;
    p99Seconds: number;
    p99OverSingle: number;
    allCorrect: boolean;
    /** Cores this process (upstream, clients and their sha256) kept busy over the burst's wall time. */
    benchCpuShare: number;
    clients: ClientTimes[];
  };
}

export interface FrontsResult {
  readonly blobBytes: number;
  readonly rateMiB: number;
  readonly concurrency: number;
  readonly loadavgAtStart: number[];
  readonly rows: FrontRow[];
}

/** What `--json` prints as the last line. */
export interface FrontsSummary {
  readonly blobMiB: number;
  readonly rateMiB: number;
  readonly n: number;
  readonly fronts: {
    front: FrontName;
    singleColdSeconds: number | null;
    singleColdRatio: number | null;
    upstreamBytesRatio: number | null;
    firstByteSpreadSeconds: number | null;
    p50Seconds: number | null;
    p99Seconds: number | null;
    p99OverSingle: number | null;
    warmSeconds: number | null;
    warmBurstP99Seconds: number | null;
    allCorrect: boolean;
    meetsIssue16: boolean;
    error?: string;
  }[];
}

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export async function runFronts(opts: FrontsOptions, log: (line: string) => void = console.log): Promise<FrontsResult> {
  const size = opts.blobMiB * MiB;
  const rate = opts.rateMiB * MiB;
  const n = opts.concurrency;
  const root = await mkdtemp(join(tmpdir(), 'ms-fronts-'));
  await chmod(root, 0o755);
  const upstream = await BlobUpstream.start(size, rate);
  const clients = new ClientPool();
  const rows: FrontRow[] = [];
  const loadavgAtStart = loadavg().map(r3);
  log(
    `blob ${opts.blobMiB} MiB, upstream capped at ${opts.rateMiB || 'no'} MiB/s, N=${n}; load average ${loadavgAtStart.join(' ')}`,
  );
  // Slowest expected transfer: every client pulling its own copy through the cap.
  const perCopyMs = rate ? (size / rate) * 1000 : (size / (200 * MiB)) * 1000;
  let directSingle: number | undefined;
  try {
    for (const name of opts.fronts) {
      const spec = SPECS[name];
      const version = spec.version();
      const dir = join(root, name);
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, 0, 0);
      const ratio = (blob: string): number => (upstream.sent.get(blob)?.bytes ?? 0) / size;
      let front: RunningFront | undefined;
      try {
        // The expected digests, before the front starts (not timed).
        const singleBlob = `${name}-single`;
        const burstBlob = `${name}-burst`;
        const digests = { [singleBlob]: blobDigest(singleBlob, size), [burstBlob]: blobDigest(burstBlob, size) };
        front = await spec.start({ dir, upstreamPort: upstream.port, blobBytes: size });
        log(`${name} (${version}): up at ${front.url}`);

        // (a) one cold GET alone
        const singleJob = {
          url: `${front.url}/blobs/${singleBlob}`,
          size,
          digest: digests[singleBlob],
          timeoutMs: 60_000 + 3 * perCopyMs,
        };
        const [s] = await clients.run([singleJob]);
        if (name === 'none') directSingle = s.doneMs;
        const single = {
          seconds: r3(s.doneMs / 1000),
          ratioToDirect: directSingle ? r3(s.doneMs / directSingle) : NaN,
          upstreamBytesRatio: r3(ratio(singleBlob)),
          ok: s.ok,
          error: s.error,
        };
        log(`  single cold: ${single.seconds} s (${single.ratioToDirect}x direct)${s.ok ? '' : ` FAILED: ${s.error}`}`);

        // (c) warm: the same URL again
        const [w] = await clients.run([singleJob]);
        const warm = {
          seconds: r3(w.doneMs / 1000),
          upstreamBytesRatio: r3(ratio(singleBlob)),
          ok: w.ok,
          error: w.error,
        };
        log(
          `  warm: ${warm.seconds} s; upstream sent ${warm.upstreamBytesRatio}x the blob for the two${w.ok ? '' : ` FAILED: ${w.error}`}`,
        );

        if (name === 'none' && opts.skipDirectBurst) {
          rows.push({ front: name, version, single, warm });
          continue;
        }

        // (b) N concurrent cold GETs of a new URL
        const cpu0 = process.cpuUsage();
        const start = performance.now();
        const burstJob = {
          url: `${front.url}/blobs/${burstBlob}`,
          size,
          digest: digests[burstBlob],
          timeoutMs: 60_000 + (name === 'none' ? n : 3) * perCopyMs * 1.5,
        };
        const gets = await clients.run(Array.from({ length: n }, () => burstJob));
        const cpu = process.cpuUsage(cpu0);
        const benchCpuShare = r3((cpu.user + cpu.system) / 1000 / (performance.now() - start));
        const firsts = gets.map((g) => g.firstByteMs).filter((x) => Number.isFinite(x));
        const done = gets.map((g) => g.doneMs).sort((a, b) => a - b);
        const p99 = percentile(done, 99);
        const concurrent = {
          n,
          upstreamBytesRatio: r3(ratio(burstBlob)),
          upstreamRequests: upstream.sent.get(burstBlob)?.requests ?? 0,
          firstByteSpreadSeconds: firsts.length ? r3((Math.max(...firsts) - Math.min(...firsts)) / 1000) : NaN,
          firstByteMaxSeconds: firsts.length ? r3(Math.max(...firsts) / 1000) : NaN,
          p50Seconds: r3(percentile(done, 50) / 1000),
          p99Seconds: r3(p99 / 1000),
          p99OverSingle: r3(p99 / s.doneMs),
          allCorrect: gets.every((g) => g.ok),
          benchCpuShare,
          clients: gets.map((g) => ({
            firstByteSeconds: r3(g.firstByteMs / 1000),
            doneSeconds: r3(g.doneMs / 1000),
            ok: g.ok,
            ...(g.error ? { error: g.error } : {}),
          })),
        };
        const failures = gets.filter((g) => !g.ok).map((g) => g.error);
        log(
          `  N=${n} concurrent cold: upstream sent ${concurrent.upstreamBytesRatio}x the blob in ${concurrent.upstreamRequests} requests; ` +
            `first byte spread ${concurrent.firstByteSpreadSeconds} s (last ${concurrent.firstByteMaxSeconds} s); ` +
            `p50 ${concurrent.p50Seconds} s, p99 ${concurrent.p99Seconds} s = ${concurrent.p99OverSingle}x single; ` +
            `bench process busy ${concurrent.benchCpuShare} cores; ` +
            (concurrent.allCorrect
              ? 'all bytes correct'
              : `${failures.length} FAILED: ${[...new Set(failures)].join('; ')}`),
        );

        // (d) the same N GETs again, warm: what this machine delivers to N clients with nothing to fetch
        let warmBurst: FrontRow['warmBurst'];
        if (name !== 'none') {
          const wcpu0 = process.cpuUsage();
          const wstart = performance.now();
          const again = await clients.run(Array.from({ length: n }, () => burstJob));
          const wcpu = process.cpuUsage(wcpu0);
          const wdone = again.map((g) => g.doneMs).sort((a, b) => a - b);
          warmBurst = {
            p50Seconds: r3(percentile(wdone, 50) / 1000),
            p99Seconds: r3(percentile(wdone, 99) / 1000),
            upstreamBytesRatio: r3(ratio(burstBlob)),
            allCorrect: again.every((g) => g.ok),
            benchCpuShare: r3((wcpu.user + wcpu.system) / 1000 / (performance.now() - wstart)),
          };
          log(
            `  N=${n} concurrent warm: p50 ${warmBurst.p50Seconds} s, p99 ${warmBurst.p99Seconds} s; bench process busy ${warmBurst.benchCpuShare} cores; ` +
              (warmBurst.allCorrect ? 'all bytes correct' : 'FAILED'),
          );
        }
        rows.push({ front: name, version, single, warm, concurrent, warmBurst });
      } catch (e) {
        const error = (e as Error).message;
        log(`  ${name} FAILED: ${error}`);
        rows.push({ front: name, version, error });
      } finally {
        await front?.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await clients.stop();
    await upstream.stop();
    await rm(root, { recursive: true, force: true });
  }

  const result: FrontsResult = { blobBytes: size, rateMiB: opts.rateMiB, concurrency: n, loadavgAtStart, rows };
  report(result, log);
  if (opts.resultsDir) await writeResults(opts.resultsDir, 'fronts', opts, result, log);
  if (opts.json) log(JSON.stringify(summary(result)));
  return result;
}

/** Issue 16's bar: upstream sends it once, first bytes within 2 s, p99 <= 1.3x single cold, single cold <= 1.1x direct. */
function meetsIssue16(r: FrontRow): boolean {
  const c = r.concurrent;
  const s = r.single;
  if (!c || !s || !r.warm) return false;
  return (
    c.allCorrect &&
    s.ok &&
    r.warm.ok &&
    c.upstreamBytesRatio <= 1.05 &&
    c.firstByteSpreadSeconds <= 2 &&
    c.p99OverSingle <= 1.3 &&
    (r.front === 'none' || s.ratioToDirect <= 1.1)
  );
}

const nul = (x: number | undefined): number | null => (x === undefined || !Number.isFinite(x) ? null : x);

export function summary(r: FrontsResult): FrontsSummary {
  return {
    blobMiB: r.blobBytes / MiB,
    rateMiB: r.rateMiB,
    n: r.concurrency,
    fronts: r.rows.map((row) => ({
      front: row.front,
      singleColdSeconds: nul(row.single?.seconds),
      singleColdRatio: nul(row.single?.ratioToDirect),
      upstreamBytesRatio: nul(row.concurrent?.upstreamBytesRatio),
      firstByteSpreadSeconds: nul(row.concurrent?.firstByteSpreadSeconds),
      p50Seconds: nul(row.concurrent?.p50Seconds),
      p99Seconds: nul(row.concurrent?.p99Seconds),
      p99OverSingle: nul(row.concurrent?.p99OverSingle),
      warmSeconds: nul(row.warm?.seconds),
      warmBurstP99Seconds: nul(row.warmBurst?.p99Seconds),
      allCorrect: Boolean(
        row.single?.ok &&
        row.warm?.ok &&
        (row.concurrent?.allCorrect ?? !row.error) &&
        (row.warmBurst?.allCorrect ?? true),
      ),
      meetsIssue16: meetsIssue16(row),
      ...(row.error ? { error: row.error.split('\n')[0] } : {}),
    })),
  };
}

function report(r: FrontsResult, log: (line: string) => void): void {
  const f = (x: number | null | undefined, d = 2): string =>
    x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d);
  log('');
  log(
    `Blob ${(r.blobBytes / MiB).toFixed(0)} MiB, upstream capped at ${r.rateMiB || 'no'} MiB/s, N=${r.concurrency} concurrent cold GETs. Loopback, one run.`,
  );
  log(
    'front           single cold  /direct  upstream x  1st-byte spread  p50 s    p99 s    p99/single  warm s  warm N p99  all correct  issue 16',
  );
  for (const s of summary(r).fronts) {
    log(
      `${s.front.padEnd(15)} ${f(s.singleColdSeconds).padStart(11)}  ${f(s.singleColdRatio).padStart(7)}  ${f(s.upstreamBytesRatio).padStart(10)}  ${f(s.firstByteSpreadSeconds).padStart(15)}  ${f(s.p50Seconds).padStart(6)}  ${f(s.p99Seconds).padStart(7)}  ${f(s.p99OverSingle).padStart(10)}  ${f(s.warmSeconds).padStart(6)}  ${f(s.warmBurstP99Seconds).padStart(10)}  ${(s.allCorrect ? 'yes' : 'NO').padStart(11)}  ${s.meetsIssue16 ? 'meets' : 'misses'}${s.error ? `  (${s.error})` : ''}`,
    );
  }
}
