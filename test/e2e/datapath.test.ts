// The data path at the moments a mirror exists for: a rollout storm (many nodes pulling the
// same new image at once) and a broken mirror (every failure must end in the node pulling from
// the upstream itself). Real components on loopback: an authenticated TLS upstream
// (Distribution), the synthesized cache pod (Debian's nginx as the front, Distribution behind it,
// see test/support/components/registry.ts SynthesizedMirror) and containerd as the node: Debian's 1.6, and
// 2.x built from its Go module (tools/containerd).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import {
  Containerd,
  type ContainerdBinaries,
  containerdV2,
  hostsToml,
  writeHostsToml,
} from '../support/components/containerd.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { buildImage, concurrentPulls, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { type ManifestObject } from '../support/primitives/manifest.js';

const execFileAsync = promisify(execFile);
const NAME = 'dp';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'dp-Pa55word';
/** The cache volume of the disk-full case: a tmpfs of this size, and the same size in the spec. */
const SMALL_VOLUME_MIB = 48;

/** The node runtimes every fallback case runs on: Debian's containerd 1.6 and containerd 2.x from tools/. */
const runtimes: { name: string; binaries?: () => Promise<ContainerdBinaries> }[] = [
  { name: 'containerd 1.6 (Debian)' },
  { name: 'containerd 2.x', binaries: containerdV2 },
];

describe('the data path', () => {
  let dir: string;
  let upstream: Upstream;
  let client: RegistryClient;
  let imageCount = 0;

  async function newImage(layerSizes = [64 * 1024, 512 * 1024, 1024 * 1024, 2 * 1024 * 1024]): Promise<TestImage> {
    const image = buildImage({
      repository: `dp/app${++imageCount}`,
      tag: '1.0',
      layerSizes,
      platforms: ['linux/amd64'],
    });
    await client.push(image);
    return image;
  }

  function synth(storage?: string): ManifestObject[] {
    return synthesizeMirror(
      {
        name: NAME,
        spec: {
          upstreamUrl: upstream.host,
          credentialsSecret: SECRET,
          ...(storage ? { volumeClaimTemplate: { spec: { resources: { requests: { storage } } } } } : {}),
        },
        source: 'test/e2e/datapath.test.ts',
      },
      { namespace: 'test' },
    );
  }

  function startMirror(sub: string, objects = synth()): Promise<SynthesizedMirror> {
    return startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, sub),
      name: NAME,
      objects,
      secrets: { [SECRET]: { username: USER, password: PASSWORD } },
      upstreamCaFile: upstream.ca.caCert,
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-dp-'));
    upstream = await startUpstream({
      binary: inject('registryBinary'),
      dir: join(dir, 'upstream'),
      username: USER,
      password: PASSWORD,
    });
    client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
  });

  afterAll(async () => {
    client?.close();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it('20 concurrent cold pulls of a 4-layer image: all succeed, the upstream sends each blob once', async () => {
    const mirror = await startMirror('storm');
    try {
      const image = await newImage();
      const unique = image.bytes('linux/amd64');
      const mark = upstream.mark();
      const pulls = await concurrentPulls(mirror.url, image.repository, image.tag, 20);
      for (const p of pulls) expect(p).toEqual({ digest: image.digest, bytes: unique });
      const sent = await upstream.loggedBlobGets(image.blobDigests('linux/amd64'), mark);
      expect(sent.bytes / unique).toBeLessThanOrEqual(1.05);
      for (const [digest, n] of sent.byDigest) expect({ digest, n }).toEqual({ digest, n: 1 });
      // and Distribution alone, measured the same way, does not coalesce (why the front exists)
      const bare = await startSynthesizedMirror({
        binary: inject('registryBinary'),
        dir: join(dir, 'storm-bare'),
        name: NAME,
        objects: synth(),
        secrets: { [SECRET]: { username: USER, password: PASSWORD } },
        upstreamCaFile: upstream.ca.caCert,
        front: false,
      });
      try {
        const other = await newImage();
        const m2 = upstream.mark();
        await concurrentPulls(bare.url, other.repository, other.tag, 20);
        expect(upstream.blobGets(m2).bytes / other.bytes('linux/amd64')).toBeGreaterThan(1.5);
      } finally {
        await bare.dispose();
      }
    } finally {
      await mirror.dispose();
    }
  });

  it('the front serves cached digests while Distribution is down, and readiness says it is down', async () => {
    const mirror = await startMirror('stale');
    try {
      const image = await newImage();
      const node = new RegistryClient({ url: mirror.url });
      try {
        await node.pull(image.repository, image.digest);
        expect((await mirror.front!.ready()).ok).toBe(true);
        // the registry container's probes: Distribution's health on its debug port
        expect((await fetch(`${mirror.distribution.debugUrl}/debug/health`)).status).toBe(200);
        await mirror.distribution.stop();
        const ready = await mirror.front!.ready();
        expect(ready.ok).toBe(false);
        // by digest from the front's cache; by tag Distribution is needed, and the answer is a 404
        expect((await node.pull(image.repository, image.digest)).digest).toBe(image.digest);
        const tag = await node.request('GET', `/v2/${image.repository}/manifests/${image.tag}`);
        expect(tag.status).toBe(404);
        expect(tag.headers['x-mirror-fallback']).toMatch(/distribution answered 502/);
      } finally {
        node.close();
      }
    } finally {
      await mirror.dispose();
    }
  });

  for (const runtime of runtimes) {
    describe(`a broken mirror: ${runtime.name} falls back to the upstream`, () => {
      let node: Containerd;
      let mirror: SynthesizedMirror;
      let certs: string;
      const sub = runtime.binaries ? 'v2' : 'v1';

      /** A fresh node pulls `image` through the mirror, with its own credentials for the upstream. */
      async function pull(image: TestImage): Promise<{ viaUpstream: number }> {
        await node.forgetAll();
        const mark = upstream.mark();
        const got = await node.pull(image.refByTag(upstream.host), {
          hostsDir: certs,
          caFile: upstream.ca.caCert,
          user: `${USER}:${PASSWORD}`,
          timeoutMs: 90_000,
          // containerd 2.x's ctr needs unpack platforms in the transfer service config to unpack;
          // fetching exercises the same resolver and fetcher, which is what falls back.
          unpack: runtime.binaries === undefined,
        });
        expect(got.digest).toBe(image.digest);
        return { viaUpstream: upstream.blobGets(mark, 'containerd').total };
      }

      beforeAll(async () => {
        node = await Containerd.start(
          await mkdtemp(join(tmpdir(), `dpn${sub}`)),
          'e2e',
          runtime.binaries ? await runtime.binaries() : undefined,
        );
        mirror = await startMirror(`fallback-${sub}`);
        certs = join(dir, `certs-${sub}`);
        await writeHostsToml(certs, upstream.host, hostsToml(`https://${upstream.host}`, [{ url: mirror.url }]));
      });

      afterAll(async () => {
        await node?.stop();
        await mirror?.dispose();
        if (node) await rm(node.dir, { recursive: true, force: true });
      });

      it('healthy: the mirror serves, the node never talks to the upstream', async () => {
        expect(await pull(await newImage())).toEqual({ viaUpstream: 0 });
      });

      it('Distribution down (the front answers): pulls come from the upstream', async () => {
        const image = await newImage();
        await mirror.distribution.stop();
        try {
          expect((await pull(image)).viaUpstream).toBeGreaterThan(0);
        } finally {
          await mirror.restart();
        }
      });

      it('the whole pod down (connection refused): pulls come from the upstream', async () => {
        const image = await newImage();
        await mirror.stop();
        try {
          expect((await pull(image)).viaUpstream).toBeGreaterThan(0);
        } finally {
          await mirror.restart();
        }
      });

      it('Distribution answering 5xx (its storage broken): pulls come from the upstream', async () => {
        const image = await newImage();
        const storage = join(mirror.distribution.dataDir, 'docker');
        await rm(storage, { recursive: true, force: true });
        await writeFile(storage, 'not a directory');
        try {
          const status = (await fetch(`${mirror.distribution.url}/v2/${image.repository}/manifests/${image.digest}`))
            .status;
          expect(status).toBeGreaterThanOrEqual(500);
          expect((await pull(image)).viaUpstream).toBeGreaterThan(0);
        } finally {
          await rm(storage, { force: true });
        }
      });

      it('without the front, Distribution answering 5xx: containerd falls back too (re-measured)', async () => {
        const bare = await startSynthesizedMirror({
          binary: inject('registryBinary'),
          dir: join(dir, `bare-${sub}`),
          name: NAME,
          objects: synth(),
          secrets: { [SECRET]: { username: USER, password: PASSWORD } },
          upstreamCaFile: upstream.ca.caCert,
          front: false,
        });
        const bareCerts = join(dir, `certs-bare-${sub}`);
        await writeHostsToml(bareCerts, upstream.host, hostsToml(`https://${upstream.host}`, [{ url: bare.url }]));
        const storage = join(bare.distribution.dataDir, 'docker');
        await writeFile(storage, 'not a directory');
        try {
          const image = await newImage();
          const status = (await fetch(`${bare.url}/v2/${image.repository}/manifests/${image.digest}`)).status;
          expect(status).toBe(500);
          const saved = certs;
          certs = bareCerts;
          try {
            expect((await pull(image)).viaUpstream).toBeGreaterThan(0);
          } finally {
            certs = saved;
          }
        } finally {
          await bare.dispose();
        }
      });

      it('upstream credentials rejected: pulls come from the upstream', async () => {
        const image = await newImage();
        await mirror.updateSecret({ [SECRET]: { username: USER, password: 'wrong-Pa55word' } });
        await mirror.restart();
        try {
          expect((await pull(image)).viaUpstream).toBeGreaterThan(0);
        } finally {
          await mirror.updateSecret({ [SECRET]: { username: USER, password: PASSWORD } });
          await mirror.restart();
        }
      });
    });
  }

  it('disk full: readiness fails, and with the pod out of the Service nodes pull from the upstream', async () => {
    const volume = join(dir, 'full', 'distribution', 'data');
    await mkdir(volume, { recursive: true });
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${SMALL_VOLUME_MIB}m`, 'tmpfs', volume]);
    let mirror: SynthesizedMirror | undefined;
    const node = await Containerd.start(await mkdtemp(join(tmpdir(), 'dpnf')));
    try {
      mirror = await startMirror('full', synth(`${SMALL_VOLUME_MIB}Mi`));
      expect((await mirror.front!.ready()).ok).toBe(true);
      // Something else fills the volume (Distribution's own blobs, over days).
      await execFileAsync('sh', ['-c', `head -c ${(SMALL_VOLUME_MIB - 1) * 1024 * 1024} /dev/zero > ${volume}/filler`]);
      const ready = await mirror.front!.ready();
      expect(ready.ok).toBe(false);
      expect(ready.output).toMatch(/cache volume: \d+ KiB free, readiness needs \d+/);
      // The kubelet takes the pod out of the Service: nodes find nothing there and go upstream.
      await mirror.stop();
      const certs = join(dir, 'certs-full');
      await writeHostsToml(certs, upstream.host, hostsToml(`https://${upstream.host}`, [{ url: mirror.url }]));
      const image = await newImage();
      const mark = upstream.mark();
      const got = await node.pull(image.refByTag(upstream.host), {
        hostsDir: certs,
        caFile: upstream.ca.caCert,
        user: `${USER}:${PASSWORD}`,
      });
      expect(got.digest).toBe(image.digest);
      expect(upstream.blobGets(mark, 'containerd').total).toBeGreaterThan(0);
    } finally {
      await node.stop();
      await mirror?.dispose();
      await execFileAsync('umount', [volume]);
      await rm(node.dir, { recursive: true, force: true });
    }
  });
});
