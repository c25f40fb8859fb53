/**
 * The cache volume as the keeper sees it: what Distribution's filesystem driver keeps (its layout:
 * `docker/registry/v2/blobs/sha256/<2>/<hex>/data`, and per repository `_manifests/revisions`,
 * `_manifests/tags` and `_layers` links), how much the whole volume holds (the front's copy and the
 * fill's spool included), and the plan of what to evict to get under the bound.
 *
 * The unit of eviction is an image in a repository: a manifest revision no index of the repository
 * lists, with the manifests its index lists. Evicting it removes its tags, its revision links and
 * the layer links nothing kept in the repository uses; a blob's data goes only once no repository
 * links it (and never when it is pinned). So no manifest is ever left whose blobs are gone: a kept
 * manifest keeps its links, and Distribution fetches a blob whose link is gone from the upstream
 * again (proxy mode), or, upstream down, answers 404 and the node falls back.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Distribution's filesystem layout under its root directory. */
export const DISTRIBUTION_V2 = join('docker', 'registry', 'v2');

const HEX = /^[0-9a-f]{64}$/;

export interface BlobInfo {
  /** Bytes allocated on the volume (st_blocks * 512). */
  readonly bytes: number;
  /** Last use the filesystem knows: the later of atime (the keeper sets it on each use) and mtime. */
  readonly usedMs: number;
}

export interface RepositoryInfo {
  /** The repository's name (`library/nginx`). */
  readonly name: string;
  /** Its directory. */
  readonly dir: string;
  /** Manifest digests it has a revision link for. */
  readonly revisions: ReadonlySet<string>;
  /** Blob digests it has a layer link for. */
  readonly layers: ReadonlySet<string>;
  /** Tags, to the manifest digest their `current` link names. */
  readonly tags: ReadonlyMap<string, string>;
}

export interface StoreScan {
  /** Bytes allocated under the volume's root: Distribution's store, the front's cache, the spool, everything. */
  readonly usedBytes: number;
  readonly blobs: ReadonlyMap<string, BlobInfo>;
  readonly repositories: readonly RepositoryInfo[];
}

/** What a manifest lists: child manifests (an index) or its config and layers. */
export interface ManifestRefs {
  readonly children: readonly string[];
  readonly blobs: readonly string[];
}

export function blobDataPath(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, DISTRIBUTION_V2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

async function entries(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** Bytes allocated under `dir` (files and directories, as du counts them); vanished entries count 0. */
export async function allocatedBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await entries(d)) {
      const p = join(d, e.name);
      const s = await lstat(p).catch(() => undefined);
      if (!s) continue;
      total += s.blocks * 512;
      if (s.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return total;
}

async function readLink(file: string): Promise<string | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return /^sha256:[0-9a-f]{64}$/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

async function linkedDigests(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const e of await entries(join(dir, 'sha256'))) {
    if (e.isDirectory() && HEX.test(e.name)) out.add(`sha256:${e.name}`);
  }
  return out;
}

async function scanRepositories(base: string, name: string, out: RepositoryInfo[]): Promise<void> {
  const list = await entries(base);
  if (list.some((e) => e.name === '_manifests' || e.name === '_layers')) {
    const tags = new Map<string, string>();
    for (const t of await entries(join(base, '_manifests', 'tags'))) {
      const d = await readLink(join(base, '_manifests', 'tags', t.name, 'current', 'link'));
      if (d) tags.set(t.name, d);
    }
    out.push({
      name,
      dir: base,
      revisions: await linkedDigests(join(base, '_manifests', 'revisions')),
      layers: await linkedDigests(join(base, '_layers')),
      tags,
    });
  }
  for (const e of list) {
    if (e.isDirectory() && !e.name.startsWith('_'))
      await scanRepositories(join(base, e.name), name ? `${name}/${e.name}` : e.name, out);
  }
}

/** Everything the keeper reads from the volume in one pass. */
export async function scanStore(root: string, opts: { distribution: boolean }): Promise<StoreScan> {
  const usedBytes = await allocatedBytes(root);
  const blobs = new Map<string, BlobInfo>();
  const repositories: RepositoryInfo[] = [];
  if (opts.distribution) {
    const blobRoot = join(root, DISTRIBUTION_V2, 'blobs', 'sha256');
    for (const prefix of await entries(blobRoot)) {
      for (const b of await entries(join(blobRoot, prefix.name))) {
        if (!HEX.test(b.name)) continue;
        const s = await stat(join(blobRoot, prefix.name, b.name, 'data')).catch(() => undefined);
        if (!s) continue;
        blobs.set(`sha256:${b.name}`, { bytes: s.blocks * 512, usedMs: Math.max(s.atimeMs, s.mtimeMs) });
      }
    }
    await scanRepositories(join(root, DISTRIBUTION_V2, 'repositories'), '', repositories);
  }
  return { usedBytes, blobs, repositories };
}

/** What a manifest's JSON lists; an unreadable one lists nothing (its revision is evicted alone). */
export function manifestRefs(text: string): ManifestRefs {
  let doc: { manifests?: { digest?: unknown }[]; config?: { digest?: unknown }; layers?: { digest?: unknown }[] };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    return { children: [], blobs: [] };
  }
  const digests = (list: { digest?: unknown }[] | undefined): string[] =>
    (list ?? []).flatMap((d) => (typeof d?.digest === 'string' ? [d.digest] : []));
  return {
    children: digests(doc.manifests),
    blobs: [...digests(doc.config ? [doc.config] : []), ...digests(doc.layers)],
  };
}

/** A unit the keeper may evict, with what removing it takes away. */
export interface Eviction {
  /** The repository, or undefined for data no repository links (left by a TTL expiry, or a removed link). */
  readonly repository?: RepositoryInfo;
  /** The image's manifest (its index, for a multi-platform image); undefined for a lone layer link or data. */
  readonly manifest?: string;
  /** Revision links to remove (the manifest and the child manifests no kept index lists). */
  readonly revisions: readonly string[];
  /** Layer links to remove. */
  readonly layers: readonly string[];
  /** Tags naming one of the removed revisions. */
  readonly tags: readonly string[];
  /** Last use. */
  readonly usedMs: number;
}

export interface EvictionPlan {
  readonly evictions: readonly Eviction[];
  /** Blobs whose data goes once the links are gone: no repository links them any more, and none is pinned. */
  readonly blobs: readonly string[];
  /** Bytes those blobs hold. */
  readonly bytes: number;
}

export interface PlanOptions {
  /** Bytes to free. */
  readonly needBytes: number;
  /** Never evicted: every digest of a pinned image. */
  readonly pinned: ReadonlySet<string>;
  /** Last use of a digest the keeper saw served, beyond what the filesystem says. */
  readonly lastUse: (digest: string) => number | undefined;
  /** Nothing used after this is evicted: it may be being served. */
  readonly notAfterMs: number;
  /** A manifest's references (read once per digest: content by digest never changes). */
  readonly refs: (digest: string) => ManifestRefs;
}

/**
 * Least recently used first: the images, lone layer links and unlinked data to evict to free
 * `needBytes`, or as much as can be freed without touching what is pinned or in use.
 */
export function planEviction(scan: StoreScan, opts: PlanOptions): EvictionPlan {
  const used = (d: string): number => Math.max(scan.blobs.get(d)?.usedMs ?? 0, opts.lastUse(d) ?? 0);
  // Links per blob, every repository together: data goes when the count reaches 0.
  const links = new Map<string, number>();
  const link = (d: string, n: number): void => {
    links.set(d, (links.get(d) ?? 0) + n);
  };
  interface Candidate extends Eviction {
    /** Unlinked data: its digest. */
    readonly orphan?: string;
  }
  const candidates: Candidate[] = [];
  for (const repo of scan.repositories) {
    for (const d of repo.revisions) link(d, 1);
    for (const d of repo.layers) link(d, 1);
    const childOf = new Set<string>();
    for (const m of repo.revisions) for (const c of opts.refs(m).children) childOf.add(c);
    const roots = [...repo.revisions].filter((m) => !childOf.has(m));
    const referenced = new Set<string>();
    for (const root of roots) {
      const manifests = [root, ...opts.refs(root).children.filter((c) => repo.revisions.has(c))];
      const blobs = new Set(manifests.flatMap((m) => opts.refs(m).blobs));
      for (const b of blobs) referenced.add(b);
      const pinned = manifests.some((m) => opts.pinned.has(m));
      if (pinned) continue;
      candidates.push({
        repository: repo,
        manifest: root,
        revisions: manifests,
        layers: [...blobs].filter((b) => repo.layers.has(b)),
        tags: [...repo.tags].filter(([, d]) => manifests.includes(d)).map(([t]) => t),
        usedMs: Math.max(...manifests.map(used)),
      });
    }
    for (const b of repo.layers) {
      if (referenced.has(b) || opts.pinned.has(b)) continue;
      candidates.push({ repository: repo, revisions: [], layers: [b], tags: [], usedMs: used(b) });
    }
  }
  for (const d of scan.blobs.keys()) {
    if (!links.has(d) && !opts.pinned.has(d)) candidates.push({ revisions: [], layers: [], tags: [], usedMs: used(d) });
  }
  candidates.sort((a, b) => a.usedMs - b.usedMs);

  // A layer link another kept image of the same repository uses stays.
  const keptUse = new Map<RepositoryInfo, Map<string, number>>();
  for (const c of candidates) {
    if (!c.repository || !c.manifest) continue;
    const uses = keptUse.get(c.repository) ?? new Map<string, number>();
    keptUse.set(c.repository, uses);
    for (const b of c.layers) uses.set(b, (uses.get(b) ?? 0) + 1);
  }
  // Pinned images' layers are used too.
  for (const repo of scan.repositories) {
    const uses = keptUse.get(repo) ?? new Map<string, number>();
    keptUse.set(repo, uses);
    for (const m of repo.revisions)
      if (opts.pinned.has(m)) for (const b of opts.refs(m).blobs) uses.set(b, (uses.get(b) ?? 0) + 1);
  }

  const evictions: Eviction[] = [];
  const freed: string[] = [];
  let bytes = 0;
  const release = (d: string): void => {
    const n = (links.get(d) ?? 0) - 1;
    links.set(d, n);
    if (n <= 0 && !opts.pinned.has(d) && scan.blobs.has(d)) {
      freed.push(d);
      bytes += scan.blobs.get(d)!.bytes;
    }
  };
  for (const c of candidates) {
    if (bytes >= opts.needBytes) break;
    if (c.usedMs > opts.notAfterMs) break;
    if (c.orphan !== undefined) {
      freed.push(c.orphan);
      bytes += scan.blobs.get(c.orphan)!.bytes;
      continue;
    }
    if (!c.repository) continue;
    let layers = c.layers;
    if (c.manifest) {
      const uses = keptUse.get(c.repository)!;
      for (const b of c.layers) uses.set(b, (uses.get(b) ?? 1) - 1);
      layers = c.layers.filter((b) => (uses.get(b) ?? 0) <= 0);
    }
    const eviction: Eviction = {
      repository: c.repository,
      ...(c.manifest ? { manifest: c.manifest } : {}),
      revisions: c.revisions,
      layers,
      tags: c.tags,
      usedMs: c.usedMs,
    };
    evictions.push(eviction);
    for (const d of eviction.revisions) release(d);
    for (const d of eviction.layers) release(d);
  }
  return { evictions, blobs: [...new Set(freed)], bytes };
}
