/**
 * mirror-synth keeper: keeps a cache pod's store under its size bound (`spec.cache.maxSize`).
 *
 * - Recency: the front sends each request it served (`<status> <uri>`, a syslog datagram on the
 *   pod's loopback) to the keeper, front cache hits included, which Distribution never sees. The
 *   keeper records the manifest or blob's last use in memory and as the atime of its data file, so
 *   a restarted keeper still knows it (it sets atime itself: relatime volumes would not).
 * - Bound: every `interval`, and soon after the front reports a request, the keeper measures the
 *   whole volume (Distribution's store, the front's copy, the fill's spool). Above `high` of the
 *   bound, it evicts the least recently used images until `low` of it, never one used within
 *   `guard` (a node may be pulling it: its layers would go to the upstream again) or pinned
 *   (`<volume>/mirror-synth/pinned.json`, `{"digests": [...]}`).
 * - Safety, in this order: the links go first (tags, manifest revisions, layer links), so no new
 *   request finds the content; after `grace`, a blob that no repository links again goes, its data
 *   file unlinked. A read that opened the file before keeps reading all of it (POSIX unlink);
 *   Distribution opens a blob's file lazily after it found its link, which the grace covers.
 *   Distribution's in-memory blob descriptor cache, which would still list a deleted blob
 *   (distribution#4191), is off in mirrors with a keeper (construct/distribution-config.ts).
 *   A blob whose link is gone is fetched again from the upstream by Distribution (proxy mode), or
 *   answered 404 with the upstream down, which the front turns into the node's fallback.
 * - The front's copy is nginx's own cache, bounded by its `max_size` (a share of the bound); the
 *   keeper counts it and never touches it.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFile, rm, rmdir, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { PINNED_DIGESTS_FILE } from '../api/names.js';
import { createKeeperMetrics, type KeeperMetrics } from './metrics.js';
import {
  blobDataPath,
  DISTRIBUTION_V2,
  type ManifestRefs,
  manifestRefs,
  planEviction,
  type RepositoryInfo,
  scanStore,
  type StoreScan,
} from './store.js';

/** Where the pre-warm writes the pinned images' digests, under the volume. */
/** The digests `mirror-synth warm` pinned, under the store (its writer and this reader share the name). */
export const PINNED_FILE = PINNED_DIGESTS_FILE;

export interface KeeperOptions {
  /** The cache volume's mount point (Distribution's root directory). */
  readonly root: string;
  /** The bound, in bytes. */
  readonly maxBytes: number;
  /** Distribution keeps its store on the volume (not in a bucket): the keeper evicts from it. */
  readonly distribution: boolean;
  /** Evict when the volume holds more than this share of the bound. @default 0.8 */
  readonly high?: number;
  /** ...down to this share. @default 0.65 */
  readonly low?: number;
  /** Milliseconds between scans. @default 10000 */
  readonly intervalMs?: number;
  /** Nothing used in the last `guardMs` is evicted. @default 2000 */
  readonly guardMs?: number;
  /** Milliseconds between removing a blob's links and its data. @default 1000 */
  readonly graceMs?: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

interface PinnedState {
  readonly digests: ReadonlySet<string>;
  readonly problem?: string;
}

export class Keeper {
  readonly metrics: KeeperMetrics;
  private readonly lastUse = new Map<string, number>();
  private readonly refsCache = new Map<string, ManifestRefs>();
  private socket?: Socket;
  private timer?: NodeJS.Timeout;
  private soon?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private lastScan?: StoreScan;
  private pinnedProblem?: string;

  constructor(private readonly opts: KeeperOptions) {
    this.metrics = createKeeperMetrics(opts.maxBytes);
  }

  private get v2(): string {
    return join(this.opts.root, DISTRIBUTION_V2);
  }

  /** Listen for the front's requests on UDP `port` (the pod's loopback), and start scanning. */
  async start(log?: { host: string; port: number }): Promise<void> {
    if (log) {
      const socket = createSocket('udp4');
      socket.on('message', (msg) => this.onLog(msg.toString('utf8')));
      socket.on('error', (err) => this.opts.log('log socket error', { error: err.message }));
      await new Promise<void>((resolve) => socket.bind(log.port, log.host, resolve));
      this.socket = socket;
    }
    await this.scanNow();
    this.timer = setInterval(() => void this.scanNow(), this.opts.intervalMs ?? 10_000);
  }

  /** The UDP port the log socket listens on (a test binds port 0). */
  get logPort(): number | undefined {
    return this.socket?.address().port;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.socket?.close();
    await this.running;
  }

  /** One syslog datagram of the front: `<pri>...: <status> <uri>`. */
  private onLog(line: string): void {
    const m = /(\d{3}) (\/v2\/(.+)\/(blobs|manifests)\/([^/\s]+))\s*$/.exec(line);
    if (!m) return;
    const [, status, , repository, kind, ref] = m;
    if (status !== '200' && status !== '304') return;
    const now = Date.now();
    if (/^sha256:[0-9a-f]{64}$/.test(ref)) this.touch(ref, now);
    else if (kind === 'manifests' && this.opts.distribution) void this.touchTag(repository, ref, now);
    // a served request may have added to the store: measure soon
    if (!this.soon && !this.stopped)
      this.soon = setTimeout(() => {
        this.soon = undefined;
        void this.scanNow();
      }, 250);
  }

  private touch(digest: string, now: number): void {
    this.lastUse.set(digest, now);
    if (!this.opts.distribution) return;
    const file = blobDataPath(this.opts.root, digest);
    const seconds = now / 1000;
    // atime, for a keeper restarted later; mtime as it was (Distribution does not read either)
    void readMtime(file).then((mtime) =>
      mtime === undefined ? undefined : utimes(file, seconds, mtime).catch(() => undefined),
    );
  }

  private async touchTag(repository: string, tag: string, now: number): Promise<void> {
    const link = join(this.v2, 'repositories', repository, '_manifests', 'tags', tag, 'current', 'link');
    const digest = (await readFile(link, 'utf8').catch(() => '')).trim();
    if (/^sha256:[0-9a-f]{64}$/.test(digest)) this.touch(digest, now);
  }

  /** Scan, and evict if needed; scans never overlap (one asked for during a scan runs after it). */
  scanNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.keep()
      .catch((err: unknown) => {
        this.metrics.errors.inc();
        this.opts.log('keeper scan failed', { error: (err as Error).message });
      })
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.scanNow();
        }
      });
    return this.running;
  }

  private async pinned(): Promise<PinnedState> {
    const file = join(this.opts.root, PINNED_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return { digests: new Set() };
    }
    try {
      const doc = JSON.parse(text) as { digests?: unknown };
      if (!Array.isArray(doc.digests)) throw new Error('no "digests" list');
      return { digests: new Set(doc.digests.filter((d): d is string => typeof d === 'string')) };
    } catch (err) {
      return { digests: new Set(), problem: `${file}: ${(err as Error).message}` };
    }
  }

  private refs(digest: string): ManifestRefs {
    return this.refsCache.get(digest) ?? { children: [], blobs: [] };
  }

  private async loadRefs(scan: StoreScan): Promise<void> {
    const seen = new Set<string>();
    for (const repo of scan.repositories) {
      for (const d of repo.revisions) {
        seen.add(d);
        if (this.refsCache.has(d)) continue;
        const text = await readFile(blobDataPath(this.opts.root, d), 'utf8').catch(() => undefined);
        if (text !== undefined) this.refsCache.set(d, manifestRefs(text));
      }
    }
    for (const d of this.refsCache.keys()) if (!seen.has(d)) this.refsCache.delete(d);
  }

  private async keep(): Promise<void> {
    const { maxBytes } = this.opts;
    const high = (this.opts.high ?? 0.8) * maxBytes;
    const low = (this.opts.low ?? 0.65) * maxBytes;
    let scan = await scanStore(this.opts.root, { distribution: this.opts.distribution });
    const pinned = await this.pinned();
    if (pinned.problem !== this.pinnedProblem) {
      this.pinnedProblem = pinned.problem;
      if (pinned.problem)
        this.opts.log('pinned list unreadable: nothing evicted until it is fixed', { problem: pinned.problem });
    }
    this.observe(scan, pinned.digests);
    // An unreadable pin list may name anything: evict nothing rather than a pinned image.
    if (!this.opts.distribution || scan.usedBytes <= high || pinned.problem) return;
    await this.loadRefs(scan);
    const plan = planEviction(scan, {
      needBytes: scan.usedBytes - low,
      pinned: pinned.digests,
      lastUse: (d) => this.lastUse.get(d),
      notAfterMs: Date.now() - (this.opts.guardMs ?? 2_000),
      refs: (d) => this.refs(d),
    });
    if (plan.evictions.length === 0 && plan.blobs.length === 0) {
      this.opts.log('over the bound with nothing to evict (all in use or pinned)', {
        usedBytes: scan.usedBytes,
        maxBytes,
      });
      return;
    }
    // 1. links: no request finds the content any more
    for (const e of plan.evictions) await this.unlink(e.repository!, e.revisions, e.layers, e.tags);
    // 2. after the grace, the data no repository links again
    await new Promise((r) => setTimeout(r, this.opts.graceMs ?? 1_000));
    let freedBytes = 0;
    let freedBlobs = 0;
    const repositories = (await scanStore(this.opts.root, { distribution: true })).repositories;
    for (const d of plan.blobs) {
      if (pinned.digests.has(d)) continue;
      if (await this.linkedAnywhere(d, repositories)) continue;
      const file = blobDataPath(this.opts.root, d);
      const bytes = scan.blobs.get(d)?.bytes ?? 0;
      try {
        await rm(file);
      } catch {
        continue;
      }
      await rmdir(dirname(file)).catch(() => undefined);
      freedBytes += bytes;
      freedBlobs++;
      this.lastUse.delete(d);
    }
    this.metrics.evictedBytes.inc(freedBytes);
    this.metrics.evictedObjects.inc({ kind: 'image' }, plan.evictions.filter((e) => e.manifest).length);
    this.metrics.evictedObjects.inc({ kind: 'blob' }, freedBlobs);
    scan = await scanStore(this.opts.root, { distribution: true });
    this.observe(scan, pinned.digests);
    this.opts.log('evicted', {
      images: plan.evictions.filter((e) => e.manifest).map((e) => `${e.repository!.name}@${e.manifest!}`),
      blobs: freedBlobs,
      freedBytes,
      usedBytes: scan.usedBytes,
      maxBytes,
    });
  }

  private observe(scan: StoreScan, pinned: ReadonlySet<string>): void {
    this.lastScan = scan;
    this.metrics.storeBytes.set(scan.usedBytes);
    let pinnedBytes = 0;
    for (const d of pinned) pinnedBytes += scan.blobs.get(d)?.bytes ?? 0;
    this.metrics.pinnedBytes.set(pinnedBytes);
    this.metrics.scans.inc();
  }

  /** The last scan's figures, for the command's stop line. */
  stats(): { usedBytes?: number; maxBytes: number } {
    return { usedBytes: this.lastScan?.usedBytes, maxBytes: this.opts.maxBytes };
  }

  private async unlink(
    repo: RepositoryInfo,
    revisions: readonly string[],
    layers: readonly string[],
    tags: readonly string[],
  ): Promise<void> {
    const hex = (d: string): string => d.slice('sha256:'.length);
    // tags first, then the manifests they name, then the layers: a manifest never outlives its links
    for (const t of tags) await rm(join(repo.dir, '_manifests', 'tags', t), { recursive: true, force: true });
    for (const d of revisions)
      await rm(join(repo.dir, '_manifests', 'revisions', 'sha256', hex(d)), { recursive: true, force: true });
    for (const d of layers) await rm(join(repo.dir, '_layers', 'sha256', hex(d)), { recursive: true, force: true });
  }

  /**
   * Whether any repository links `digest` now (Distribution may have fetched it again since the
   * plan): its link files, read just before the data would go.
   */
  private async linkedAnywhere(digest: string, repositories: readonly RepositoryInfo[]): Promise<boolean> {
    const hex = digest.slice('sha256:'.length);
    for (const r of repositories) {
      for (const f of [
        join(r.dir, '_layers', 'sha256', hex, 'link'),
        join(r.dir, '_manifests', 'revisions', 'sha256', hex, 'link'),
      ])
        if (
          await stat(f).then(
            () => true,
            () => false,
          )
        )
          return true;
    }
    return false;
  }
}

async function readMtime(file: string): Promise<number | undefined> {
  const s = await stat(file).catch(() => undefined);
  return s ? s.mtimeMs / 1000 : undefined;
}
