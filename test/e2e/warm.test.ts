// spec.cache.pinned, end to end: the synthesized cache pod (Debian's nginx with the ConfigMap's
// nginx.conf, Distribution behind it, with each fill) and its warm container (mirror-synth warm
// with the container's args) in front of a real upstream. Pinned images are fetched whole into
// the cache before any node asks, every digest lands in pinned.json, /status and the metrics say
// what is warm and why not, a change of the list is taken up without a restart, and with the
// upstream gone every pinned image is still served, byte for byte, to every platform.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import type { FillMode } from '../../src/api/names.js';
import { synthesizeMirror } from '../../src/index.js';
import { TEST_FILL_IMAGE } from '../support/components/fill.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { WarmProcess } from '../support/components/warm.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';

const NAME = 'pin';

/** Every digest of an image: its index, each platform's manifest, config and layers. */
function allDigests(image: TestImage): string[] {
  return [
    image.digest,
    ...image.platforms.flatMap((p) => [p.digest, p.config.digest, ...p.layers.map((l) => l.digest)]),
  ];
}

/** Bytes of all of them (each once). */
function allBytes(image: TestImage): number {
  const sizes = new Map<string, number>();
  for (const [d, m] of image.manifests) sizes.set(d, m.body.length);
  for (const [d, b] of image.blobs) sizes.set(d, b.length);
  return [...sizes.values()].reduce((a, b) => a + b, 0);
}

describe.each<FillMode>(['whole', 'streaming'])('spec.cache.pinned with spec.fill: %s', (fill) => {
  let dir: string;
  let upstream: Upstream;
  let client: RegistryClient;
  let mirror: SynthesizedMirror;
  let warm: WarmProcess;
  const first = buildImage({ repository: `pin-${fill}/app`, tag: '1.0', layerSizes: [64 << 10, 2 << 20] });
  const second = buildImage({ repository: `pin-${fill}/other`, tag: '2.0', layerSizes: [512 << 10] });
  const missing = `pin-${fill}/missing:1.0`;
  const ref = (i: TestImage): string => `${i.repository}:${i.tag}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-warm-'));
    upstream = await startUpstream({ binary: inject('registryBinary'), dir: join(dir, 'upstream') });
    client = new RegistryClient({ url: upstream.url, ca: upstream.ca.caCert });
    await client.push(first);
    await client.push(second);
    const objects = synthesizeMirror(
      { name: NAME, spec: { upstreamUrl: upstream.host, fill, cache: { pinned: [ref(first)] } }, source: 'warm' },
      { namespace: 'test', fillImage: TEST_FILL_IMAGE },
    );
    mirror = await startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, 'mirror'),
      name: NAME,
      objects,
      upstreamCaFile: upstream.ca.caCert,
    });
    warm = await WarmProcess.start({
      objects,
      name: NAME,
      volume: join(dir, 'mirror', 'distribution', 'data'),
      dir: join(dir, 'pinned-list'),
      frontPort: mirror.port,
    });
  });

  afterAll(async () => {
    await warm?.stop();
    await mirror?.dispose();
    client?.close();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it('fetches a pinned image whole as soon as it runs: status, pinned.json and metrics say so', async () => {
    const [status] = await warm.settled([ref(first)]);
    expect(status).toEqual({ image: ref(first), warm: true, digest: first.digest, size: allBytes(first) });
    expect((await warm.pinned()).sort()).toEqual([...new Set(allDigests(first))].sort());
    const metrics = await warm.metrics();
    expect(metrics).toContain(`registry_mirror_pinned_image_warm{image="${ref(first)}"} 1`);
    expect(metrics).toContain(`registry_mirror_pinned_bytes ${allBytes(first)}`);
    // through the front: the upstream served each blob of every platform once
    const sent = await upstream.loggedBlobGets([...first.blobs.keys()]);
    for (const d of first.blobs.keys()) expect(sent.byDigest.get(d), d).toBe(1);
  });

  it('takes up a changed list without a restart, and says why an image is not warm', async () => {
    await warm.setList([ref(first), ref(second), missing]);
    const status = await warm.settled([ref(second), missing]);
    expect(status.map((s) => [s.image, s.warm])).toEqual([
      [ref(first), true],
      [ref(second), true],
      [missing, false],
    ]);
    expect(status[2].message).toMatch(/GET \/v2\/pin-\w+\/missing\/manifests\/1\.0: 404/);
    expect(await warm.pinned()).toEqual(expect.arrayContaining(allDigests(second)));
    expect(await warm.metrics()).toContain(`registry_mirror_pinned_image_warm{image="${missing}"} 0`);
  });

  it('with the upstream stopped, every platform of each pinned image is served from the cache, byte for byte', async () => {
    await upstream.stop();
    const node = new RegistryClient({ url: mirror.url });
    try {
      for (const image of [first, second])
        for (const p of image.platforms) {
          const got = await node.pull(image.repository, image.tag, p.platform);
          expect(got.digest).toBe(image.digest);
          expect(got.bytes).toBe(image.bytes(p.platform));
        }
    } finally {
      node.close();
      await upstream.restart();
    }
  });
});
