// Every node runtime, run for real: for each `--node-runtime`, the node agent script from the
// synthesized ConfigMap runs with the DaemonSet's env in a temp root standing for the host (the
// DaemonSet's one hostPath under it), and a real client pulls with what it wrote, through the
// synthesized mirror in front of an authenticated TLS upstream:
//   containerd, k3s, rke2  ctr (Debian's containerd 1.6) --hosts-dir <their certs.d>
//   cri-o                  skopeo (containers/image, CRI-O's pull library) with the drop-in
// Stopping the agent must leave each directory exactly as it was found.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { NODE_RUNTIMES, type NodeRuntime } from '../../src/api/names.js';
import type { MirrorSpec } from '../../src/api/schema.js';
import { synthesizeMirror } from '../../src/synth/chart.js';
import {
  agentHostDir,
  Containerd,
  type ContainerdBinaries,
  containerdV2,
  debianContainerd,
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
import { type ContainersNode, containersNode, CopyError, skopeoCopy } from '../support/fixtures/skopeo.js';
import { type ManifestObject } from '../support/primitives/manifest.js';
import { spawnTracked } from '../support/primitives/processes.js';
import { ensureTool } from '../support/primitives/tools.js';
import { waitFor } from '../support/primitives/wait.js';

const NAME = 'nodes';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'first-Pa55word';

let dir: string;
let upstream: Upstream;
let client: RegistryClient;
let mirror: SynthesizedMirror;
let images = 0;

/** A new image on the upstream (a cold cache), with a multi-platform index. */
async function newImage(): Promise<TestImage> {
  const image = buildImage({ repository: `team/node${++images}`, tag: '1.0', layerSizes: [16 * 1024, 96 * 1024] });
  await client.push(image);
  return image;
}

function objectsFor(runtime: NodeRuntime, spec: Partial<MirrorSpec> = {}): ManifestObject[] {
  return synthesizeMirror(
    { name: NAME, spec: { upstreamUrl: upstream.host, credentialsSecret: SECRET, ...spec }, source: 'node-runtimes' },
    { namespace: 'test', nodeRuntime: runtime },
  );
}

function startAgentIn(objects: ManifestObject[], configDir: string, workDir: string): Promise<NodeAgent> {
  return startNodeAgent({
    name: NAME,
    objects,
    certsDir: configDir,
    mirrorAddress: '127.0.0.1',
    servicePort: mirror.port,
    workDir,
  });
}

/** Every blob a linux/amd64 node needs came from the mirror since `mark` (once the mirror has logged them). */
async function expectServedByMirror(mark: number, image: TestImage): Promise<void> {
  const served = (await mirror.distribution.loggedBlobGets(image.blobDigests('linux/amd64'), mark)).byDigest;
  for (const digest of image.blobDigests('linux/amd64')) expect(served.has(digest), digest).toBe(true);
}

const readOr = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '');

beforeAll(async () => {
  const binary = inject('registryBinary');
  dir = await mkdtemp(join(tmpdir(), 'ms-rt-'));
  upstream = await startUpstream({ binary, dir: join(dir, 'upstream'), username: USER, password: PASSWORD });
  client = new RegistryClient({ url: upstream.url, username: USER, password: PASSWORD, ca: upstream.ca.caCert });
  // The cache does not depend on the node runtime: one mirror serves every node below.
  mirror = await startSynthesizedMirror({
    binary,
    dir: join(dir, 'mirror'),
    name: NAME,
    objects: objectsFor('containerd'),
    secrets: { [SECRET]: { username: USER, password: PASSWORD } },
    upstreamCaFile: upstream.ca.caCert,
  });
});

afterAll(async () => {
  client?.close();
  await mirror?.dispose();
  await upstream?.dispose();
  if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
});

/** The node clients: Debian's containerd and containerd 2.x, each with its own ctr. */
const CONTAINERDS: Record<string, () => Promise<ContainerdBinaries>> = {
  'containerd 1.6 (Debian)': () => Promise.resolve(debianContainerd),
  'containerd 2.4 (built from its Go module)': containerdV2,
};

describe.each(Object.keys(CONTAINERDS))('%s: ctr --hosts-dir reads what the agent wrote', (client) => {
  let node: Containerd;
  const tag = client.split(' ')[1];
  // 2.x pulls through its transfer service, which has no unpack configuration for the native
  // snapshotter these tests use: fetch the content only (the same resolution through hosts.toml).
  const pullOptions = (hostsDir: string): PullOptions => ({
    hostsDir,
    caFile: upstream.ca.caCert,
    unpack: tag === '1.6',
  });

  beforeAll(async () => {
    node = await Containerd.start(join(dir, `ctrd-${tag}`), 'e2e', await CONTAINERDS[client]());
  });
  afterAll(async () => {
    await node?.stop();
  });

  it.each(NODE_RUNTIMES.filter((r) => r !== 'cri-o'))(
    '%s: pulls through the mirror, keeps up with a regenerated directory, and restores it as found',
    async (runtime) => {
      const root = join(dir, tag, runtime);
      const objects = objectsFor(runtime);
      const configDir = join(root, agentHostDir(objects, NAME));
      // What the node had before: another registry's config and, for this upstream, a file of its own.
      const own = `server = "https://${upstream.host}"\n\n[host."https://${upstream.host}"]\n  capabilities = ["pull", "resolve"]\n`;
      await mkdir(join(configDir, 'other.example'), { recursive: true });
      await writeFile(join(configDir, 'other.example', 'hosts.toml'), 'server = "https://other.example"\n');
      await mkdir(join(configDir, upstream.host), { recursive: true });
      await writeFile(join(configDir, upstream.host, 'hosts.toml'), own);
      const before = await snapshotDir(configDir);

      const agent = await startAgentIn(objects, configDir, join(root, 'agent'));
      const file = join(configDir, upstream.host, 'hosts.toml');
      const ours = async () => ((await readOr(file)).includes(`127.0.0.1:${mirror.port}`) ? true : undefined);
      try {
        await waitFor('the agent to write hosts.toml', ours);
        const image = await newImage();
        const mark = mirror.distribution.mark();
        const pulled = await node.pull(image.refByTag(upstream.host), pullOptions(configDir));
        expect(pulled.digest).toBe(image.digest);
        await expectServedByMirror(mark, image);

        if (runtime !== 'containerd') {
          // What k3s and RKE2 do when the service restarts: remove the host dirs they manage or
          // are about to write (all of certs.d before v1.28.14/v1.29.9/v1.30.5/v1.31.1), write their own.
          await rm(configDir, { recursive: true, maxRetries: 10 });
          await mkdir(join(configDir, upstream.host), { recursive: true });
          const generated = `# File generated by ${runtime}. DO NOT EDIT.\n${own}`;
          await writeFile(file, generated);
          await waitFor('the agent to rewrite hosts.toml', ours, 10_000);
          const again = await newImage();
          const mark2 = mirror.distribution.mark();
          expect((await node.pull(again.refByTag(upstream.host), pullOptions(configDir))).digest).toBe(again.digest);
          await expectServedByMirror(mark2, again);
          // stopping now must give back what the service wrote last
          const exit = await agent.terminate();
          expect(exit.code, agent.output.join('\n')).toBe(0);
          expect(await snapshotDir(configDir)).toEqual({
            [`${upstream.host}/`]: '',
            [`${upstream.host}/hosts.toml`]: generated,
          });
          return;
        }
      } finally {
        await agent.terminate();
      }
      expect(await snapshotDir(configDir)).toEqual(before);
    },
  );

  it('pullFromMirror digest-only: the tag is looked up at the upstream, the content by digest comes through the mirror', async () => {
    const root = join(dir, tag, 'digest-only');
    const objects = objectsFor('containerd', { pullFromMirror: 'digest-only' });
    const configDir = join(root, agentHostDir(objects, NAME));
    await mkdir(configDir, { recursive: true });
    const agent = await startAgentIn(objects, configDir, join(root, 'agent'));
    const file = join(configDir, upstream.host, 'hosts.toml');
    try {
      await waitFor('the agent to write hosts.toml', async () =>
        (await readOr(file)).includes(`127.0.0.1:${mirror.port}`) ? true : undefined,
      );
      expect(await readFile(file, 'utf8')).toContain('capabilities = ["pull"]\n');
      const image = await newImage();
      const [markUp, mark] = [upstream.mark(), mirror.distribution.mark()];
      // The node asks the upstream itself for the tag, so it needs credentials there, as a node would.
      const pulled = await node.pull(image.refByTag(upstream.host), {
        ...pullOptions(configDir),
        user: `${USER}:${PASSWORD}`,
      });
      expect(pulled.digest).toBe(image.digest);
      await expectServedByMirror(mark, image);
      const tagPath = `/v2/${image.repository}/manifests/${image.tag}`;
      const fromNode = (r: { userAgent: string }) => r.userAgent.includes('containerd');
      // the tag: answered by the upstream, to the node, and never asked of the mirror
      const upstreamTag = upstream.requests(markUp).filter((r) => fromNode(r) && r.uri === tagPath);
      expect(upstreamTag.map((r) => r.status)).toContain(200);
      const mirrorRequests = mirror.distribution.requests(mark);
      expect(mirrorRequests.filter((r) => r.uri.includes(`/manifests/${image.tag}`))).toEqual([]);
      // the image's index, by the digest the upstream named, through the mirror
      // (containerd adds `?ns=<host>` to what it asks a mirror)
      const path = (r: { uri: string }) => r.uri.split('?')[0];
      expect(mirrorRequests.some((r) => path(r) === `/v2/${image.repository}/manifests/${image.digest}`)).toBe(true);
      // and the node fetched no blob from the upstream
      expect(upstream.requests(markUp).filter((r) => fromNode(r) && r.uri.includes('/blobs/'))).toEqual([]);
    } finally {
      await agent.terminate();
    }
  });
});

describe('cri-o nodes: skopeo with the agent drop-in', () => {
  let node: ContainersNode;
  let agent: NodeAgent;
  let configDir: string;
  let before: Record<string, string>;
  let pulls = 0;
  const dest = () => join(dir, 'crio-pulls', String(++pulls));
  const site = 'unqualified-search-registries = ["docker.io"]\n';

  beforeAll(async () => {
    node = await containersNode(join(dir, 'crio'), upstream.ca.caCert);
    // The agent writes where the DaemonSet's hostPath says, under a root standing for the host;
    // skopeo reads that directory as its user drop-in directory (see test/support/fixtures/skopeo.ts).
    const objects = objectsFor('cri-o');
    expect(agentHostDir(objects, NAME)).toBe('/etc/containers/registries.conf.d');
    configDir = node.dropInDir;
    await writeFile(join(configDir, '10-site.conf'), site);
    before = await snapshotDir(configDir);
    agent = await startAgentIn(objects, configDir, join(dir, 'crio', 'agent'));
    await waitFor('the agent to write its drop-in', async () =>
      (await readOr(join(configDir, `50-mirror-synth-${NAME}.conf`))).includes(`127.0.0.1:${mirror.port}`)
        ? true
        : undefined,
    );
  });
  afterAll(async () => {
    await agent?.terminate();
  });

  it('pulls through the mirror, which it tries first, without credentials of its own', async () => {
    const image = await newImage();
    const mark = upstream.mark();
    const mirrorMark = mirror.distribution.mark();
    const r = await skopeoCopy(node, image.refByTag(upstream.host), dest());
    expect(r.tried).toEqual([`${mirror.host}/${image.repository}:${image.tag}`]);
    const blobs = image.blobDigests('linux/amd64');
    expect((await mirror.distribution.loggedBlobGets(blobs, mirrorMark, 'skopeo')).total).toBe(blobs.length);
    // the node never talked to the upstream; the mirror did, with its credentials
    expect(upstream.requests(mark).filter((q) => q.userAgent.includes('skopeo'))).toEqual([]);
    expect((await upstream.loggedBlobGets(blobs, mark)).total).toBe(blobs.length);
  });

  it('falls back to the upstream when the mirror is down', async () => {
    const image = await newImage();
    await mirror.stop();
    try {
      const mark = upstream.mark();
      const r = await skopeoCopy(node, image.refByTag(upstream.host), dest(), { creds: `${USER}:${PASSWORD}` });
      const ref = `${image.repository}:${image.tag}`;
      expect(r.tried).toEqual([`${mirror.host}/${ref}`, `${upstream.host}/${ref}`]);
      const blobs = image.blobDigests('linux/amd64');
      expect((await upstream.loggedBlobGets(blobs, mark, 'skopeo')).total).toBe(blobs.length);
    } finally {
      await mirror.restart();
    }
  });

  // containers/image picks the source once, on the first manifest: a mirror that answers it
  // but fails anything after (a platform's manifest, a blob) fails the pull, with no fallback,
  // although the node could have pulled from the upstream itself. Here: the mirror has the
  // image's index cached, the upstream password was rotated before the mirror's Secret.
  it('does not fall back once the mirror has answered the first manifest', async () => {
    const image = await newImage();
    await skopeoCopy(node, image.refByTag(upstream.host), dest()); // linux/amd64 through the mirror
    const rotated = 'rotated-Pa55word';
    await upstream.setPassword(rotated);
    try {
      const err = await skopeoCopy(node, image.refByTag(upstream.host), dest(), {
        creds: `${USER}:${rotated}`,
        arch: 'arm64',
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CopyError);
      const { message, output } = err as CopyError;
      expect(message).toMatch(new RegExp(`reading manifest sha256:[0-9a-f]{64} in ${mirror.host}/`));
      // the upstream's 401, which the mirror's front answers as a 404 so that containerd falls back
      expect(message).toContain('name unknown: the mirror cannot serve this now');
      expect(output).not.toContain(`Trying to access \\"${upstream.host}/`);
      // while a node without the drop-in pulls it from the upstream with the same credentials
      const plain = await containersNode(join(dir, 'crio-plain'), upstream.ca.caCert);
      const direct = await skopeoCopy(plain, image.refByTag(upstream.host), dest(), {
        creds: `${USER}:${rotated}`,
        arch: 'arm64',
      });
      expect(direct.tried).toEqual([`${upstream.host}/${image.repository}:${image.tag}`]);
    } finally {
      await upstream.setPassword(PASSWORD);
    }
  });

  it('stopped, leaves registries.conf.d exactly as it found it', async () => {
    const exit = await agent.terminate();
    expect(exit.code, agent.output.join('\n')).toBe(0);
    expect(await snapshotDir(configDir)).toEqual(before);
    expect(before).toEqual({ '10-site.conf': site });
  });
});

/** docs/nodes.md's ```toml block whose first line starts with `first`. */
async function readmeSnippet(first: string): Promise<string> {
  const readme = await readFile(new URL('../../docs/nodes.md', import.meta.url), 'utf8');
  const block = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.startsWith(first));
  if (!block) throw new Error(`docs/nodes.md has no toml block starting with '${first}'`);
  return block;
}

// The config_path snippets docs/nodes.md tells users to put in /etc/containerd/config.toml, as
// written there: each containerd version loads its own with config_path in the CRI registry
// table and no complaint about an unknown key.
// pull-from-mirror = "digest-only" (containers/image 5.23 from Debian reads it): the mirror
// serves pulls by digest only; a pull by tag, layers included, goes to the upstream alone.
describe('cri-o nodes with pullFromMirror digest-only: skopeo with the agent drop-in', () => {
  let node: ContainersNode;
  let agent: NodeAgent;
  let pulls = 0;
  const dest = () => join(dir, 'crio-digest-pulls', String(++pulls));

  beforeAll(async () => {
    node = await containersNode(join(dir, 'crio-digest'), upstream.ca.caCert);
    const objects = objectsFor('cri-o', { pullFromMirror: 'digest-only' });
    agent = await startAgentIn(objects, node.dropInDir, join(dir, 'crio-digest', 'agent'));
    const file = join(node.dropInDir, `50-mirror-synth-${NAME}.conf`);
    await waitFor('the agent to write its drop-in', async () =>
      (await readOr(file)).includes(`127.0.0.1:${mirror.port}`) ? true : undefined,
    );
    expect(await readFile(file, 'utf8')).toContain('pull-from-mirror = "digest-only"\n');
  });
  afterAll(async () => {
    await agent?.terminate();
  });

  it('pulls by tag from the upstream only, and by digest through the mirror', async () => {
    const image = await newImage();
    const blobs = image.blobDigests('linux/amd64');
    const creds = `${USER}:${PASSWORD}`;
    let [mark, mirrorMark] = [upstream.mark(), mirror.distribution.mark()];
    const byTag = await skopeoCopy(node, image.refByTag(upstream.host), dest(), { creds });
    expect(byTag.tried).toEqual([`${upstream.host}/${image.repository}:${image.tag}`]);
    expect((await upstream.loggedBlobGets(blobs, mark, 'skopeo')).total).toBe(blobs.length);
    expect(mirror.distribution.requests(mirrorMark)).toEqual([]);

    [mark, mirrorMark] = [upstream.mark(), mirror.distribution.mark()];
    const byDigest = await skopeoCopy(node, image.refByDigest(upstream.host), dest(), { creds });
    expect(byDigest.tried[0]).toBe(`${mirror.host}/${image.repository}@${image.digest}`);
    expect((await mirror.distribution.loggedBlobGets(blobs, mirrorMark, 'skopeo')).total).toBe(blobs.length);
    expect(upstream.requests(mark).filter((q) => q.userAgent.includes('skopeo'))).toEqual([]);
  });
});

describe('the containerd config snippets of docs/nodes.md', () => {
  const cases = [
    {
      name: 'containerd 1.x',
      binaries: () => Promise.resolve(debianContainerd),
      table: '[plugins."io.containerd.grpc.v1.cri".registry]',
    },
    { name: 'containerd 2.x', binaries: containerdV2, table: "[plugins.'io.containerd.cri.v1.images'.registry]" },
  ];
  it.each(cases)('$name: config_path reaches the CRI registry table', async ({ name, binaries, table }) => {
    const snippet = await readmeSnippet(`# ${name}`);
    const file = join(dir, `${name.replace(/\W+/g, '-')}.toml`);
    await writeFile(file, snippet);
    const { stdout, stderr } = await promisify(execFile)((await binaries()).containerd, [
      '--config',
      file,
      'config',
      'dump',
    ]);
    expect(stderr).not.toMatch(/unknown key/i);
    const lines = stdout.split('\n').map((l) => l.trim());
    const at = lines.indexOf(table);
    expect(at, stdout).toBeGreaterThan(-1);
    expect(lines.slice(at + 1).find((l) => l.startsWith('config_path'))).toMatch(
      /^config_path = ["']\/etc\/containerd\/certs\.d["']$/,
    );
  });

  it('containerd 1.6 ignores the 2.x form: each version needs its own', async () => {
    const file = join(dir, 'v2-form-on-1.6.toml');
    await writeFile(file, await readmeSnippet('# containerd 2.x'));
    const { stdout } = await promisify(execFile)('containerd', ['--config', file, 'config', 'dump']);
    expect(stdout).not.toContain('/etc/containerd/certs.d');
  });
});

// The proof that matters for a node: containerd 2.4 with its CRI plugin on, configured with the
// docs/nodes.md's 2.x snippet (only the directory changed to the temp one), pulls through the mirror
// when asked as the kubelet asks (CRI PullImage, from tools/cri-pull), reading the hosts.toml
// the agent wrote. No --hosts-dir: the CRI plugin finds the directory through config_path.
describe("containerd 2.4's CRI plugin, configured with docs/nodes.md's snippet", () => {
  it('pulls as the kubelet would, through the mirror, from the hosts.toml the agent wrote', async () => {
    const [binaries, criPull] = await Promise.all([containerdV2(), ensureTool('cri-pull')]);
    const root = join(dir, 'cri');
    const certsDir = join(root, 'certs.d');
    await mkdir(certsDir, { recursive: true });
    const socket = join(root, 'c.sock');
    const snippet = (await readmeSnippet('# containerd 2.x')).replace('/etc/containerd/certs.d', certsDir);
    expect(snippet).toContain(`config_path = "${certsDir}"`);
    const config = [
      `root = "${join(root, 'root')}"`,
      `state = "${join(root, 'state')}"`,
      snippet,
      // test-only: the native snapshotter (no overlayfs here), also for the transfer service's unpack
      '[plugins."io.containerd.cri.v1.images"]',
      '  snapshotter = "native"',
      '[[plugins."io.containerd.transfer.v1.local".unpack_config]]',
      '  platform = "linux/amd64"',
      '  snapshotter = "native"',
      `[grpc]\n  address = "${socket}"`,
      `[ttrpc]\n  address = "${socket}.ttrpc"`,
      `[debug]\n  address = "${join(root, 'd.sock')}"`,
      '',
    ].join('\n');
    await writeFile(join(root, 'config.toml'), config);
    const log = await open(join(root, 'containerd.log'), 'w');
    const daemon = spawnTracked(binaries.containerd, ['--config', join(root, 'config.toml')], {
      stdio: ['ignore', log.fd, log.fd],
    });
    const agent = await startAgentIn(objectsFor('containerd'), certsDir, join(root, 'agent'));
    try {
      await waitFor('the agent to write hosts.toml', async () =>
        (await readOr(join(certsDir, upstream.host, 'hosts.toml'))).includes(`127.0.0.1:${mirror.port}`)
          ? true
          : undefined,
      );
      const image = await newImage();
      const [mark, upstreamMark] = [mirror.distribution.mark(), upstream.mark()];
      const pull = () => promisify(execFile)(criPull, ['-endpoint', socket, image.refByTag(upstream.host)]);
      // the CRI socket comes up with the daemon; keep the last refusal for the timeout message
      let last = '';
      const { stdout } = await waitFor(
        'a CRI pull',
        () =>
          pull().catch((e: Error & { stderr?: string }) => {
            last = e.stderr || e.message;
            return undefined;
          }),
        20_000,
        500,
      ).catch((e: Error) => {
        throw new Error(`${e.message}; last: ${last}`);
      });
      expect(stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
      await expectServedByMirror(mark, image);
      // the node itself never went to the upstream: it has neither credentials nor the CA
      // (since this pull: the digest-only tests above sent their tag lookups there on purpose)
      expect(upstream.requests(upstreamMark).filter((r) => r.userAgent.includes('containerd'))).toEqual([]);
    } finally {
      await agent.terminate();
      daemon.kill('SIGTERM');
      await log.close();
    }
  });
});
