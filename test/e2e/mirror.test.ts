// A synthesized mirror, run for real: the cache pod's front (Debian's nginx with the exact
// nginx.conf) and Distribution behind it with the exact config.yml, env and credential helper
// that synthesizeMirror produces (only addresses, storage and mount paths overridden: see
// test/support/components/registry.ts SynthesizedMirror), the node agent script with its DaemonSet env
// (only certs dir, mirror address, port, interval overridden), an authenticated TLS upstream,
// and a containerd pulling as a node does.
//
// The only thing added that a cluster would not have: SSL_CERT_FILE pointing at the test CA,
// for the mirror and for ctr, because the upstream's certificate is self-signed.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import {
  Containerd,
  hostsToml,
  type NodeAgent,
  type PullOptions,
  snapshotDir,
  startNodeAgent,
} from '../support/components/containerd.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { buildImage, RegistryClient, type TestImage } from '../support/fixtures/images.js';
import { type ManifestObject, type SecretData } from '../support/primitives/manifest.js';
import { waitFor } from '../support/primitives/wait.js';

const NAME = 'e2e';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'first-Pa55word';

describe('a synthesized mirror between containerd and an authenticated upstream', () => {
  let dir: string;
  let upstream: Upstream;
  let client: RegistryClient;
  let node: Containerd;
  let objects: ManifestObject[];
  let secrets: SecretData;
  let mirror: SynthesizedMirror;
  let agent: NodeAgent;
  let certsDir: string;
  let imageCount = 0;

  /** A new image on the upstream, never pulled by anyone: a cold cache for this test. */
  async function newImage(layerSizes = [16 * 1024, 256 * 1024, 2 * 1024 * 1024]): Promise<TestImage> {
    const image = buildImage({ repository: `team/app${++imageCount}`, tag: '1.0', layerSizes });
    await client.push(image);
    return image;
  }

  /** Pull as a fresh node would (empty content store), through the agent's certs.d, no node credentials. */
  async function freshPull(ref: string, opts: Partial<PullOptions> = {}): Promise<string> {
    await node.forgetAll();
    const result = await node.pull(ref, { hostsDir: certsDir, caFile: upstream.ca.caCert, ...opts });
    return result.digest;
  }

  /** Change the mounted Secret's files, as the kubelet does after the Secret changes. */
  function updateSecret(secretValues: { username: string; password: string }): Promise<void> {
    secrets = { [SECRET]: secretValues };
    return mirror.updateSecret(secrets);
  }

  beforeAll(async () => {
    const binary = inject('registryBinary');
    dir = await mkdtemp(join(tmpdir(), 'ms-e2e-'));
    upstream = await startUpstream({ binary, dir: join(dir, 'upstream'), username: USER, password: PASSWORD });
    client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
    node = await Containerd.start(join(dir, 'node'));

    objects = synthesizeMirror(
      {
        name: NAME,
        spec: { upstreamUrl: upstream.host, credentialsSecret: SECRET },
        source: 'test/e2e/mirror.test.ts',
      },
      { namespace: 'test' },
    );
    secrets = { [SECRET]: { username: USER, password: PASSWORD } };
    mirror = await startSynthesizedMirror({
      binary,
      dir: join(dir, 'mirror'),
      name: NAME,
      objects,
      secrets,
      upstreamCaFile: upstream.ca.caCert,
    });

    certsDir = join(dir, 'certs.d');
    await mkdir(certsDir);
    agent = await startNodeAgent({
      name: NAME,
      objects,
      certsDir,
      mirrorAddress: '127.0.0.1',
      servicePort: mirror.port,
      workDir: join(dir, 'agent'),
    });
    await waitFor('the node agent to write hosts.toml', async () =>
      (await readFile(join(certsDir, upstream.host, 'hosts.toml'), 'utf8').catch(() => '')).includes('[host.')
        ? true
        : undefined,
    );
  });

  afterAll(async () => {
    client?.close();
    await agent?.terminate();
    await node?.stop();
    await mirror?.dispose();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it("the node agent's hosts.toml points containerd at the mirror, upstream last", async () => {
    const toml = await readFile(join(certsDir, upstream.host, 'hosts.toml'), 'utf8');
    expect(toml).toContain(`server = "https://${upstream.host}"`);
    expect(toml).toContain(`[host."http://127.0.0.1:${mirror.port}"]`);
    expect(toml).toMatch(/capabilities = \["pull", "resolve"\]/);

    const image = await newImage();
    const mark = upstream.mark();
    const digest = await freshPull(image.refByTag(upstream.host));
    expect(digest).toBe(image.digest);
    // the node itself never talked to the upstream (and had no credentials for it)
    expect(upstream.requests(mark).filter((r) => r.userAgent.includes('containerd'))).toEqual([]);
    expect(upstream.blobGets(mark).total).toBeGreaterThan(0);
  });

  it('pulls by tag and by digest, for both platforms, give the digests the upstream has', async () => {
    const image = await newImage();
    const upstreamDigest = (await client.getManifest(image.repository, image.tag)).digest;
    expect(upstreamDigest).toBe(image.digest);
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      expect(await freshPull(image.refByTag(upstream.host), { platform })).toBe(upstreamDigest);
      const content = await node.content();
      for (const blob of image.blobDigests(platform)) expect(content).toContain(blob);
      expect(await freshPull(image.refByDigest(upstream.host), { platform })).toBe(upstreamDigest);
    }
  });

  it('the upstream sends each blob once, however often and for whichever platform nodes pull', async () => {
    const image = await newImage();
    const mark = upstream.mark();
    const frontMark = await mirror.front!.mark();
    const blobGets200 = { handler: 'blob', method: 'get', code: '200' };
    const metricBefore = await upstream.metric('registry_http_requests_total', blobGets200);
    for (let i = 0; i < 3; i++) await freshPull(image.refByTag(upstream.host));
    await freshPull(image.refByTag(upstream.host), { platform: 'linux/arm64' });
    await freshPull(image.refByDigest(upstream.host), { platform: 'linux/arm64' });

    const wanted = new Set([...image.blobDigests('linux/amd64'), ...image.blobDigests('linux/arm64')]);
    const gets = await upstream.loggedBlobGets([...wanted], mark);
    expect([...gets.byDigest.keys()].sort()).toEqual([...wanted].sort()); // the shared base layer too, once
    for (const [digest, n] of gets.byDigest) expect({ digest, n }).toEqual({ digest, n: 1 });
    // the upstream's own Prometheus counter agrees with its log (counted as the request completes,
    // which may be after the client has its last byte)
    const counted = await waitFor('the upstream to count the blob GETs', async () => {
      const n = (await upstream.metric('registry_http_requests_total', blobGets200)) - metricBefore;
      return n >= wanted.size ? n : undefined;
    }).catch(async () => (await upstream.metric('registry_http_requests_total', blobGets200)) - metricBefore);
    expect(counted).toBe(wanted.size);
    // while the mirror served every one of the five pulls in full, the later ones from the front's cache
    // (nginx logs a request after sending it: wait for the log lines rather than count at once)
    const blobsPerPull = image.blobDigests('linux/amd64').length;
    const served = await waitFor('the front to log five pulls', async () => {
      const s = await mirror.front!.blobGets(frontMark);
      return s.total >= 5 * blobsPerPull ? s : undefined;
    }).catch(() => mirror.front!.blobGets(frontMark));
    expect(served.total).toBe(5 * blobsPerPull);
    expect(served.byCache.HIT).toBeGreaterThanOrEqual(3 * image.blobDigests('linux/amd64').length);
  });

  it('with the upstream down, images pulled before still pull by tag and by digest', async () => {
    const cached = await newImage();
    await freshPull(cached.refByTag(upstream.host));
    const never = await newImage();

    await upstream.stop();
    try {
      expect(await freshPull(cached.refByTag(upstream.host))).toBe(cached.digest);
      expect(await freshPull(cached.refByDigest(upstream.host))).toBe(cached.digest);
      // what was never pulled cannot come from anywhere
      await expect(freshPull(never.refByTag(upstream.host), { timeoutMs: 60_000 })).rejects.toThrow();
    } finally {
      await upstream.restart();
    }
  });

  it('with the mirror down, nodes fall back to the upstream', async () => {
    const image = await newImage();
    await mirror.stop();
    try {
      const mark = upstream.mark();
      // a node pulling straight from a private upstream needs its own credentials
      const digest = await freshPull(image.refByTag(upstream.host), { user: `${USER}:${PASSWORD}` });
      expect(digest).toBe(image.digest);
      const direct = await upstream.loggedBlobGets(image.blobDigests('linux/amd64'), mark, 'containerd');
      expect([...direct.byDigest.keys()].sort()).toEqual(image.blobDigests('linux/amd64').sort());
    } finally {
      await mirror.restart();
    }
  });

  it('a mirror restarted while the upstream is down starts and serves what it has, by tag and by digest', async () => {
    // proxy.exec makes no call upstream at start (proxy.username/password panics: distribution #4038).
    const cached = await newImage();
    await freshPull(cached.refByTag(upstream.host));
    await upstream.stop();
    try {
      await mirror.restart();
      expect(mirror.distribution.rawOutput()).not.toMatch(/panic/);
      const mark = mirror.distribution.mark();
      // A tag is answered with the manifest it last resolved to (stale while the upstream is down).
      expect(await freshPull(cached.refByTag(upstream.host))).toBe(cached.digest);
      expect(await freshPull(cached.refByDigest(upstream.host))).toBe(cached.digest);
      expect(mirror.distribution.requests(mark).some((r) => r.uri.includes(`/manifests/${cached.tag}`))).toBe(true);
    } finally {
      await upstream.restart();
    }
  });

  it('wrong upstream credentials: the node falls back to the upstream, the mirror log says why, without the password', async () => {
    const wrong = 'not-the-Pa55word';
    const image = await newImage();
    await updateSecret({ username: USER, password: wrong });
    await mirror.restart(); // at once, rather than after the helper's lifetime
    const mark = mirror.distribution.mark();
    try {
      const upMark = upstream.mark();
      // The front answers 404 for what Distribution cannot get (the upstream's 401, passed on by
      // Distribution 3.1.2), so containerd tries the upstream itself, with the node's credentials.
      const user = `${USER}:${PASSWORD}`;
      expect(await freshPull(image.refByTag(upstream.host), { user })).toBe(image.digest);
      expect(await freshPull(image.refByDigest(upstream.host), { user })).toBe(image.digest);
      expect(upstream.blobGets(upMark, 'containerd').total).toBeGreaterThan(0);
      // A node without credentials of its own gets the upstream's 401.
      await expect(freshPull(image.refByDigest(upstream.host))).rejects.toThrow(/401 Unauthorized/);

      const errors = mirror.distribution.logs.slice(mark).filter((l) => l.msg === 'response completed with error');
      const byDigest = errors.find((l) => String(l['http.request.uri']).includes(`/manifests/${image.digest}`));
      expect(JSON.stringify(byDigest), mirror.distribution.tail(30)).toMatch(/authentication required|unauthorized/i);
      const everything =
        mirror.distribution.allOutput() +
        (await mirror.front!.accessLog()).map((l) => JSON.stringify(l)).join('\n') +
        mirror.front!.errors().join('\n');
      expect(everything).not.toContain(wrong);
      expect(everything).not.toContain(PASSWORD);
    } finally {
      await updateSecret({ username: USER, password: PASSWORD });
      await mirror.restart();
    }
  });

  it('a missing credentials key: the helper says which, without any value, and nodes fall back', async () => {
    const image = await newImage();
    await updateSecret({ username: USER, password: '' });
    await mirror.restart();
    const mark = mirror.distribution.mark();
    try {
      expect(await freshPull(image.refByDigest(upstream.host), { user: `${USER}:${PASSWORD}` })).toBe(image.digest);
      expect(mirror.distribution.rawOutput() + mirror.distribution.tail(50)).toMatch(
        /credential helper: key 'password' of the credentials Secret is empty/,
      );
      expect(
        mirror.distribution.logs
          .slice(mark)
          .map((l) => JSON.stringify(l))
          .join('\n'),
      ).not.toContain(USER + ':');
    } finally {
      await updateSecret({ username: USER, password: PASSWORD });
      await mirror.restart();
    }
  });

  it('rotated credentials: the mirror uses them without a restart, within the helper lifetime', async () => {
    const rotated = 'second-Pa55word';
    // A pull through the mirror first, so Distribution holds the old credentials from the helper.
    const before = await newImage();
    expect(await freshPull(before.refByTag(upstream.host))).toBe(before.digest);
    await upstream.setPassword(rotated);
    client.close();
    client = new RegistryClient({ url: upstream.url, username: USER, password: rotated, ca: upstream.ca.caCert });
    const image = await newImage();
    const started = Date.now();
    await updateSecret({ username: USER, password: rotated });
    // No restart: Distribution runs the helper again once its lifetime (30 s) is over.
    const front = new RegistryClient({ url: mirror.url });
    try {
      await waitFor(
        'the mirror to fetch with the rotated credentials',
        async () =>
          (await front.request('GET', `/v2/${image.repository}/manifests/${image.digest}`)).status === 200
            ? true
            : undefined,
        45_000,
        1000,
      );
    } finally {
      front.close();
    }
    expect(Date.now() - started).toBeLessThan(45_000);
    const upMark = upstream.mark();
    expect(await freshPull(image.refByTag(upstream.host))).toBe(image.digest); // no node credentials
    expect(upstream.requests(upMark).filter((r) => r.userAgent.includes('containerd'))).toEqual([]);
    expect(mirror.distribution.allOutput()).not.toContain(rotated);
  });

  it('a node agent replacing an existing hosts.toml restores the directory as it was on SIGTERM', async () => {
    const nodeCerts = join(dir, 'certs.d-existing');
    const original = hostsToml(`https://${upstream.host}`, [
      { url: `https://${upstream.host}`, ca: upstream.ca.caCert },
    ]);
    await mkdir(join(nodeCerts, upstream.host), { recursive: true });
    await writeFile(join(nodeCerts, upstream.host, 'hosts.toml'), original);
    await mkdir(join(nodeCerts, 'other.example'));
    await writeFile(join(nodeCerts, 'other.example', 'hosts.toml'), 'server = "https://other.example"\n');
    const before = await snapshotDir(nodeCerts);

    const second = await startNodeAgent({
      name: NAME,
      objects,
      certsDir: nodeCerts,
      mirrorAddress: '127.0.0.1',
      servicePort: mirror.port,
      workDir: join(dir, 'agent2'),
    });
    try {
      await waitFor('the agent to replace hosts.toml', async () =>
        (await readFile(join(nodeCerts, upstream.host, 'hosts.toml'), 'utf8')).includes(`127.0.0.1:${mirror.port}`)
          ? true
          : undefined,
      );
      const image = await newImage();
      const mark = await mirror.front!.mark();
      await node.forgetAll();
      const pulled = await node.pull(image.refByTag(upstream.host), {
        hostsDir: nodeCerts,
        caFile: upstream.ca.caCert,
      });
      expect(pulled.digest).toBe(image.digest);
      expect((await mirror.front!.accessLog()).length).toBeGreaterThan(mark);
    } finally {
      const exit = await second.terminate();
      expect(exit.code, second.output.join('\n')).toBe(0);
    }
    expect(await snapshotDir(nodeCerts)).toEqual(before);
  });

  it('the first node agent, stopped, leaves certs.d empty as it found it', async () => {
    const exit = await agent.terminate();
    expect(exit.code, agent.output.join('\n')).toBe(0);
    expect(await snapshotDir(certsDir)).toEqual({});
  });
});
