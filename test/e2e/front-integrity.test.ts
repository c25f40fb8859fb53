// The front caches only bytes that match the digest in their URL. An upstream that answers a
// blob GET with a 200 and wrong bytes (corrupt, truncated, or cut off) must leave nothing in the
// front's cache or Distribution's store that a later request gets: the next request fetches from
// the upstream again, and once the upstream serves good bytes a containerd pull through the mirror
// succeeds. Real components on loopback: the upstream (Distribution, TLS, htpasswd) behind a
// tampering TLS proxy (test/support/faults/tamper.ts) that the mirror uses as its upstream, the
// synthesized cache pod (Debian's nginx as the front, Distribution behind it) and containerd.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import { Containerd, hostsToml, writeHostsToml } from '../support/components/containerd.js';
import { TEST_FILL_IMAGE } from '../support/components/fill.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { type Fault, TamperingUpstream } from '../support/faults/tamper.js';
import { ThrottledProxy } from '../support/faults/throttle.js';
import { buildImage, concurrentPulls, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { type ManifestObject } from '../support/primitives/manifest.js';

const execFileAsync = promisify(execFile);
const NAME = 'vf';
/** docs/limits.md "Purging one entry": what runs in the front container, with KEY set (the volume's path replaced here). */
const PURGE_FRONT = `md5=$(printf %s "$KEY" | md5sum | cut -c1-32)
rm -v /var/lib/registry/front/$(echo "$md5" | cut -c32)/$(echo "$md5" | cut -c30-31)/$md5`;
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'vf-Pa55word';

/** Where nginx keeps the entry for `key` (levels=1:2): <last hex>/<two before it>/<md5 of the key>. */
function frontCacheFile(cacheDir: string, key: string): string {
  const md5 = createHash('md5').update(key).digest('hex');
  return join(cacheDir, md5.slice(-1), md5.slice(-3, -1), md5);
}

async function exists(path: string): Promise<boolean> {
  return readdir(join(path, '..'))
    .then((names) => names.includes(path.split('/').pop()!))
    .catch(() => false);
}

// Both fills: nginx's own (whole) and mirror-synth's streaming fill.
describe.each(['whole', 'streaming'] as const)(
  'the front caches only digest-verified bytes (spec.fill: %s)',
  (fill) => {
    let dir: string;
    let upstream: Upstream;
    let tamper: TamperingUpstream;
    let client: RegistryClient;
    let imageCount = 0;

    async function newImage(layerSizes = [64 * 1024, 1024 * 1024]): Promise<TestImage> {
      const image = buildImage({
        repository: `vf/app${++imageCount}`,
        tag: '1.0',
        layerSizes,
        platforms: ['linux/amd64'],
      });
      await client.push(image);
      return image;
    }

    function synth(upstreamHost: string): ManifestObject[] {
      return synthesizeMirror(
        { name: NAME, spec: { upstreamUrl: upstreamHost, credentialsSecret: SECRET, fill }, source: 'front-integrity' },
        { namespace: 'test', fillImage: TEST_FILL_IMAGE },
      );
    }

    function startMirror(sub: string, upstreamHost = tamper.host): Promise<SynthesizedMirror> {
      return startSynthesizedMirror({
        binary: inject('registryBinary'),
        dir: join(dir, sub),
        name: NAME,
        objects: synth(upstreamHost),
        secrets: { [SECRET]: { username: USER, password: PASSWORD } },
        upstreamCaFile: upstream.ca.caCert,
      });
    }

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `ms-vf-${fill}-`));
      upstream = await startUpstream({
        binary: inject('registryBinary'),
        dir: join(dir, 'upstream'),
        username: USER,
        password: PASSWORD,
      });
      tamper = await TamperingUpstream.start({ target: { host: '127.0.0.1', port: upstream.port }, ca: upstream.ca });
      client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
    });

    afterAll(async () => {
      client?.close();
      await tamper?.stop();
      await upstream?.dispose();
      if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
    });

    const faults: { fault: Fault; what: string }[] = [
      { fault: 'corrupt', what: 'a corrupt 200 (right length, a byte flipped)' },
      { fault: 'truncate', what: 'a truncated 200 (a short body and a Content-Length that says so)' },
      { fault: 'cut', what: 'a 200 cut off halfway (the connection closed before Content-Length)' },
    ];

    for (const { fault, what } of faults) {
      it(`${what}: nothing is cached, the next request fetches again, and a containerd pull succeeds once the upstream heals`, async () => {
        const mirror = await startMirror(`fault-${fault}`);
        const node = await Containerd.start(await mkdtemp(join(tmpdir(), `vfn-${fault}`)));
        const http = new RegistryClient({ url: mirror.url });
        try {
          const image = await newImage();
          const layer = image.platforms[0].layers[1];
          const path = `/v2/${image.repository}/blobs/${layer.digest}`;
          const good = image.blobs.get(layer.digest)!;
          tamper.break(layer.digest, fault);
          const before = tamper.blobGets.get(layer.digest) ?? 0;
          const cacheDir = join(mirror.distribution.dataDir, 'front');
          const beforeLoop = await mirror.front!.mark();

          // Twice through the front: each time the bad bytes come from the upstream afresh.
          for (let i = 1; i <= 2; i++) {
            const got = await http.request('GET', path).catch((err: Error) => err);
            // mirror-synth fill holds the last byte back until the digest matches: the client sees
            // its transfer fail, never a whole 200 of wrong bytes
            if (fill === 'streaming') expect(got).toBeInstanceOf(Error);
            if (!(got instanceof Error)) {
              expect(got.status === 200 && got.body.equals(good)).toBe(false);
              expect(got.headers['x-mirror-cache']).not.toBe('HIT');
            }
            expect(tamper.blobGets.get(layer.digest)).toBeGreaterThanOrEqual(before + i);
            // Nothing of it kept: not in the front's cache, not in Distribution's store.
            expect(await exists(frontCacheFile(cacheDir, path))).toBe(false);
            const hex = layer.digest.slice('sha256:'.length);
            const stored = join(mirror.distribution.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex);
            expect(await exists(stored)).toBe(false);
          }

          // The upstream heals: a node pulls through the mirror, and the mirror serves it all.
          tamper.heal();
          const certs = join(dir, `certs-${fault}`);
          await writeHostsToml(certs, tamper.host, hostsToml(`https://${tamper.host}`, [{ url: mirror.url }]));
          // The window of the pull starts past the two GETs above: nginx may log a request after its
          // client saw the response end, and a late line of theirs must not count as the pull's.
          const mark = await mirror.front!.markAfter(path, 2, beforeLoop);
          const pulled = await node.pull(image.refByTag(tamper.host), {
            hostsDir: certs,
            caFile: upstream.ca.caCert,
            user: `${USER}:${PASSWORD}`,
            timeoutMs: 90_000,
          });
          expect(pulled.digest).toBe(image.digest);
          // (nginx logs a request after sending it: wait for the pull's lines rather than count at once)
          const served = await mirror.front!.loggedBlobGets(image.blobDigests('linux/amd64'), mark);
          expect(served.total).toBe(image.blobDigests('linux/amd64').length);
          // and what the front cached now is the blob the digest names, in the file the absence
          // checks above looked for (so a wrong path there cannot pass them)
          const again = await http.request('GET', path);
          expect(again.headers['x-mirror-cache']).toBe('HIT');
          expect(createHash('sha256').update(again.body).digest('hex')).toBe(layer.digest.slice('sha256:'.length));
          expect(await exists(frontCacheFile(cacheDir, path))).toBe(true);
        } finally {
          http.close();
          tamper.heal();
          await node.stop();
          await mirror.dispose();
          await rm(node.dir, { recursive: true, force: true });
        }
      });
    }

    it('a slow upstream, 20 concurrent cold pulls: all succeed, the upstream sends each blob once', async () => {
      // Slow enough (about 2 s a blob) that waiters poll nginx's cache lock many times mid-fetch.
      const slow = await ThrottledProxy.start({
        target: { host: '127.0.0.1', port: upstream.port },
        bytesPerSecond: 1 << 20,
      });
      const mirror = await startMirror('storm', slow.host);
      try {
        const image = await newImage([256 * 1024, 2 * 1024 * 1024]);
        const unique = image.bytes('linux/amd64');
        const mark = upstream.mark();
        const pulls = await concurrentPulls(mirror.url, image.repository, image.tag, 20);
        for (const p of pulls) expect(p).toEqual({ digest: image.digest, bytes: unique });
        const sent = await upstream.loggedBlobGets(image.blobDigests('linux/amd64'), mark);
        for (const [digest, n] of sent.byDigest) expect({ digest, n }).toEqual({ digest, n: 1 });
        expect(sent.bytes / unique).toBeLessThanOrEqual(1.05);
        if (fill === 'streaming') {
          // the fill made one transfer per blob, which all 20 pulls read
          const transfers = await mirror.front!.fill!.loggedTransfers(image.blobDigests('linux/amd64'));
          for (const digest of image.blobDigests('linux/amd64'))
            expect({ digest, n: transfers.get(digest) }).toEqual({ digest, n: 1 });
        }
      } finally {
        await mirror.dispose();
        await slow.stop();
      }
    });

    it.runIf(fill === 'whole')(
      'one entry purged as docs/limits.md says: from the front, then from Distribution too',
      async () => {
        const mirror = await startMirror('purge');
        const http = new RegistryClient({ url: mirror.url });
        try {
          const image = await newImage();
          const layer = image.platforms[0].layers[1];
          const path = `/v2/${image.repository}/blobs/${layer.digest}`;
          const get = async (): Promise<string> => {
            const r = await http.request('GET', path);
            expect(r.status).toBe(200);
            expect(createHash('sha256').update(r.body).digest('hex')).toBe(layer.digest.slice('sha256:'.length));
            return String(r.headers['x-mirror-cache']);
          };
          expect(await get()).toBe('MISS');
          expect(await get()).toBe('HIT');
          const purgeFront = (): Promise<unknown> =>
            execFileAsync('sh', ['-c', PURGE_FRONT.replace('/var/lib/registry/', `${mirror.distribution.dataDir}/`)], {
              env: { ...process.env, KEY: path },
            });
          // The front's entry: the next request is filled again, from Distribution's store.
          const fetched = tamper.blobGets.get(layer.digest) ?? 0;
          await purgeFront();
          expect(await get()).toBe('MISS');
          expect(await get()).toBe('HIT');
          expect(tamper.blobGets.get(layer.digest)).toBe(fetched);
          // Distribution's API does not delete in proxy mode, though storage.delete is enabled.
          const del = await fetch(`${mirror.distribution.url}${path}`, { method: 'DELETE' });
          expect(del.status).toBe(405);
          // Its storage path, then a restart (it keeps blob descriptors in memory), then the front's entry.
          const hex = layer.digest.slice('sha256:'.length);
          await rm(join(mirror.distribution.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), {
            recursive: true,
          });
          await mirror.restart();
          await purgeFront();
          expect(await get()).toBe('MISS');
          expect(tamper.blobGets.get(layer.digest)).toBeGreaterThan(fetched);
          expect(await get()).toBe('HIT');
        } finally {
          http.close();
          await mirror.dispose();
        }
      },
    );
  },
);
