// A public mirror (no credentialsSecret: quay, Docker Hub, the seed's first example) through an
// upstream outage, with each fill. Real components on loopback: a public TLS upstream
// (Distribution, no auth), the synthesized cache pod (Debian's nginx with the exact nginx.conf,
// the fill with spec.fill: streaming, Distribution with the exact config.yml, env and credential
// helper) and containerd pulling as a node does.
//
// Distribution 3.1.2 without proxy.exec asks the upstream for its token URLs at start and panics
// when it cannot reach it: a cache pod restarted during an outage crash-looped, exactly when its
// volume was the only copy of what nodes need.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { FILL_MODES, synthesizeMirror } from '../../src/index.js';
import { Containerd, hostsToml, writeHostsToml } from '../support/components/containerd.js';
import { TEST_FILL_IMAGE } from '../support/components/fill.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';

const NAME = 'public';

describe.each(FILL_MODES)('a mirror without credentials in an upstream outage (spec.fill: %s)', (fill) => {
  let dir: string;
  let upstream: Upstream;
  let pusher: RegistryClient;
  let node: Containerd;
  let certsDir: string;
  let imageCount = 0;

  async function newImage(): Promise<TestImage> {
    const image = buildImage({
      repository: `public/app${++imageCount}`,
      tag: '1.0',
      layerSizes: [32 * 1024, 1024 * 1024],
      platforms: ['linux/amd64'],
    });
    await pusher.push(image);
    return image;
  }

  function startMirror(sub: string): Promise<SynthesizedMirror> {
    return startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, sub),
      name: NAME,
      objects: synthesizeMirror(
        { name: NAME, spec: { upstreamUrl: upstream.host, fill }, source: 'test/e2e/outage.test.ts' },
        { namespace: 'test', fillImage: TEST_FILL_IMAGE },
      ),
      upstreamCaFile: upstream.ca.caCert,
    });
  }

  /** A node with an empty content store pulls `ref` through the mirror; returns the digest containerd verified. */
  async function freshPull(mirror: SynthesizedMirror, ref: string): Promise<string> {
    await writeHostsToml(certsDir, upstream.host, hostsToml(`https://${upstream.host}`, [{ url: mirror.url }]));
    await node.forgetAll();
    const pulled = await node.pull(ref, { hostsDir: certsDir, caFile: upstream.ca.caCert, timeoutMs: 60_000 });
    return pulled.digest;
  }

  /** Every manifest and blob of `image` through the mirror, compared byte for byte with what was pushed. */
  async function expectServedWhole(mirror: SynthesizedMirror, image: TestImage): Promise<void> {
    const http = new RegistryClient({ url: mirror.url });
    try {
      for (const ref of [image.tag, image.digest]) {
        const res = await http.request('GET', `/v2/${image.repository}/manifests/${ref}`, {
          headers: { accept: image.manifests.get(image.digest)!.mediaType },
        });
        expect({ ref, status: res.status }).toEqual({ ref, status: 200 });
        expect(res.body.equals(image.manifests.get(image.digest)!.body)).toBe(true);
      }
      for (const [digest, bytes] of image.blobs) {
        const res = await http.request('GET', `/v2/${image.repository}/blobs/${digest}`);
        expect({ digest, status: res.status }).toEqual({ digest, status: 200 });
        expect(res.body.equals(bytes)).toBe(true);
      }
    } finally {
      http.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `ms-outage-${fill}-`));
    upstream = await startUpstream({ binary: inject('registryBinary'), dir: join(dir, 'upstream') });
    pusher = new RegistryClient({ url: upstream.url, ca: upstream.ca.caCert });
    node = await Containerd.start(join(dir, 'node'));
    certsDir = join(dir, 'certs.d');
  });

  afterAll(async () => {
    pusher?.close();
    await node?.stop();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it('the cache pod restarted while the upstream is down starts and serves what its volume holds, by tag and by digest, byte for byte', async () => {
    const mirror = await startMirror('restart');
    try {
      const warmed = await newImage();
      expect(await freshPull(mirror, warmed.refByTag(upstream.host))).toBe(warmed.digest);
      const never = await newImage();

      await upstream.stop();
      try {
        // A restart that panics never gets ready: restart() throws with Distribution's output.
        await mirror.restart();
        expect(mirror.distribution.rawOutput()).not.toMatch(/panic/);
        expect(await freshPull(mirror, warmed.refByTag(upstream.host))).toBe(warmed.digest);
        expect(await freshPull(mirror, warmed.refByDigest(upstream.host))).toBe(warmed.digest);
        await expectServedWhole(mirror, warmed);
        // What the volume does not hold cannot come from anywhere: the node's pull fails, it does not hang.
        await expect(freshPull(mirror, never.refByTag(upstream.host))).rejects.toThrow();
      } finally {
        await upstream.restart();
      }
      // The upstream back: the mirror fetches what it lacked, anonymously, without a restart.
      expect(await freshPull(mirror, warmed.refByTag(upstream.host))).toBe(warmed.digest);
      const after = await newImage();
      expect(await freshPull(mirror, after.refByTag(upstream.host))).toBe(after.digest);
      await expectServedWhole(mirror, after);
    } finally {
      await mirror.dispose();
    }
  });

  it('a new mirror whose upstream is down at its first start starts, and serves once the upstream is back', async () => {
    const image = await newImage();
    await upstream.stop();
    let mirror: SynthesizedMirror | undefined;
    try {
      mirror = await startMirror('first-start');
      expect(mirror.distribution.rawOutput()).not.toMatch(/panic/);
      // Nothing to serve: the front answers so that the node falls back (and fails: there is no upstream).
      await expect(freshPull(mirror, image.refByTag(upstream.host))).rejects.toThrow();
    } finally {
      await upstream.restart();
    }
    try {
      expect(await freshPull(mirror, image.refByTag(upstream.host))).toBe(image.digest);
      await expectServedWhole(mirror, image);
    } finally {
      await mirror.dispose();
    }
  });
});
