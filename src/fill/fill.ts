/**
 * The streaming fill (`spec.fill: streaming`): the front's cache misses for a digest, coalesced
 * into one request to Distribution whose bytes every waiting client receives as they arrive.
 *
 * nginx's own coalescing (`proxy_cache_lock`) gives a waiter nothing until the whole blob is in
 * its cache, and the streaming caches that do better (Varnish, Traffic Server) keep whatever the
 * upstream sent, corrupt or not (docs/data-path.md, "Fronts compared"). The fill stores nothing for long:
 * Distribution is the store, and it commits a blob only when its sha256 matches. The fill fans
 * one transfer out through a spool file, so a client that comes late starts from byte 0 while
 * the transfer goes on, and a slow client never slows the others or the transfer.
 *
 * It checks the digest itself: the last byte of a body is held back from every client until the
 * sha256 of the whole body is the one in the URL. A corrupt or truncated answer from the upstream
 * thus reaches no client whole: each sees its connection cut one byte short, which every client
 * (containerd, nginx in front) treats as a failed transfer, and the next request fetches again.
 * That is also what lets the front cache a streamed copy: nginx keeps no response that ends short
 * of its Content-Length, so the copy it keeps is a verified one (see serve()).
 */
import { createHash, type Hash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request as httpRequest,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';

import { UsageError } from '../api/errors.js';
import { parseBytes } from '../api/quantity.js';
import { type Chunk, ChunkPool } from './chunks.js';
import { createFillMetrics, type FillMetrics, type FillRefusal, type FillResult, type FillSource } from './metrics.js';
import { FILL_CLIENT_HEADER, FILL_DEFAULTS, FILL_IDLE_TIMEOUT_SECONDS, FILL_PEER_HEADER } from './protocol.js';

/** Digest-addressed paths: `/v2/<name>/blobs/sha256:<hex>` and `/v2/<name>/manifests/sha256:<hex>`. */
const DIGEST_PATH = /^\/v2\/.+\/(?:blobs|manifests)\/sha256:([0-9a-f]{64})$/;
/** Headers of Distribution's answer that clients get. */
const PASSED_HEADERS = [
  'content-type',
  'content-length',
  'docker-content-digest',
  'docker-distribution-api-version',
  'etag',
  'last-modified',
] as const;
/** Headers of the first client's request that go to Distribution (Host: the upstream's name for it). */
const FORWARDED_HEADERS = ['accept', 'host', 'user-agent'] as const;
/**
 * What a client reads from the spool at once: CHUNK while the chunks out to clients (read, not yet
 * sent) stay within BUFFER_BUDGET, all clients together, else MIN_CHUNK; the buffers are reused
 * (chunks.ts). Clients that stall thus hold BUFFER_BUDGET plus MIN_CHUNK each at most (32 MiB with
 * --max-clients 1024), not a CHUNK each.
 */
const CHUNK = 256 << 10;
const MIN_CHUNK = 16 << 10;
const BUFFER_BUDGET = 16 << 20;
/**
 * What a client is sent at once: a chunk goes out in pieces, each once the one before is in the
 * socket's kernel buffer. A client that takes no piece for --client-timeout is cut; one that
 * takes them slowly is not.
 */
const PIECE = 64 << 10;
/**
 * The spool's own files: a marker it writes, and one file per transfer, `<n>-<hex digest>`. At
 * start the fill removes these and nothing else, and refuses a directory that holds anything else.
 */
const SPOOL_MARKER = '.mirror-synth-fill';
const SPOOL_FILE = /^\d+-[0-9a-f]{64}$/;
/** A transfer whose length is not known checks the spool's free space again after this many bytes. */
const SPACE_CHECK_BYTES = 64 << 20;
/**
 * Readers waiting for new bytes are told of them once PROGRESS_BYTES more are in the spool, or
 * PROGRESS_MS after the first of them: each telling wakes every waiting client of the digest, and
 * an upstream sends a body in pieces of a few KiB.
 */
const PROGRESS_BYTES = 256 << 10;
const PROGRESS_MS = 50;
/** Refusals at a bound are logged at most this often (with how many there were since). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** Non-200 bodies (errors) are small: kept in memory up to this, to give every waiter. */
const MAX_ERROR_BODY = 64 * 1024;
/** An owner replica that does not take the connection within this is skipped for this transfer. */
const PEER_CONNECT_TIMEOUT_MS = 2000;
/**
 * An owner replica that sends nothing for this long is given up: the transfer goes on from this
 * pod's Distribution. (Distribution itself gets FillOptions.idleTimeoutMs, 300 s.)
 */
const PEER_IDLE_TIMEOUT_MS = 30_000;
/**
 * An owner replica that sent a body that is not the digest, or stalled or failed mid-body, is not
 * asked for that digest again for this long: this replica fetches it from its own Distribution.
 */
const BAD_OWNER_MS = 10 * 60_000;
/**
 * A request passed through to Distribution (a HEAD, the readiness probe) that gets nothing from it
 * for this long is given up, and its client answered 504 (the front's fallback).
 */
const PASS_THROUGH_TIMEOUT_MS = 60_000;

/** Where a transfer's bytes come from. */
interface Source {
  readonly url: string;
  /** For metrics. */
  readonly kind: FillSource;
  /** For logs and errors. */
  readonly name: string;
  readonly headers: Record<string, string>;
  readonly connectTimeoutMs?: number;
  /** Given up when it sends nothing for this long. @default FillOptions.idleTimeoutMs */
  readonly idleTimeoutMs?: number;
}

/**
 * A replica of the mirror: its pod name, its front's address (host:port) and the addresses its
 * requests come from (its pod's IPs): a request says it is a peer's (PEER_HEADER) only from one.
 */
export interface Peer {
  readonly name: string;
  readonly address: string;
  readonly ips?: readonly string[];
}

/** Header on a request one replica's fill sends another's front: serve it from your own Distribution. */
export const PEER_HEADER = FILL_PEER_HEADER.toLowerCase();
/** The address a request came to the front from, as the front says (protocol.ts). */
const CLIENT_HEADER = FILL_CLIENT_HEADER.toLowerCase();

export interface FillOptions {
  /** Distribution, e.g. http://127.0.0.1:5002. */
  readonly distribution: string;
  /** This replica's pod name (its name among `peers`). */
  readonly self?: string;
  /**
   * The mirror's replicas now, this one included. Each digest has one owner among them
   * (rendezvous hashing on the pod names, so a digest keeps its owner while the set is the same
   * and only the digests of a replica that left or came move); a miss for a digest another
   * replica owns is fetched from that replica's front, which coalesces it with every other
   * replica's. @default - none: every miss from this replica's Distribution
   */
  readonly peers?: () => readonly Peer[];
  /**
   * Where transfers in progress are spooled. Emptied of the fill's own files at start; a directory
   * that holds anything else is refused (listen() throws a UsageError).
   */
  readonly spoolDir: string;
  /** Clients fed at once, every digest together; one more is answered 503. @default FILL_DEFAULTS.maxClients */
  readonly maxClients?: number;
  /** Digests fetched at once; a client asking for one more is answered 503. @default FILL_DEFAULTS.maxTransfers */
  readonly maxTransfers?: number;
  /** A client that takes no piece (PIECE, 64 KiB) of what it is sent for this long is cut. @default 60_000 */
  readonly clientTimeoutMs?: number;
  /**
   * The free space the spool leaves on its filesystem: a transfer starts only when the rest of every
   * transfer in progress and all of it fit above this, else its clients are answered 503; a
   * transfer of unknown length is cut when free space falls below it. @default { share: 0.1 }
   */
  readonly spoolMinFree?: SpoolMinFree;
  /** A transfer from Distribution that sends nothing for this long is cut. @default FILL_IDLE_TIMEOUT_SECONDS */
  readonly idleTimeoutMs?: number;
  /** A request passed through to Distribution that gets nothing for this long is given up (504). @default 60_000 */
  readonly passThroughTimeoutMs?: number;
  /** A transfer from an owner replica that sends nothing for this long goes on from Distribution. @default 30_000 */
  readonly peerIdleTimeoutMs?: number;
  readonly log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Free space to leave: a share of the filesystem's size, or bytes. */
export type SpoolMinFree = { readonly share: number } | { readonly bytes: number };

/** `--spool-min-free`: `10%` (a share of the filesystem's size) or a size in bytes (`2Gi`, `500M`, `1073741824`). */
export function parseSpoolMinFree(text: string): SpoolMinFree {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  const share = percent ? Number(percent[1]) / 100 : undefined;
  if (share !== undefined && share < 1) return { share };
  const bytes = percent ? undefined : parseBytes(text);
  if (bytes !== undefined && Number.isSafeInteger(bytes)) return { bytes };
  throw new Error(`expected a share of the filesystem below 100% (10%) or a size (2Gi), got '${text}'`);
}

type FlightState = 'headers' | 'body' | 'verified' | 'failed';

/** One transfer from Distribution, and the clients it feeds. */
class Flight {
  state: FlightState = 'headers';
  status = 0;
  headers: Record<string, string> = {};
  errorBody?: Buffer;
  /** Bytes in the spool. */
  written = 0;
  /** Content-Length, when Distribution sent one. */
  length?: number;
  /** Fetched from another replica's front (the digest's owner), not this pod's Distribution. */
  viaPeer = false;
  /** The owner replica the bytes came from, while they do (cleared when the transfer goes on from Distribution). */
  from?: string;
  file?: FileHandle;
  readers = 0;
  failure?: string;
  /** Counted in the spool's space (admit()). */
  admitted = false;
  /** How its first client was served (metrics), once a source answered 200. */
  result?: FillResult;
  /** The bound its clients were refused at (answered 503), if one was. */
  refusal?: FillRefusal;
  /**
   * Bumped when the transfer starts over from byte 0 (startOver()): the spool before it, and how
   * the new bytes compare with it. A reader that got bytes of the spool before goes on only if
   * they are the new ones.
   */
  generation = 0;
  previous?: { readonly file: FileHandle; readonly path: string; readonly written: number };
  /** The first offset where the new bytes differ from the previous spool's, as far as compared. */
  firstDifference = Infinity;
  /** `written` when readers were last told (wrote()), and the timer that will tell them. */
  private told = 0;
  private telling?: NodeJS.Timeout;
  /** The readers waiting for a change (changed()): told at once, each leaving on its own in O(1). */
  private readonly waiters = new Set<() => void>();
  private hash: Hash = createHash('sha256');

  constructor(
    readonly key: string,
    readonly path: string,
    readonly digestHex: string,
    public spoolPath: string,
  ) {}

  /**
   * Starts the body over from byte 0, into `spoolPath` (a body that failed its digest is not
   * trusted to its last byte). The spool so far stays, to compare the new bytes with, until the
   * flight is released; readers wait until the new bytes reach their position (serve()).
   */
  startOver(spoolPath: string): void {
    this.previous = { file: this.file!, path: this.spoolPath, written: this.written };
    this.file = undefined;
    this.spoolPath = spoolPath;
    this.written = 0;
    this.told = 0;
    this.hash = createHash('sha256');
    this.firstDifference = Infinity;
    this.generation++;
  }

  /** Bytes of the new body compared with the previous spool's (all of it once past its end). */
  compared(): number {
    return this.previous && this.written < this.previous.written ? this.written : Infinity;
  }

  /** Bytes a client may have: all once verified, else all but the last. */
  available(): number {
    if (this.state === 'verified') return this.written;
    return Math.max(0, Math.min(this.written, (this.length ?? this.written) - 1));
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }

  /** Bytes were written to the spool: tells the readers, at once or soon (PROGRESS_BYTES). */
  wrote(): void {
    if (this.written - this.told >= PROGRESS_BYTES) this.tell();
    else this.telling ??= setTimeout(() => this.tell(), PROGRESS_MS);
  }

  /** Tells every waiting reader of a change now. */
  tell(): void {
    clearTimeout(this.telling);
    this.telling = undefined;
    this.told = this.written;
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** Why the whole body is not the digest asked for, or undefined when it is (then readers may have the last byte). */
  check(): string | undefined {
    const hex = this.hash.digest('hex');
    if (this.length !== undefined && this.written !== this.length)
      return `body ended after ${this.written} of ${this.length} bytes`;
    if (hex !== this.digestHex) return `body is sha256:${hex}, not the digest asked for`;
    this.state = 'verified';
    this.tell();
    return undefined;
  }

  fail(reason: string): void {
    if (this.state === 'verified' || this.state === 'failed') return;
    this.state = 'failed';
    this.failure = reason;
    this.tell();
  }

  /** Resolves on the next change (bytes written, headers, end), or when `res` closes. */
  changed(res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        res.off('close', done);
        resolve();
      };
      this.waiters.add(done);
      res.on('close', done);
    });
  }
}

export interface FillStats {
  /** Transfers started (one per digest, however many clients ask), from Distribution or the owner replica. */
  readonly transfers: number;
  /** Client requests served by a transfer another request started. */
  readonly joined: number;
  /** Transfers whose body did not match its digest (or ended short). */
  readonly rejected: number;
  /** Transfers fetched from the digest's owner replica. */
  readonly fromPeers: number;
  /** Transfers from the owner replica that failed and went on from this pod's Distribution. */
  readonly peerFailures: number;
  /** Clients answered 503 at --max-clients or --max-transfers. */
  readonly refused: number;
  /** Transfers answered 503 because the spool's filesystem had no room for them. */
  readonly spoolFull: number;
  /** Clients cut because they took nothing for --client-timeout. */
  readonly cut: number;
}

/** A transfer the spool has no room for: its clients are answered 503. */
class SpoolFullError extends Error {}

export class FillServer {
  private readonly flights = new Map<string, Flight>();
  private readonly server: Server;
  private seq = 0;
  private counters = {
    transfers: 0,
    joined: 0,
    rejected: 0,
    fromPeers: 0,
    peerFailures: 0,
    refused: 0,
    spoolFull: 0,
    cut: 0,
  };
  /** Clients being fed (serve()), every flight together. */
  private clients = 0;
  /** Clients being fed by a flight another request started. */
  private waiters = 0;
  private readonly metrics: FillMetrics;
  /** The buffers clients are fed from (see CHUNK). */
  private readonly chunks = new ChunkPool(MIN_CHUNK, CHUNK, BUFFER_BUDGET);
  /** `<digest hex> <owner>`: until when that owner is not asked for that digest (ownerOf()). */
  private readonly badOwners = new Map<string, number>();
  /** Admissions to the spool, one at a time (admit()). */
  private admission: Promise<unknown> = Promise.resolve();
  private refusals = { count: 0, loggedAt: 0 };
  private readonly limits: {
    readonly maxClients: number;
    readonly maxTransfers: number;
    readonly clientTimeoutMs: number;
    readonly spoolMinFree: SpoolMinFree;
  };

  constructor(private readonly opts: FillOptions) {
    this.limits = {
      maxClients: opts.maxClients ?? FILL_DEFAULTS.maxClients,
      maxTransfers: opts.maxTransfers ?? FILL_DEFAULTS.maxTransfers,
      clientTimeoutMs: opts.clientTimeoutMs ?? FILL_DEFAULTS.clientTimeoutSeconds * 1000,
      spoolMinFree: opts.spoolMinFree ?? parseSpoolMinFree(FILL_DEFAULTS.spoolMinFree),
    };
    this.metrics = createFillMetrics({
      transfersInFlight: () => this.flights.size,
      clients: () => this.clients,
      waiters: () => this.waiters,
    });
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
    this.server.requestTimeout = 0;
  }

  stats(): FillStats {
    return { ...this.counters };
  }

  /** The fill's Prometheus metrics (metrics.ts), on a registry of their own. */
  get registry(): FillMetrics['registry'] {
    return this.metrics.registry;
  }

  /** Listens on `host` (every interface when undefined) and `port` (0: any); resolves the port. */
  async listen(port: number, host?: string): Promise<number> {
    await this.prepareSpool();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private log(msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(msg, fields);
  }

  /**
   * Makes the spool directory, or empties it of the fill's own files (a transfer's file outlives a
   * fill that was killed), and writes its marker. It removes nothing else: a directory that holds
   * anything else is not the fill's own (`--spool` pointing at the cache volume's root, say), and
   * is refused with the names it holds.
   */
  private async prepareSpool(): Promise<void> {
    const dir = this.opts.spoolDir;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(dir, { recursive: true });
      entries = [];
    }
    const own = (e: Dirent): boolean => e.isFile() && (e.name === SPOOL_MARKER || SPOOL_FILE.test(e.name));
    const foreign = entries.filter((e) => !own(e)).map((e) => JSON.stringify(e.name));
    if (foreign.length > 0) {
      const shown =
        foreign.length > 3 ? `${foreign.slice(0, 3).join(', ')} and ${foreign.length - 3} more` : foreign.join(', ');
      throw new UsageError(
        `--spool ${dir} holds what mirror-synth fill did not write (${shown}): the fill empties its spool at start, so it needs a directory of its own, and it empties none that holds anything else`,
      );
    }
    for (const e of entries) if (e.name !== SPOOL_MARKER) await rm(join(dir, e.name), { force: true });
    await writeFile(
      join(dir, SPOOL_MARKER),
      'mirror-synth fill spools its transfers in progress here, and removes its own files at start.\n',
    );
  }

  /** Answers 503 (the front's fallback: the node pulls from the upstream) at a bound. */
  private unavailable(res: ServerResponse, why: string, reason: FillRefusal): void {
    this.counters.refused++;
    this.metrics.refused.inc({ reason });
    this.metrics.requests.inc({ result: 'fallback' });
    this.refusals.count++;
    const now = Date.now();
    if (now - this.refusals.loggedAt >= REFUSAL_LOG_INTERVAL_MS) {
      this.log('clients refused', { why, refused: this.refusals.count });
      this.refusals = { count: 0, loggedAt: now };
    }
    const body = `mirror-synth fill: ${why}\n`;
    res
      .writeHead(503, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        'retry-after': '10',
      })
      .end(body);
  }

  /**
   * Room in the spool's filesystem for transfers still to come: its free space, less what the spool
   * leaves free and the bytes still to come of every admitted transfer but `flight`.
   */
  private async spoolRoom(flight: Flight): Promise<number> {
    const fs = await statfs(this.opts.spoolDir);
    const free = fs.bavail * fs.bsize;
    const minFree = this.limits.spoolMinFree;
    const keep = 'share' in minFree ? minFree.share * fs.blocks * fs.bsize : minFree.bytes;
    let coming = 0;
    for (const f of this.flights.values())
      if (f !== flight && f.admitted && f.length !== undefined) coming += Math.max(0, f.length - f.written);
    return free - keep - coming;
  }

  /** Admits a transfer to the spool, or throws a SpoolFullError. One admission at a time. */
  private admit(flight: Flight): Promise<void> {
    const run = this.admission.then(async () => {
      const room = await this.spoolRoom(flight);
      if (flight.length !== undefined ? flight.length > room : room <= 0)
        throw new SpoolFullError(
          `the spool's filesystem has room for ${Math.max(0, Math.floor(room))} more bytes above --spool-min-free, the transfer needs ${flight.length ?? 'an unknown number of'}`,
        );
      flight.admitted = true;
    });
    this.admission = run.catch(() => undefined);
    return run;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // A request pipelined behind one refused with its body unread: the connection is closing, so
    // it is not served (refuse()).
    if (closing.has(req.socket)) return;
    // Nodes only read: GET and HEAD, without a body. Anything else is answered here and goes no
    // further, its body unread (see refuse()).
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      refuse(req, res, 405, `${req.method} is not served here: GET and HEAD only`);
      return;
    }
    if (announcesBody(req)) {
      refuse(req, res, 400, `a ${req.method} with a body is not served here`);
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const m = DIGEST_PATH.exec(path);
    if (req.method !== 'GET' || !m) {
      this.passThrough(req, res);
      return;
    }
    if (this.clients >= this.limits.maxClients) {
      this.unavailable(res, `it feeds ${this.clients} clients already (--max-clients)`, 'max_clients');
      return;
    }
    // A peer's request is served from this pod: it never joins a transfer that is itself from a
    // peer (two replicas that disagree on the owner, while the set changes, would wait on each other).
    // Only a replica's is: from anyone else the header would skip the owner, an upstream fetch per replica.
    const forPeer = req.headers[PEER_HEADER] !== undefined && this.fromPeer(req);
    let key = path;
    if (forPeer && this.flights.get(key)?.viaPeer) key = `${path} (for a peer)`;
    let flight = this.flights.get(key);
    if (!flight && this.flights.size >= this.limits.maxTransfers) {
      this.unavailable(res, `it fetches ${this.flights.size} digests already (--max-transfers)`, 'max_transfers');
      return;
    }
    const joined = flight !== undefined;
    if (flight) this.counters.joined++;
    else {
      flight = new Flight(key, path, m[1], join(this.opts.spoolDir, `${++this.seq}-${m[1]}`));
      this.flights.set(key, flight);
      this.counters.transfers++;
      this.transfer(flight, req.headers, forPeer ? undefined : this.ownerOf(m[1]));
    }
    void this.serve(flight, res, !joined);
  }

  /**
   * A HEAD, or a GET of anything but a digest (the readiness probe's `/`): straight to
   * Distribution, without a body (handle() took none). Given up when Distribution sends nothing
   * for a while, and as soon as the client leaves: a hung Distribution must not keep a socket per
   * probe.
   */
  private passThrough(req: IncomingMessage, res: ServerResponse): void {
    this.metrics.requests.inc({ result: 'pass_through' });
    const limit = this.opts.passThroughTimeoutMs ?? PASS_THROUGH_TIMEOUT_MS;
    const up = httpRequest(
      `${this.opts.distribution}${req.url ?? '/'}`,
      { method: req.method, headers: pick(req.headers, FORWARDED_HEADERS), timeout: limit },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.on('close', () => {
          if (!upRes.complete) res.destroy();
        });
      },
    );
    up.on('timeout', () => up.destroy(new TimeoutError(`distribution sent nothing for ${limit / 1000}s`)));
    let gone = false;
    up.on('error', (err) => {
      if (gone) return;
      if (!res.headersSent)
        res.writeHead(err instanceof TimeoutError ? 504 : 502).end(`distribution: ${err.message}\n`);
      else res.destroy();
    });
    res.on('close', () => {
      if (res.writableFinished) return;
      gone = true;
      up.destroy();
    });
    up.end();
  }

  /**
   * The replica that owns a digest, unless it is this one (or there are no peers), or it sent a
   * body of it that was not the digest, or failed mid-body, in the last BAD_OWNER_MS.
   */
  private ownerOf(digestHex: string): Peer | undefined {
    const best = digestOwner(digestHex, this.opts.peers?.() ?? []);
    if (!best || best.name === this.opts.self) return undefined;
    const key = `${digestHex} ${best.name}`;
    const until = this.badOwners.get(key);
    if (until !== undefined && until > Date.now()) return undefined;
    this.badOwners.delete(key);
    return best;
  }

  /** Whether the front says the request came from the address of one of the mirror's replicas. */
  private fromPeer(req: IncomingMessage): boolean {
    const client = req.headers[CLIENT_HEADER];
    if (typeof client !== 'string' || client === '') return false;
    return (this.opts.peers?.() ?? []).some((p) => p.ips?.includes(client));
  }

  private markBad(owner: Peer, digestHex: string): void {
    if (this.badOwners.size >= 10_000) {
      const now = Date.now();
      for (const [key, until] of this.badOwners) if (until <= now) this.badOwners.delete(key);
      if (this.badOwners.size >= 10_000) this.badOwners.clear();
    }
    this.badOwners.set(`${digestHex} ${owner.name}`, Date.now() + BAD_OWNER_MS);
  }

  /**
   * The transfer of a flight: from the digest's owner replica when another one owns it, else (and
   * when the owner cannot be reached, refuses, or stops mid-body) from this pod's Distribution;
   * headers, then the body into the spool. A transfer that goes on from Distribution after the
   * owner stopped mid-body skips the bytes the spool has, and the digest is checked over all of it.
   * A body with an owner's bytes in it that is not the digest is not trusted at all: the transfer
   * starts over from byte 0 from Distribution (Flight.startOver()), and the clients whose bytes
   * so far are the same go on with it. An owner that sent such a body, or failed once it
   * answered, is not asked for the digest again for BAD_OWNER_MS.
   */
  private transfer(flight: Flight, clientHeaders: IncomingHttpHeaders, owner: Peer | undefined): void {
    const started = Date.now();
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      this.flights.delete(flight.key);
      if (flight.state === 'failed') {
        this.counters.rejected += flight.status === 200 ? 1 : 0;
        this.log('fill failed', { uri: flight.path, reason: flight.failure });
      } else if (flight.status === 200)
        this.log('fill done', {
          uri: flight.path,
          bytes: flight.written,
          seconds: (Date.now() - started) / 1000,
          ...(flight.from !== undefined ? { from: flight.from } : {}),
        });
      void this.release(flight);
    };
    const headers = pick(clientHeaders, FORWARDED_HEADERS);
    const local: Source = { url: this.opts.distribution, kind: 'distribution', name: 'distribution', headers };
    this.metrics.transfers.inc({ source: owner ? 'replica' : 'distribution' });
    if (!owner) {
      this.attempt(flight, local, end);
      return;
    }
    flight.viaPeer = true;
    flight.from = owner.name;
    this.counters.fromPeers++;
    const peer: Source = {
      url: `http://${owner.address}`,
      kind: 'replica',
      name: `replica ${owner.name}`,
      headers: { ...headers, [PEER_HEADER]: this.opts.self ?? '' },
      connectTimeoutMs: PEER_CONNECT_TIMEOUT_MS,
      idleTimeoutMs: this.opts.peerIdleTimeoutMs ?? PEER_IDLE_TIMEOUT_MS,
    };
    const startOver = (reason: string): void => {
      this.log('fill from owner is not the digest, starting over from distribution', {
        uri: flight.path,
        owner: owner.name,
        reason,
      });
      flight.startOver(join(this.opts.spoolDir, `${++this.seq}-${flight.digestHex}`));
      flight.from = undefined;
      this.attempt(flight, local, end);
    };
    this.attempt(flight, peer, end, (reason, { whole, answered }) => {
      this.counters.peerFailures++;
      this.metrics.ownerFailovers.inc();
      if (whole || answered) this.markBad(owner, flight.digestHex);
      if (whole) {
        startOver(reason);
        return true;
      }
      flight.from = undefined;
      this.log('fill from owner failed, going on from distribution', {
        uri: flight.path,
        owner: owner.name,
        reason,
        bytes: flight.written,
      });
      // Distribution's bytes after the owner's: when the whole is not the digest, the owner's may be why
      const fromOwner = flight.written;
      this.attempt(
        flight,
        local,
        end,
        fromOwner > 0
          ? (again, outcome) => {
              if (!outcome.whole) return false;
              startOver(again);
              return true;
            }
          : undefined,
      );
      return true;
    });
  }

  /**
   * One request for a flight's bytes. On a failure, `takeOver` is asked first (`whole`: the body
   * came whole and is not the digest; `answered`: the source answered 200 before failing); when
   * it returns true, the flight is its concern, else the failure ends the flight.
   */
  private attempt(
    flight: Flight,
    src: Source,
    end: () => void,
    takeOver?: (reason: string, outcome: { whole: boolean; answered: boolean }) => boolean,
  ): void {
    const idle = src.idleTimeoutMs ?? this.opts.idleTimeoutMs ?? FILL_IDLE_TIMEOUT_SECONDS * 1000;
    const skip = flight.written;
    let settled = false;
    let responded = false;
    let answered = false;
    /** Ends this attempt: the body whole (no reason), or a failure; `status`: a refusal no other source can help. */
    const settle = (reason?: string, status?: number): void => {
      if (settled) return;
      settled = true;
      if (reason === undefined) {
        const wrong = flight.check();
        if (wrong !== undefined) this.metrics.verificationFailures.inc();
        if (wrong === undefined) end();
        else if (!takeOver?.(wrong, { whole: true, answered })) {
          flight.fail(wrong);
          end();
        }
        return;
      }
      if (status === undefined && takeOver?.(reason, { whole: false, answered })) return;
      if (flight.state === 'headers') {
        flight.status = status ?? 502;
        flight.errorBody = Buffer.from(`${src.name}: ${reason}\n`);
        flight.headers = {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': String(flight.errorBody.length),
        };
      }
      flight.fail(reason);
      end();
    };
    const up = httpRequest(`${src.url}${flight.path}`, { method: 'GET', headers: src.headers, timeout: idle });
    up.on('timeout', () => up.destroy(new Error(`${src.name} sent nothing for ${idle / 1000}s`)));
    if (src.connectTimeoutMs !== undefined) {
      const limit = src.connectTimeoutMs;
      up.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => up.destroy(new Error(`no connection within ${limit / 1000}s`)), limit);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
    }
    up.on('error', (err) => {
      if (!responded) settle(err.message);
    });
    up.on('response', (upRes) => {
      responded = true;
      const status = upRes.statusCode ?? 502;
      if (status !== 200 && takeOver) {
        upRes.resume();
        settle(`answered ${status}`);
        return;
      }
      if (status !== 200) {
        flight.status = status;
        flight.headers = pick(upRes.headers, PASSED_HEADERS);
        const chunks: Buffer[] = [];
        let size = 0;
        upRes.on('data', (c: Buffer) => {
          if (size < MAX_ERROR_BODY) chunks.push(c);
          size += c.length;
        });
        upRes.on('end', () => {
          flight.errorBody = Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY);
          flight.headers['content-length'] = String(flight.errorBody.length);
          settled = true;
          flight.fail(`${src.name} answered ${status}`);
          end();
        });
        return;
      }
      answered = true;
      const length = Number(upRes.headers['content-length']);
      const known = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
      if (flight.state === 'headers') {
        flight.status = 200;
        flight.headers = pick(upRes.headers, PASSED_HEADERS);
        flight.length = known;
        flight.result = resultOf(src, flight.path, upRes.headers);
      } else if (known !== flight.length) {
        upRes.destroy();
        settle(`${src.name} sent Content-Length ${known}, the transfer began with ${flight.length}`);
        return;
      }
      void this.spool(flight, upRes, skip, src.kind).then(
        (complete) => settle(complete ? undefined : `${src.name} closed the connection mid-body`),
        (err: Error) => {
          upRes.destroy();
          if (err instanceof SpoolFullError) {
            this.counters.spoolFull++;
            flight.refusal = 'spool_full';
            settle(err.message, 503);
          } else settle(`${src.name}: ${err.message}`);
        },
      );
    });
    up.end();
  }

  /**
   * Writes a body to the spool after its first `skip` bytes (the spool has them from an earlier
   * attempt), in order, telling readers after each write. Resolves whether the body was whole.
   */
  private async spool(flight: Flight, body: IncomingMessage, skip: number, source: FillSource): Promise<boolean> {
    const fetched = this.metrics.fetchedBytes.labels({ source });
    if (!flight.file) {
      await this.admit(flight);
      flight.file = await open(flight.spoolPath, 'w+');
      flight.state = 'body';
      flight.tell();
    }
    let toSkip = skip;
    let checkAt = flight.written + SPACE_CHECK_BYTES;
    for await (const received of body as AsyncIterable<Buffer>) {
      fetched.inc(received.length);
      let chunk = received;
      if (toSkip > 0) {
        const n = Math.min(toSkip, chunk.length);
        toSkip -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) continue;
      }
      flight.update(chunk);
      const previous = flight.previous;
      if (previous && flight.firstDifference === Infinity && flight.written < previous.written) {
        const n = Math.min(chunk.length, previous.written - flight.written);
        const before = Buffer.allocUnsafe(n);
        const { bytesRead } = await previous.file.read(before, 0, n, flight.written);
        const d = firstDifference(chunk.subarray(0, bytesRead), before.subarray(0, bytesRead));
        if (d !== undefined) flight.firstDifference = flight.written + d;
      }
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await flight.file.write(chunk, off, chunk.length - off, flight.written);
        off += bytesWritten;
        flight.written += bytesWritten;
      }
      flight.wrote();
      if (flight.length === undefined && flight.written >= checkAt) {
        checkAt = flight.written + SPACE_CHECK_BYTES;
        if ((await this.spoolRoom(flight)) <= 0)
          throw new SpoolFullError(`the spool's filesystem is down to --spool-min-free after ${flight.written} bytes`);
      }
    }
    return body.complete && toSkip === 0;
  }

  /**
   * Feeds one client from a flight: the error as is, or the spool as it grows. The client that
   * started the transfer gets the ETag the front caches (`"<digest>"`): its body ends only if
   * verified, and nginx keeps no response that ends short of its Content-Length. The others get
   * the digest unquoted, which the front passes on uncached (one copy in its cache, not one per
   * client), and `X-Accel-Buffering: no`, so the front relays their bytes as they come instead of
   * writing them through temp files of its own.
   */
  private async serve(flight: Flight, res: ServerResponse, initiator: boolean): Promise<void> {
    flight.readers++;
    this.clients++;
    if (!initiator) this.waiters++;
    let closed = false;
    /** The last chunk handed to `res`: it may not be sent yet when this client ends. */
    let sending: Chunk | undefined;
    res.on('close', () => (closed = true));
    try {
      while (flight.state === 'headers' && !closed) await flight.changed(res);
      if (closed) return;
      if (flight.status !== 200) {
        if (flight.refusal) this.metrics.refused.inc({ reason: flight.refusal });
        res.writeHead(flight.status, flight.headers).end(flight.errorBody);
        return;
      }
      if (flight.state === 'failed' && flight.written === 0) {
        res.destroy();
        return;
      }
      res.writeHead(200, {
        ...flight.headers,
        ...(initiator
          ? { etag: `"sha256:${flight.digestHex}"` }
          : { etag: `sha256:${flight.digestHex}`, 'x-accel-buffering': 'no' }),
      });
      let pos = 0;
      let generation = flight.generation;
      for (;;) {
        if (closed) return;
        if (flight.state === 'failed') {
          res.destroy();
          return;
        }
        if (generation !== flight.generation) {
          // The transfer started over: this client goes on only if what it got is what comes now.
          if (flight.firstDifference < pos) {
            this.log('client cut', {
              uri: flight.path,
              reason: 'it got bytes of a body that was not the digest',
              bytes: pos,
            });
            res.destroy();
            return;
          }
          if (flight.compared() < pos) {
            await flight.changed(res);
            continue;
          }
          generation = flight.generation;
        }
        const avail = flight.available();
        if (pos < avail) {
          const chunk = this.chunks.take(avail - pos);
          sending = chunk;
          const buf = chunk.buffer;
          const { bytesRead } = await flight.file!.read(buf, 0, Math.min(buf.length, avail - pos), pos);
          if (bytesRead === 0) throw new Error(`spool ended at ${pos}`);
          for (let off = 0; off < bytesRead; off += PIECE) {
            const sent = await send(
              res,
              buf.subarray(off, Math.min(off + PIECE, bytesRead)),
              this.limits.clientTimeoutMs,
            );
            if (sent === 'gone') return;
            if (sent === 'timeout') {
              this.counters.cut++;
              this.metrics.clientsCut.inc();
              this.log('client cut', {
                uri: flight.path,
                reason: `it took nothing for ${this.limits.clientTimeoutMs / 1000}s (--client-timeout)`,
                bytes: pos + off,
              });
              res.destroy();
              return;
            }
            this.metrics.sentBytes.inc(Math.min(PIECE, bytesRead - off));
          }
          pos += bytesRead;
          // sent: read into again, by this client or another
          chunk.release();
          sending = undefined;
          continue;
        }
        if (flight.state === 'verified') {
          res.end();
          return;
        }
        await flight.changed(res);
      }
    } catch (err) {
      this.log('client feed failed', { uri: flight.path, error: (err as Error).message });
      res.destroy();
    } finally {
      sending?.release(false);
      flight.readers--;
      this.clients--;
      if (!initiator) this.waiters--;
      // a client that got an error, or left before any answer, counts as a fallback
      const result = flight.status !== 200 ? 'fallback' : initiator ? (flight.result ?? 'miss') : 'coalesced';
      this.metrics.requests.inc({ result });
      void this.release(flight);
    }
  }

  /** Closes and removes a flight's spool once its transfer is over and no client reads it. */
  private async release(flight: Flight): Promise<void> {
    if (flight.readers > 0 || this.flights.get(flight.key) === flight) return;
    const previous = flight.previous;
    flight.previous = undefined;
    if (previous) {
      await previous.file.close().catch(() => undefined);
      await rm(previous.path, { force: true });
    }
    if (!flight.file) return;
    const file = flight.file;
    flight.file = undefined;
    await file.close().catch(() => undefined);
    await rm(flight.spoolPath, { force: true });
  }
}

/**
 * The owner of a digest among `peers`: rendezvous (highest random weight) hashing on the pod
 * names. The same set gives the same owner on every replica; a replica leaving or joining moves
 * only the digests it owned or comes to own.
 */
export function digestOwner<P extends Pick<Peer, 'name'>>(digestHex: string, peers: readonly P[]): P | undefined {
  let best: P | undefined;
  let bestScore = -1n;
  for (const p of peers) {
    const score = createHash('sha256').update(`${digestHex}/${p.name}`).digest().readBigUInt64BE(0);
    if (score > bestScore) [best, bestScore] = [p, score];
  }
  return best;
}

class TimeoutError extends Error {}

/** The first offset where `a` and `b` (of the same length) differ, or undefined. */
function firstDifference(a: Buffer, b: Buffer): number | undefined {
  if (a.equals(b)) return undefined;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return undefined;
}

/** Connections that close once their answer is sent (refuse()): nothing more on them is served. */
const closing = new WeakSet<Socket>();

/** Whether a request says a body follows its headers (a Content-Length other than 0, or a Transfer-Encoding). */
function announcesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Answers a request the fill does not serve. Its body, if it has one, is never read: the answer
 * closes the connection, so no byte of the body can be taken for a request of its own (by this
 * server or, forwarded, by Distribution).
 */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const body = `${message}\n`;
  const headers: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    allow: 'GET, HEAD',
  };
  if (announcesBody(req)) {
    headers.connection = 'close';
    closing.add(req.socket);
    req.socket.pause();
  }
  res.writeHead(status, headers).end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Writes `piece` to `res`: 'sent' once it is in the socket's kernel buffer, 'gone' when the client
 * left first, 'timeout' when it took nothing of it for `timeoutMs`.
 */
function send(res: ServerResponse, piece: Buffer, timeoutMs: number): Promise<'sent' | 'gone' | 'timeout'> {
  return new Promise((resolve) => {
    const done = (outcome: 'sent' | 'gone' | 'timeout'): void => {
      clearTimeout(timer);
      res.off('close', gone);
      resolve(outcome);
    };
    const gone = (): void => done('gone');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    res.on('close', gone);
    res.write(piece, (err) => done(err ? 'gone' : 'sent'));
  });
}

/**
 * How a transfer's first client was served, from the source's answer: Distribution serves a blob
 * from its storage with a Cache-Control header, and one it fetches from the upstream without
 * (its proxy sets only length, type, digest and ETag); it answers a manifest alike either way.
 */
function resultOf(src: Source, path: string, headers: IncomingHttpHeaders): FillResult {
  if (src.kind === 'replica') return 'peer';
  if (!path.includes('/blobs/')) return 'distribution';
  return headers['cache-control'] !== undefined ? 'hit' : 'miss';
}

function pick(headers: IncomingHttpHeaders, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = headers[n];
    if (typeof v === 'string') out[n] = v;
  }
  return out;
}
