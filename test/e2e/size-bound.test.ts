// spec.cache.maxSize, end to end: the synthesized cache pod (Debian's nginx with the ConfigMap's
// nginx.conf, Distribution behind it, mirror-synth fill with spec.fill: streaming, and mirror-synth
// keeper as its container runs it) in front of a real upstream (Distribution, TLS, htpasswd) capped
// at 2 MiB/s. Far more distinct images than the bound holds are pulled one after the other, each
// checked byte for byte; the whole volume is measured every 100 ms beside them. The store stays
// under the bound, readiness stays green, no pull fails, the last images pulled are served again
// without the upstream, and no manifest is left whose blobs are gone. With the upstream gone, an
// evicted image is a 404 (the node's fallback), never a 200 with a short body.
import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import { TEST_FILL_IMAGE } from '../support/components/fill.js';
import { KeeperProcess } from '../support/components/keeper.js';
import { startSynthesizedMirror, startUpstream, type Upstream } from '../support/components/registry.js';
import { ThrottledProxy } from '../support/faults/throttle.js';
import { buildImage, RegistryClient, RegistryError, type TestImage } from '../support/fixtures/images.js';

const execFileAsync = promisify(execFile);
const NAME = 'sb';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'sb-Pa55word';
const MIB = 2 ** 20;
const BOUND = 64 * MIB;
/** Per fill: distinct images of 3.25 MiB each, about 2.4 times the bound; both fills together about 5 times. */
const IMAGES = 48;
const LAYERS = [64 * 1024, 2.5 * MIB, 0.75 * MIB];
/** Each fill's test: pushing and pulling about 160 MiB at RATE (80 s), which took up to 458 s on 2 busy cores. */
const TIMEOUT_MS = 900_000;
const RATE = 2 * MIB;

/**
 * Bytes allocated under `dir`, as du counts them (du -s -B1). A file that goes while du walks (a
 * temp file renamed, an evicted blob) makes it exit 1 with the total of the rest: that total.
 */
async function du(dir: string): Promise<number> {
  const stdout = await execFileAsync('du', ['-s', '-B1', dir]).then(
    (r) => r.stdout,
    (err: unknown) => (err as { stdout?: string }).stdout ?? '',
  );
  const bytes = Number(stdout.split('\t')[0]);
  if (!Number.isFinite(bytes) || stdout === '') throw new Error(`du -s -B1 ${dir} printed no total`);
  return bytes;
}

/**
 * Every manifest revision left in Distribution's store whose own data, or its config's or a
 * layer's, is gone (an index lists manifests, each a revision of its own when it was pulled).
 */
async function manifestsMissingBlobs(volume: string): Promise<string[]> {
  const v2 = join(volume, 'docker', 'registry', 'v2');
  const data = (d: string) => join(v2, 'blobs', 'sha256', d.slice(7, 9), d.slice(7), 'data');
  const present = (d: string) =>
    stat(data(d)).then(
      () => true,
      () => false,
    );
  const missing: string[] = [];
  const repos = join(v2, 'repositories');
  for (const ns of await readdir(repos).catch(() => [])) {
    for (const repo of await readdir(join(repos, ns)).catch(() => [])) {
      const revisions = join(repos, ns, repo, '_manifests', 'revisions', 'sha256');
      for (const hex of await readdir(revisions).catch(() => [])) {
        const digest = `sha256:${hex}`;
        if (!(await present(digest))) {
          missing.push(`${ns}/${repo}@${digest}: the manifest itself`);
          continue;
        }
        const manifest = JSON.parse(await readFile(data(digest), 'utf8')) as {
          config?: { digest: string };
          layers?: { digest: string }[];
        };
        for (const d of [manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest)]) {
          if (d !== undefined && !(await present(d))) missing.push(`${ns}/${repo}@${digest}: ${d}`);
        }
      }
    }
  }
  return missing;
}

describe('spec.cache.maxSize: a store bounded by size', () => {
  let dir: string;
  let upstream: Upstream;
  let slow: ThrottledProxy;
  let client: RegistryClient;
  let images = 0;

  async function newImage(): Promise<TestImage> {
    const image = buildImage({
      repository: `sb/app${++images}`,
      tag: '1.0',
      layerSizes: LAYERS,
      platforms: ['linux/amd64'],
    });
    await client.push(image);
    return image;
  }

  async function startMirror(sub: string, fill: 'whole' | 'streaming') {
    const objects = synthesizeMirror(
      {
        name: NAME,
        spec: {
          upstreamUrl: slow.host,
          credentialsSecret: SECRET,
          fill,
          volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
          cache: { maxSize: '64Mi' },
        },
        source: 'size-bound',
      },
      { namespace: 'test', fillImage: TEST_FILL_IMAGE },
    );
    const volume = join(dir, sub, 'distribution', 'data');
    const keeper = await KeeperProcess.start({ objects, name: NAME, volume });
    const mirror = await startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, sub),
      name: NAME,
      objects,
      secrets: { [SECRET]: { username: USER, password: PASSWORD } },
      upstreamCaFile: upstream.ca.caCert,
      keeperLogPort: keeper.logPort,
    });
    return { mirror, keeper, volume };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-sb-'));
    upstream = await startUpstream({
      binary: inject('registryBinary'),
      dir: join(dir, 'upstream'),
      username: USER,
      password: PASSWORD,
    });
    slow = await ThrottledProxy.start({ target: { host: '127.0.0.1', port: upstream.port }, bytesPerSecond: RATE });
    client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
  });

  afterAll(async () => {
    client?.close();
    await slow?.stop();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  async function churn(fill: 'whole' | 'streaming', withOutage: boolean): Promise<void> {
    // pushed first (to the upstream itself, four at a time): the loop below is pulls alone
    const pushed: TestImage[] = [];
    for (let i = 0; i < IMAGES; i += 4)
      pushed.push(...(await Promise.all(Array.from({ length: Math.min(4, IMAGES - i) }, () => newImage()))));
    const { mirror, keeper, volume } = await startMirror(fill, fill);
    const node = new RegistryClient({ url: mirror.url });
    let peak = 0;
    let sampling = true;
    const notReady: string[] = [];
    const sampler = (async () => {
      for (let i = 0; sampling; i++) {
        peak = Math.max(peak, await du(volume));
        if (i % 10 === 0) {
          const r = await mirror.front!.ready();
          if (!r.ok) notReady.push(r.output);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const pulled: TestImage[] = [];
    const failures: string[] = [];
    let bytes = 0;
    try {
      for (const image of pushed) {
        try {
          const got = await node.pull(image.repository, image.tag);
          expect(got).toMatchObject({ digest: image.digest, bytes: image.bytes('linux/amd64') });
          bytes += got.bytes;
          pulled.push(image);
        } catch (err) {
          failures.push(`${image.repository}: ${(err as Error).message}`);
        }
      }
      // the last images pulled are still in the cache: pulled again, the upstream sends no blob
      const recent = pulled.slice(-3);
      const mark = upstream.mark();
      for (const image of recent) {
        const got = await node.pull(image.repository, image.tag);
        expect(got).toMatchObject({ digest: image.digest, bytes: image.bytes('linux/amd64') });
      }
      sampling = false;
      await sampler;
      const evictions = keeper.evictions();
      const figures = {
        fill,
        boundMiB: BOUND / MIB,
        pulledMiB: +(bytes / MIB).toFixed(1),
        peakStoreMiB: +(peak / MIB).toFixed(1),
        pullsFailed: failures.length,
        evictionRounds: evictions.length,
        imagesEvicted: evictions.reduce((n, e) => n + e.images.length, 0),
      };
      console.log(`size bound: ${JSON.stringify(figures)}`);
      expect(failures).toEqual([]);
      expect(bytes).toBeGreaterThan(2 * BOUND);
      expect(peak).toBeLessThanOrEqual(BOUND);
      expect(notReady).toEqual([]);
      expect(figures.imagesEvicted).toBeGreaterThan(IMAGES / 2);
      expect(upstream.blobGets(mark).total).toBe(0);
      expect(await manifestsMissingBlobs(volume)).toEqual([]);
      const metrics = await (await fetch(keeper.metricsUrl)).text();
      expect(metrics).toMatch(/^registry_mirror_keeper_bound_bytes 67108864$/m);
      expect(Number(/^registry_mirror_keeper_evicted_bytes_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(BOUND);

      if (withOutage) {
        // the upstream gone: an evicted image is the node's fallback (404), a kept one still whole
        await slow.stop();
        const evicted = pulled[0];
        const err = await node.pull(evicted.repository, evicted.tag).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RegistryError);
        expect((err as RegistryError).status).toBe(404);
        const kept = pulled.at(-1)!;
        expect(await node.pull(kept.repository, kept.tag)).toMatchObject({ digest: kept.digest });
      }
    } finally {
      sampling = false;
      await sampler;
      node.close();
      await mirror.dispose();
      await keeper.stop();
    }
  }

  it(
    `spec.fill: whole: ${IMAGES} distinct images through a 64 MiB bound, each byte checked`,
    async () => {
      await churn('whole', false);
    },
    TIMEOUT_MS,
  );

  it(
    `spec.fill: streaming: ${IMAGES} more, then the upstream gone: evicted is a fallback, kept is whole`,
    async () => {
      await churn('streaming', true);
    },
    TIMEOUT_MS,
  );
});
