// spec.fill: streaming, end to end: the synthesized cache pod (Debian's nginx with the
// ConfigMap's nginx.conf, mirror-synth fill as its container runs it, Distribution behind them)
// in front of a real upstream (Distribution, TLS, htpasswd) capped at 16 MiB/s. A cold layer
// that takes seconds to arrive reaches every client as it arrives, clients that come midway
// included, from one upstream fetch; and when the fill itself dies, nodes fall back.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { digestOwner } from '../../src/fill/fill.js';
import { synthesizeMirror } from '../../src/index.js';
import { Containerd, hostsToml, writeHostsToml } from '../support/components/containerd.js';
import { type FillTransfer, fillTransfers, TEST_FILL_IMAGE } from '../support/components/fill.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { ThrottledProxy } from '../support/faults/throttle.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { reservePorts } from '../support/primitives/ports.js';

const NAME = 'sf';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'sf-Pa55word';
const RATE = 16 << 20;
const LAYER = 128 << 20;

describe('spec.fill: streaming', () => {
  let dir: string;
  let upstream: Upstream;
  let slow: ThrottledProxy;
  let client: RegistryClient;
  let images = 0;

  async function newImage(layerSizes: number[]): Promise<TestImage> {
    const image = buildImage({ repository: `sf/app${++images}`, tag: '1.0', layerSizes, platforms: ['linux/amd64'] });
    await client.push(image);
    return image;
  }

  function startMirror(
    sub: string,
    replica?: { index: number; fronts: readonly number[] },
  ): Promise<SynthesizedMirror> {
    return startSynthesizedMirror({
      ...(replica
        ? {
            replica: replica.index,
            port: replica.fronts[replica.index],
            peers: replica.fronts.map((p) => `127.0.0.1:${p}`),
          }
        : {}),
      binary: inject('registryBinary'),
      dir: join(dir, sub),
      name: NAME,
      objects: synthesizeMirror(
        {
          name: NAME,
          spec: { upstreamUrl: slow.host, credentialsSecret: SECRET, fill: 'streaming', replicas: replica ? 3 : 1 },
          source: 'streaming-fill',
        },
        { namespace: 'test', fillImage: TEST_FILL_IMAGE },
      ),
      secrets: { [SECRET]: { username: USER, password: PASSWORD } },
      upstreamCaFile: upstream.ca.caCert,
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-sf-'));
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

  it('20 cold GETs of a 128 MiB layer, half of them arriving midway: one upstream fetch, and each client gets bytes within 2 s of asking', async () => {
    const mirror = await startMirror('storm');
    const nodes = Array.from({ length: 20 }, () => new RegistryClient({ url: mirror.url }));
    try {
      const image = await newImage([LAYER]);
      const layer = image.platforms[0].layers[0];
      const mark = upstream.mark();
      const before = slow.bytes;
      const get = async (node: RegistryClient) => {
        const askedAt = Date.now();
        const got = await node.fetchBlob(image.repository, layer.digest);
        return { ...got, askedAt, doneAt: Date.now() };
      };
      const started = Date.now();
      const early = nodes.slice(0, 10).map(get);
      // the rest come when about 40 % of the layer has come from the upstream
      while (slow.bytes - before < 0.4 * layer.size) await new Promise((r) => setTimeout(r, 50));
      const late = nodes.slice(10).map(get);
      const results = await Promise.all([...early, ...late]);
      const fillSeconds = (Math.max(...results.map((r) => r.doneAt)) - started) / 1000;

      for (const r of results) expect(r).toMatchObject({ digest: layer.digest, size: layer.size });
      // the transfer took seconds (the upstream's cap), and no client waited for all of it
      expect(fillSeconds).toBeGreaterThan((0.9 * layer.size) / RATE);
      const waits = results.map((r) => (r.firstByteAt - r.askedAt) / 1000);
      for (const w of waits) expect(w).toBeLessThanOrEqual(2);
      const firsts = results.slice(0, 10).map((r) => r.firstByteAt);
      expect((Math.max(...firsts) - Math.min(...firsts)) / 1000).toBeLessThanOrEqual(2);
      // one fetch from the upstream, one transfer in the fill: the late half joined it
      const sent = await upstream.loggedBlobGets([layer.digest], mark);
      expect(sent.byDigest.get(layer.digest)).toBe(1);
      expect((await mirror.front!.fill!.loggedTransfers([layer.digest])).get(layer.digest)).toBe(1);
      expect((slow.bytes - before) / layer.size).toBeLessThan(1.05);
      // and the front kept the verified copy the first client's transfer made: a hit
      const http = new RegistryClient({ url: mirror.url });
      const again = await http.request('GET', `/v2/${image.repository}/blobs/${layer.digest}`);
      http.close();
      expect(again.headers['x-mirror-cache']).toBe('HIT');
      expect(slow.bytes - before).toBeLessThan(1.05 * layer.size);
    } finally {
      for (const n of nodes) n.close();
      await mirror.dispose();
    }
  });

  it('the fill killed mid-transfer: its clients see a failed transfer, never a whole wrong blob; while it is down nodes pull from the upstream; back, it serves again', async () => {
    const mirror = await startMirror('killed');
    const node = await Containerd.start(await mkdtemp(join(tmpdir(), 'sfn-')));
    const http = new RegistryClient({ url: mirror.url });
    try {
      const big = await newImage([LAYER / 2]);
      const layer = big.platforms[0].layers[0];
      const before = slow.bytes;
      const inFlight = http.fetchBlob(big.repository, layer.digest).catch((err: Error) => err);
      while (slow.bytes - before < 0.2 * layer.size) await new Promise((r) => setTimeout(r, 50));
      await mirror.front!.fill!.kill();
      expect(await inFlight).toBeInstanceOf(Error);

      // With the fill down, the front answers its digests 404: containerd tries the upstream.
      const small = await newImage([64 * 1024, 512 * 1024]);
      const certs = join(dir, 'certs');
      await writeHostsToml(certs, slow.host, hostsToml(`https://${slow.host}`, [{ url: mirror.url }]));
      const pullOpts = { hostsDir: certs, caFile: upstream.ca.caCert, user: `${USER}:${PASSWORD}`, timeoutMs: 90_000 };
      const mark = await mirror.front!.mark();
      expect((await node.pull(small.refByTag(slow.host), pullOpts)).digest).toBe(small.digest);
      const fellBack = (await mirror.front!.accessLog())
        .slice(mark)
        .filter((l) => l.uri.includes('/blobs/sha256:') && l.status === 404);
      expect(fellBack.length).toBeGreaterThan(0);

      // The fill back (the kubelet restarts the container): the big layer through the mirror.
      await mirror.front!.fill!.restart();
      const got = await http.fetchBlob(big.repository, layer.digest);
      expect(got).toMatchObject({ digest: layer.digest, size: layer.size });
    } finally {
      http.close();
      await node.stop();
      await mirror.dispose();
      await rm(node.dir, { recursive: true, force: true });
    }
  });

  describe('3 replicas', () => {
    const pods = [0, 1, 2].map((i) => ({ name: `registry-mirror-${NAME}-${i}`, index: i }));
    let replicas: SynthesizedMirror[] = [];

    beforeAll(async () => {
      const fronts = await reservePorts(3);
      replicas = [];
      for (let i = 0; i < 3; i++) replicas.push(await startMirror(`replica-${i}`, { index: i, fronts }));
    });
    afterAll(async () => {
      for (const r of replicas) await r.dispose();
    });

    /** The fill's completed transfers of a blob, and which replica each came from (none: its own Distribution). */
    function transfersOf(r: SynthesizedMirror, digest: string): FillTransfer[] {
      return fillTransfers(r.front!.fill!.log()).filter((t) => t.uri.endsWith(`/blobs/${digest}`));
    }

    it('21 cold GETs of one layer spread over them, as the Service spreads nodes: the upstream sends it once, through its owner replica', async () => {
      const image = await newImage([48 << 20]);
      const layer = image.platforms[0].layers[0];
      const owner = digestOwner(layer.digest.slice('sha256:'.length), pods)!;
      const mark = upstream.mark();
      const nodes = Array.from({ length: 21 }, (_, j) => new RegistryClient({ url: replicas[j % 3].url }));
      try {
        const got = await Promise.all(nodes.map((n) => n.fetchBlob(image.repository, layer.digest)));
        for (const g of got) expect(g).toMatchObject({ digest: layer.digest, size: layer.size });
      } finally {
        for (const n of nodes) n.close();
      }
      const sent = await upstream.loggedBlobGets([layer.digest], mark);
      expect(sent.byDigest.get(layer.digest)).toBe(1);
      // the owner fetched it from its Distribution; the two others from the owner's front
      await replicas[owner.index].front!.fill!.loggedTransfers([layer.digest]);
      expect(transfersOf(replicas[owner.index], layer.digest)).toEqual([
        expect.not.objectContaining({ from: expect.anything() }),
      ]);
      for (const p of pods.filter((p) => p !== owner)) {
        await replicas[p.index].front!.fill!.loggedTransfers([layer.digest]);
        expect(transfersOf(replicas[p.index], layer.digest)).toEqual([expect.objectContaining({ from: owner.name })]);
      }
    });

    it('the owner replica killed mid-transfer: GETs on the other two all complete, going on from their own Distribution', async () => {
      const image = await newImage([LAYER]);
      const layer = image.platforms[0].layers[0];
      const owner = digestOwner(layer.digest.slice('sha256:'.length), pods)!;
      const others = pods.filter((p) => p !== owner);
      const mark = upstream.mark();
      const before = slow.bytes;
      const nodes = Array.from(
        { length: 12 },
        (_, j) => new RegistryClient({ url: replicas[others[j % 2].index].url }),
      );
      try {
        const gets = nodes.map((n) => n.fetchBlob(image.repository, layer.digest));
        while (slow.bytes - before < 0.3 * layer.size) await new Promise((r) => setTimeout(r, 50));
        await replicas[owner.index].kill();
        const got = await Promise.all(gets);
        for (const g of got) expect(g).toMatchObject({ digest: layer.digest, size: layer.size });
      } finally {
        for (const n of nodes) n.close();
      }
      for (const p of others) {
        const fill = replicas[p.index].front!.fill!;
        await fill.loggedTransfers([layer.digest]);
        expect(fill.log().some((l) => l.includes('fill from owner failed, going on from distribution'))).toBe(true);
      }
      // the owner's partial fetch and each survivor's own
      const sent = await upstream.loggedBlobGets([layer.digest], mark);
      expect(sent.byDigest.get(layer.digest)).toBeLessThanOrEqual(3);
    });
  });
});
