// spec.objectStorage: Distribution's cache in an S3 bucket that every replica shares. Real
// components on loopback: SeaweedFS's S3 server (built from tools/seaweedfs, see
// test/support/components/s3.ts), an authenticated TLS upstream (Distribution), three synthesized cache
// pods (the front and Distribution with the synthesized config and env, the bucket's key
// given as the kubelet would from the Secret) and Debian's containerd 1.6 as the node.
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import { Containerd, hostsToml, writeHostsToml } from '../support/components/containerd.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { S3Server } from '../support/components/s3.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { cacheContainer, cachePodUser, type ManifestObject } from '../support/primitives/manifest.js';

const NAME = 'obj';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'obj-Pa55word';
const S3_SECRET = 'bucket-key';
const ACCESS_KEY = 'MIRRORTESTKEY01';
const SECRET_KEY = 's3-Secret-Value-9f2c';
const BUCKET = 'mirror-cache';
const REPLICAS = 3;

describe('a mirror whose cache is an S3 bucket (spec.objectStorage)', () => {
  let dir: string;
  let upstream: Upstream;
  let client: RegistryClient;
  let s3: S3Server;
  let objects: ManifestObject[];
  const replicas: SynthesizedMirror[] = [];
  let imageCount = 0;

  async function newImage(): Promise<TestImage> {
    const image = buildImage({
      repository: `obj/app${++imageCount}`,
      tag: '1.0',
      layerSizes: [64 * 1024, 512 * 1024, 2 * 1024 * 1024],
      platforms: ['linux/amd64'],
    });
    await client.push(image);
    return image;
  }

  /** Where Distribution keeps a blob's bytes in the bucket: under the mirror's default prefix. */
  function blobKey(digest: string): string {
    const hex = digest.replace(/^sha256:/, '');
    return `/registry-mirror/${NAME}/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
  }

  function startReplica(i: number): Promise<SynthesizedMirror> {
    return startSynthesizedMirror({
      binary: inject('registryBinary'),
      dir: join(dir, `replica-${i}`),
      name: NAME,
      objects,
      secrets: {
        [SECRET]: { username: USER, password: PASSWORD },
        [S3_SECRET]: { accessKey: ACCESS_KEY, secretKey: SECRET_KEY },
      },
      upstreamCaFile: upstream.ca.caCert,
    });
  }

  async function pullThrough(mirror: SynthesizedMirror, image: TestImage): Promise<void> {
    const node = new RegistryClient({ url: mirror.url });
    try {
      expect((await node.pull(image.repository, image.digest)).digest).toBe(image.digest);
    } finally {
      node.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-obj-'));
    [upstream, s3] = await Promise.all([
      startUpstream({
        binary: inject('registryBinary'),
        dir: join(dir, 'upstream'),
        username: USER,
        password: PASSWORD,
      }),
      S3Server.start({ dir: join(dir, 's3'), bucket: BUCKET, accessKey: ACCESS_KEY, secretKey: SECRET_KEY }),
    ]);
    client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
    objects = synthesizeMirror(
      {
        name: NAME,
        spec: {
          upstreamUrl: upstream.host,
          credentialsSecret: SECRET,
          replicas: REPLICAS,
          objectStorage: {
            s3: { bucket: BUCKET, region: 'us-east-1', endpoint: s3.endpoint, credentialsSecret: S3_SECRET },
          },
        },
        source: 'test/e2e/object-storage.test.ts',
      },
      { namespace: 'test' },
    );
    for (let i = 0; i < REPLICAS; i++) replicas.push(await startReplica(i));
  });

  afterAll(async () => {
    client?.close();
    for (const r of replicas) await r.dispose();
    await upstream?.dispose();
    await s3?.stop();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it('synthesizes no key: the registry container takes it from the Secret', () => {
    const text = JSON.stringify(objects);
    expect(text).not.toContain(ACCESS_KEY);
    expect(text).not.toContain(SECRET_KEY);
    const env = (cacheContainer(objects, NAME, 'registry') as { env?: unknown[] }).env;
    expect(env).toEqual(
      expect.arrayContaining([
        { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: S3_SECRET, key: 'accessKey' } } },
        { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: S3_SECRET, key: 'secretKey' } } },
      ]),
    );
  });

  it('fetches each digest from the upstream once across the replicas, whichever one a node asks', async () => {
    const image = await newImage();
    const digests = image.blobDigests('linux/amd64');
    const mark = upstream.mark();
    for (const replica of replicas) await pullThrough(replica, image);
    const sent = await upstream.loggedBlobGets(digests, mark);
    for (const [digest, n] of sent.byDigest) expect({ digest, n }).toEqual({ digest, n: 1 });
    expect(sent.total).toBe(digests.length);
    // the bytes are in the bucket, under the mirror's prefix, not on a replica's volume
    for (const digest of digests) expect(await s3.objectSize(blobKey(digest))).toBe(image.blobs.get(digest)!.length);
  });

  it('a replica that lost its volume serves from the bucket, without the upstream', async () => {
    const image = await newImage();
    await pullThrough(replicas[0], image);
    const replica = replicas[1];
    await replica.stop();
    // a new pod on a new node: an empty volume (the front's cache and anything Distribution kept)
    await rm(replica.distribution.dataDir, { recursive: true, force: true });
    await mkdir(replica.distribution.dataDir, { recursive: true });
    const user = cachePodUser(objects, NAME);
    await chown(replica.distribution.dataDir, user.uid, user.gid); // as fsGroup leaves a new volume
    await replica.restart();
    const mark = upstream.mark();
    await pullThrough(replica, image);
    expect(upstream.blobGets(mark).total).toBe(0);
  });

  /**
   * A fresh containerd node pulls `image` by tag with replica `i` as its mirror; returns the
   * upstream's blob GETs meanwhile: all of them, and the node's own.
   */
  async function nodePull(i: number, image: TestImage): Promise<{ fromUpstream: number; byNode: number }> {
    const node = await Containerd.start(await mkdtemp(join(tmpdir(), 'objn')), 'e2e');
    try {
      const certs = join(dir, `certs-${i}`);
      await writeHostsToml(certs, upstream.host, hostsToml(`https://${upstream.host}`, [{ url: replicas[i].url }]));
      const mark = upstream.mark();
      const got = await node.pull(image.refByTag(upstream.host), {
        hostsDir: certs,
        caFile: upstream.ca.caCert,
        user: `${USER}:${PASSWORD}`,
        timeoutMs: 90_000,
        unpack: true,
      });
      expect(got.digest).toBe(image.digest);
      return { fromUpstream: upstream.blobGets(mark).total, byNode: upstream.blobGets(mark, 'containerd').total };
    } finally {
      await node.stop();
      await rm(node.dir, { recursive: true, force: true });
    }
  }

  it('containerd pulls through a replica that never saw the image, and the upstream sends it nothing', async () => {
    const image = await newImage();
    await pullThrough(replicas[0], image);
    expect(await nodePull(2, image)).toEqual({ fromUpstream: 0, byNode: 0 });
  });

  // last: the bucket stays down
  it('with the bucket down, containerd falls back to the upstream and its pull succeeds', async () => {
    const image = await newImage();
    await s3.stop();
    const { byNode } = await nodePull(1, image);
    // the node fetched the image's blobs itself: the replica could serve none of them
    expect(byNode).toBeGreaterThanOrEqual(image.blobDigests('linux/amd64').length);
  });
});
