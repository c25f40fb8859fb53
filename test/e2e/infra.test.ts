// The e2e harness itself, checked against the real programs before anything of ours runs on
// it: the authenticated TLS upstream, images pushed over the distribution API, a containerd
// reading hosts.toml files written by hand, and a Distribution proxy the test configures itself.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { Containerd, hostsToml, writeHostsToml } from '../support/components/containerd.js';
import { RegistryProcess, startUpstream, type Upstream } from '../support/components/registry.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { writeHtpasswd } from '../support/primitives/tls.js';

describe('e2e harness', () => {
  let dir: string;
  let upstream: Upstream;
  let client: RegistryClient;
  let node: Containerd;
  let image: TestImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-infra-'));
    upstream = await startUpstream({
      binary: inject('registryBinary'),
      dir: join(dir, 'upstream'),
      username: 'alice',
      password: 'correct horse',
    });
    client = new RegistryClient({
      url: upstream.url,
      username: 'alice',
      password: 'correct horse',
      ca: upstream.ca.caCert,
    });
    node = await Containerd.start(join(dir, 'node'));
    image = buildImage({ repository: 'infra/app', tag: 'v1', layerSizes: [10_000, 200_000, 3_000_000] });
    await client.push(image);
  });

  afterAll(async () => {
    client?.close();
    await node?.stop();
    await upstream?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the upstream wants credentials and serves what was pushed, byte for byte', async () => {
    const anonymous = new RegistryClient({ url: upstream.url, ca: upstream.ca.caCert });
    await expect(anonymous.getManifest(image.repository, image.tag)).rejects.toThrow(/expected HTTP 200, got 401/);
    anonymous.close();
    const pulled = await client.pull(image.repository, image.tag, 'linux/arm64');
    expect(pulled.digest).toBe(image.digest);
    expect(pulled.bytes).toBe(image.bytes('linux/arm64'));
  });

  it('Distribution accepts htpasswd auth without TLS (no error, no warning)', async () => {
    // Measured: registry v3.1.1 starts and challenges with Basic over plain HTTP.
    const plainDir = join(dir, 'plain');
    await mkdir(plainDir, { recursive: true });
    await writeHtpasswd(join(plainDir, 'htpasswd'), 'bob', 'pw');
    const plain = await RegistryProcess.start({
      binary: inject('registryBinary'),
      dir: plainDir,
      name: 'plain-htpasswd',
      env: { OTEL_TRACES_EXPORTER: 'none' },
      config: `version: 0.1\nlog: {formatter: json}\nstorage: {filesystem: {rootdirectory: /x}}\nhttp: {addr: ":5000"}\nauth: {htpasswd: {realm: plain, path: ${join(plainDir, 'htpasswd')}}}\n`,
    });
    try {
      const anonymous = new RegistryClient({ url: plain.url });
      const res = await anonymous.request('GET', '/v2/');
      anonymous.close();
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="plain"');
      const withUser = new RegistryClient({ url: plain.url, username: 'bob', password: 'pw' });
      expect((await withUser.request('GET', '/v2/')).status).toBe(200);
      withUser.close();
      expect(plain.logs.filter((l) => l.level === 'warning' && /tls|https/i.test(String(l.msg)))).toEqual([]);
    } finally {
      await plain.dispose();
    }
  });

  it('images are reproducible: same options, same digests', () => {
    const again = buildImage({ repository: 'infra/app', tag: 'v1', layerSizes: [10_000, 200_000, 3_000_000] });
    expect(again.digest).toBe(image.digest);
    // layer 0 is shared by both platforms, the others are not
    const [amd, arm] = image.platforms;
    expect(amd.layers[0].digest).toBe(arm.layers[0].digest);
    expect(amd.layers[1].digest).not.toBe(arm.layers[1].digest);
  });

  it('containerd 1.6 rejects a hosts.toml without a [host] table', async () => {
    // containerd 1.6.20: "failed to decode hosts.toml" error="invalid `host` tree", then it
    // falls back to its defaults (plain HTTP for a loopback host). Fixed in later releases.
    const hostsDir = join(dir, 'certs.d-server-only');
    await writeHostsToml(hostsDir, upstream.host, hostsToml(`https://${upstream.host}`, [], upstream.ca.caCert));
    await expect(node.pull(image.refByTag(upstream.host), { hostsDir, user: 'alice:correct horse' })).rejects.toThrow(
      /invalid `host` tree/,
    );
  });

  it('containerd pulls from the upstream with a hand-written hosts.toml (ca, credentials)', async () => {
    const hostsDir = join(dir, 'certs.d-direct');
    const url = `https://${upstream.host}`;
    await writeHostsToml(hostsDir, upstream.host, hostsToml(url, [{ url, ca: upstream.ca.caCert }]));
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      const ref = image.refByTag(upstream.host);
      const result = await node.pull(ref, { hostsDir, platform, user: 'alice:correct horse' });
      expect(result.digest).toBe(image.digest);
      const content = await node.content();
      for (const d of image.blobDigests(platform)) expect(content).toContain(d);
    }
    await node.forgetAll();
    expect(await node.content()).toEqual([]);
  });

  it('containerd refuses the upstream without credentials and without the CA', async () => {
    const hostsDir = join(dir, 'certs.d-direct');
    const ref = image.refByTag(upstream.host);
    await expect(node.pull(ref, { hostsDir })).rejects.toThrow(/401 Unauthorized/);
    const bare = join(dir, 'certs.d-no-ca');
    await writeHostsToml(
      bare,
      upstream.host,
      hostsToml(`https://${upstream.host}`, [{ url: `https://${upstream.host}` }]),
    );
    await expect(node.pull(ref, { hostsDir: bare, user: 'alice:correct horse' })).rejects.toThrow(
      /certificate signed by unknown authority/,
    );
  });

  it('a Distribution proxy configured by hand caches the upstream; containerd uses it first', async () => {
    const mirror = await RegistryProcess.start({
      binary: inject('registryBinary'),
      dir: join(dir, 'mirror'),
      name: 'mirror',
      config: [
        'version: 0.1',
        'log: {level: info, formatter: json}',
        'storage: {filesystem: {rootdirectory: /var/lib/registry}}',
        'http: {addr: ":5000"}',
        `proxy: {remoteurl: "https://${upstream.host}"}`,
        '',
      ].join('\n'),
      env: {
        SSL_CERT_FILE: upstream.ca.caCert,
        REGISTRY_PROXY_USERNAME: 'alice',
        REGISTRY_PROXY_PASSWORD: 'correct horse',
      },
    });
    try {
      const hostsDir = join(dir, 'certs.d-mirror');
      await writeHostsToml(hostsDir, upstream.host, hostsToml(`https://${upstream.host}`, [{ url: mirror.url }]));
      const ref = image.refByTag(upstream.host);
      const mark = upstream.mark();
      const first = await node.pull(ref, { hostsDir, caFile: upstream.ca.caCert });
      expect(first.digest).toBe(image.digest);
      await node.forgetAll();
      const second = await node.pull(ref, { hostsDir, caFile: upstream.ca.caCert });
      expect(second.digest).toBe(image.digest);
      // the node never went to the upstream itself, and the upstream sent each blob once
      const blobs = image.blobDigests('linux/amd64');
      const gets = await upstream.loggedBlobGets(blobs, mark);
      expect([...gets.byDigest.keys()].sort()).toEqual([...blobs].sort());
      expect([...gets.byDigest.values()].every((n) => n === 1)).toBe(true);
      expect((await mirror.loggedBlobGets([...blobs, ...blobs])).total).toBe(2 * blobs.length);
    } finally {
      await mirror.dispose();
      await node.forgetAll();
    }
  });
});
