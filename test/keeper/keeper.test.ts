// The keeper's eviction on a store laid out as Distribution's filesystem driver lays it out (in a
// temp dir): least recently used images first, never a pinned one, never a manifest left whose
// blobs are gone, a layer two images share kept while one of them is. The end-to-end proof, with
// Distribution, the front and both fills, is test/e2e/size-bound.test.ts.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Keeper, PINNED_FILE } from '../../src/keeper/keeper.js';
import { allocatedBytes, blobDataPath, DISTRIBUTION_V2, manifestRefs } from '../../src/keeper/store.js';

const KIB = 1024;
let root: string;

function digestOf(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function blob(content: Buffer, usedSecondsAgo: number): Promise<string> {
  const d = digestOf(content);
  const file = blobDataPath(root, d);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, content);
  const t = Date.now() / 1000 - usedSecondsAgo;
  await utimes(file, t, t);
  return d;
}

async function link(repo: string, kind: '_layers' | '_manifests/revisions', d: string): Promise<void> {
  const dir = join(root, DISTRIBUTION_V2, 'repositories', repo, kind, 'sha256', d.slice(7));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'link'), d);
}

/** An image as Distribution's proxy keeps it once pulled: blobs, manifest, links and its tag. */
async function image(
  repo: string,
  layers: Buffer[],
  usedSecondsAgo: number,
): Promise<{ manifest: string; blobs: string[] }> {
  const blobs: string[] = [];
  for (const l of layers) blobs.push(await blob(l, usedSecondsAgo));
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { digest: blobs[0], size: layers[0].length },
      layers: blobs.slice(1).map((digest, i) => ({ digest, size: layers[i + 1].length })),
    }),
  );
  const manifest = await blob(body, usedSecondsAgo);
  for (const d of blobs) await link(repo, '_layers', d);
  await link(repo, '_manifests/revisions', manifest);
  const tag = join(root, DISTRIBUTION_V2, 'repositories', repo, '_manifests', 'tags', '1.0', 'current');
  await mkdir(tag, { recursive: true });
  await writeFile(join(tag, 'link'), manifest);
  return { manifest, blobs };
}

const exists = (f: string) =>
  stat(f).then(
    () => true,
    () => false,
  );
const bytes = (seed: string, n: number) => Buffer.alloc(n, seed);

async function keep(maxBytes: number): Promise<Keeper> {
  const k = new Keeper({ root, maxBytes, distribution: true, graceMs: 0, guardMs: 0, log: () => undefined });
  await k.scanNow();
  return k;
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ms-keeper-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('mirror-synth keeper', () => {
  it('evicts the least recently used images until under the bound, with their tags, manifests and links', async () => {
    const old = await image('lib/old', [bytes('a', 4 * KIB), bytes('b', 200 * KIB)], 300);
    const mid = await image('lib/mid', [bytes('c', 4 * KIB), bytes('d', 200 * KIB)], 200);
    const recent = await image('lib/recent', [bytes('e', 4 * KIB), bytes('f', 200 * KIB)], 100);
    // a bound the store is just over 80 % of: the keeper evicts about a fifth of it (to 65 %), one image
    const k = await keep((await allocatedBytes(root)) / 0.81);
    for (const d of [old.manifest, ...old.blobs]) expect(await exists(blobDataPath(root, d))).toBe(false);
    expect(await exists(join(root, DISTRIBUTION_V2, 'repositories', 'lib/old', '_manifests', 'tags', '1.0'))).toBe(
      false,
    );
    for (const img of [mid, recent])
      for (const d of [img.manifest, ...img.blobs]) expect(await exists(blobDataPath(root, d))).toBe(true);
    const metrics = await k.metrics.registry.metrics();
    expect(metrics).toMatch(/^registry_mirror_keeper_evicted_objects_total\{kind="image"\} 1$/m);
    expect(metrics).toMatch(/^registry_mirror_keeper_evicted_objects_total\{kind="blob"\} 3$/m);
  });

  it('keeps a layer another kept image links, and never a pinned image', async () => {
    const shared = bytes('s', 200 * KIB);
    const pinned = await image('lib/pinned', [bytes('p', 4 * KIB), bytes('q', 200 * KIB)], 900);
    const old = await image('lib/old', [bytes('a', 4 * KIB), shared], 300);
    const kept = await image('lib/kept', [bytes('k', 4 * KIB), shared], 100);
    await mkdir(join(root, 'mirror-synth'));
    await writeFile(join(root, PINNED_FILE), JSON.stringify({ digests: [pinned.manifest, ...pinned.blobs] }));
    // the pinned image is the oldest; a bound that makes the keeper evict more than one image
    await keep((await allocatedBytes(root)) * 0.9);
    for (const d of [pinned.manifest, ...pinned.blobs]) expect(await exists(blobDataPath(root, d))).toBe(true);
    // old went (its manifest and config); the layer it shared with kept stays while kept links it
    expect(await exists(blobDataPath(root, old.manifest))).toBe(false);
    expect(await exists(blobDataPath(root, digestOf(shared)))).toBe(
      await exists(
        join(
          root,
          DISTRIBUTION_V2,
          'repositories',
          'lib/kept',
          '_manifests',
          'revisions',
          'sha256',
          kept.manifest.slice(7),
        ),
      ),
    );
  });

  it('never leaves a manifest whose blobs are gone', async () => {
    for (let i = 0; i < 12; i++)
      await image(`lib/app${i}`, [bytes(`c${i}`, 4 * KIB), bytes(`l${i}`, 100 * KIB)], 1000 - i);
    await keep((await allocatedBytes(root)) * 0.9);
    const repos = join(root, DISTRIBUTION_V2, 'repositories', 'lib');
    let kept = 0;
    for (const repo of await readdir(repos)) {
      const revs = join(repos, repo, '_manifests', 'revisions', 'sha256');
      for (const hex of await readdir(revs).catch(() => [])) {
        kept++;
        const refs = manifestRefs(await readFile(blobDataPath(root, `sha256:${hex}`), 'utf8'));
        for (const d of refs.blobs) expect(await exists(blobDataPath(root, d)), `${repo}: ${d}`).toBe(true);
      }
    }
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(12);
  });

  it('evicts nothing while the pin list is unreadable', async () => {
    const old = await image('lib/old', [bytes('a', 4 * KIB), bytes('b', 200 * KIB)], 300);
    await mkdir(join(root, 'mirror-synth'));
    await writeFile(join(root, PINNED_FILE), '{"digests": [');
    await keep(100 * KIB);
    expect(await exists(blobDataPath(root, old.manifest))).toBe(true);
  });
});
