// The stand-in images (test/support/fixtures/stand-in-images.ts) as the e2e node's kubelet will meet
// them: imported into a real containerd 2.x's `k8s.io` namespace under the names the synthesized
// manifests use, then run by containerd and runc (`ctr run`, overlayfs) with each image's own
// entrypoint and the Pod's command, args, user, read-only root filesystem and mounts. The cache
// pod runs as a Pod does: a pause container holds the network namespace (loopback up, as CNI's
// loopback plugin does), the front, Distribution, mtail and node_exporter join it, and their
// probes run inside the containers. What the kubelet adds (the API, volumes, Services, DNS) is the
// node's test; here the images themselves are on trial.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  FRONT_IMAGE,
  FRONT_METRICS_IMAGE,
  NODE_AGENT_IMAGE,
  NODE_EXPORTER_IMAGE,
  REGISTRY_IMAGE,
} from '../../src/construct/images.js';
import { synthesizeMirror } from '../../src/index.js';
import { Containerd, containerdV2 } from '../support/components/containerd.js';
import {
  CONTROLLER_IMAGE,
  importStandInImages,
  type ImportStandInImagesResult,
  PAUSE_IMAGE,
  STAND_IN_IMAGES,
} from '../support/fixtures/stand-in-images.js';
import { type DnsServer, startDns } from '../support/primitives/dns.js';
import { configMapData, containerEnv, findObject, type ManifestObject } from '../support/primitives/manifest.js';
import { makeTestCA, type TestCA } from '../support/primitives/tls.js';
import { waitFor } from '../support/primitives/wait.js';

const execFileAsync = promisify(execFile);
const NAME = 'quay';
const NAMESPACE = 'kube-extra';
const SNAPSHOTTER = 'overlayfs';
/**
 * The mirror's upstream: a TLS registry (the registry stand-in too, its certificate signed by
 * the test CA) in the cache pod's network namespace. Distribution in proxy mode without
 * credentials asks the upstream's /v2/ at start and panics when it cannot.
 */
const UPSTREAM = '127.0.0.1:5443';

let dir: string;
let ctrd: Containerd;
let caPem: string;
let ca: TestCA;
let first: ImportStandInImagesResult;
let objects: ManifestObject[];
const timings: string[] = [];

interface ImageConfig {
  readonly User?: string;
  readonly Entrypoint?: string[];
  readonly Cmd?: string[];
  readonly WorkingDir?: string;
  readonly Env?: string[];
  readonly ExposedPorts?: Record<string, unknown>;
}

/** ctr's output without its log lines (containerd 2.x's ctr warns about cgroup v1 on stderr). */
const outputOf = (text: string): string =>
  text
    .split('\n')
    .filter((l) => !l.startsWith('time='))
    .join('\n')
    .trim();

/** The image's config as containerd stores it (manifest, then config blob). */
async function storedConfig(name: string): Promise<ImageConfig> {
  const get = async (digest: string): Promise<unknown> => {
    const args = ['--address', ctrd.address, '-n', ctrd.namespace, 'content', 'get', digest];
    return JSON.parse((await execFileAsync(ctrd.binaries.ctr, args, { maxBuffer: 1024 * 1024 })).stdout);
  };
  const manifest = (await get(first.images[name])) as { config: { digest: string } };
  return ((await get(manifest.config.digest)) as { config: ImageConfig }).config;
}

/** The process a kubelet starts: `command` replaces the entrypoint, `args` the image's Cmd. */
async function podArgv(image: string, c: { command?: readonly string[]; args?: readonly string[] }): Promise<string[]> {
  const config = await storedConfig(image);
  if (c.command) return [...c.command, ...(c.args ?? [])];
  return [...(config.Entrypoint ?? []), ...(c.args ?? config.Cmd ?? [])];
}

interface RunOptions {
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  /** uid:gid, as the Pod's securityContext sets it. @default - the image's user */
  readonly user?: string;
  readonly readOnly?: boolean;
  readonly mounts?: readonly { src: string; dst: string; ro?: boolean }[];
  readonly env?: Readonly<Record<string, string>>;
  /** The network namespace to join (the pause container's). @default - a new one */
  readonly netns?: string;
  readonly netHost?: boolean;
  /** Start and return at once (the container stays); else run to the end and remove it. */
  readonly detach?: boolean;
}

const containers: string[] = [];

/** `ctr run` an image as a kubelet would start the container; resolves with its output. */
async function run(image: string, id: string, opts: RunOptions = {}): Promise<string> {
  const args = ['run', '--snapshotter', SNAPSHOTTER, opts.detach ? '--detach' : '--rm'];
  if (opts.detach) args.push('--log-uri', `file://${logFile(id)}`);
  if (opts.readOnly) args.push('--read-only');
  if (opts.user) args.push('--user', opts.user);
  if (opts.netns) args.push('--with-ns', `network:${opts.netns}`);
  if (opts.netHost) args.push('--net-host');
  for (const m of opts.mounts ?? []) {
    args.push('--mount', `type=bind,src=${m.src},dst=${m.dst},options=rbind:${m.ro ? 'ro' : 'rw'}`);
  }
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push('--env', `${k}=${v}`);
  args.push(image, id, ...(await podArgv(image, opts)));
  if (opts.detach) containers.push(id);
  return outputOf(await ctrd.ctr(args, {}, 120_000));
}

const logFile = (id: string): string => join(dir, `${id}.log`);

/** A detached container's output so far. */
async function logsOf(id: string): Promise<string> {
  return readFile(logFile(id), 'utf8').catch(() => '');
}

/** Run a command in a running container (an exec probe): its stdout; rejects with its output on a non-zero exit. */
async function exec(id: string, argv: readonly string[]): Promise<string> {
  const args = ['--address', ctrd.address, '-n', ctrd.namespace, 'tasks', 'exec', '--exec-id', `probe-${++execs}`];
  try {
    return (await execFileAsync(ctrd.binaries.ctr, [...args, id, ...argv], { timeout: 30_000 })).stdout.trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`${argv.join(' ')} in ${id} failed:\n${outputOf((e.stdout ?? '') + (e.stderr ?? ''))}`);
  }
}
let execs = 0;

async function taskPid(id: string): Promise<number> {
  const line = (await ctrd.ctr(['tasks', 'ls'])).split('\n').find((l) => l.startsWith(`${id} `));
  if (!line) throw new Error(`no task ${id}`);
  return Number(line.trim().split(/\s+/)[1]);
}

async function removeContainer(id: string): Promise<void> {
  await ctrd.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined);
  await waitFor(`task ${id} to stop`, async () => {
    const out = await ctrd.ctr(['tasks', 'ls']);
    const line = out.split('\n').find((l) => l.startsWith(`${id} `));
    return line === undefined || / STOPPED$/.test(line.trim()) ? true : undefined;
  }).catch(() => undefined);
  await ctrd.ctr(['tasks', 'rm', '-f', id]).catch(() => undefined);
  await ctrd.ctr(['containers', 'rm', id]).catch(() => undefined);
}

/** A container of a synthesized workload: the fields a kubelet reads to start it. */
interface PodContainer {
  readonly name: string;
  readonly image: string;
  readonly command?: string[];
  readonly args?: string[];
  readonly volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  readonly securityContext?: { readOnlyRootFilesystem?: boolean; runAsUser?: number };
  readonly readinessProbe?: { exec?: { command: string[] } };
}

interface PodSpec {
  readonly securityContext?: { runAsUser?: number; runAsGroup?: number; fsGroup?: number };
  readonly containers: PodContainer[];
}

function podSpec(kind: 'StatefulSet' | 'DaemonSet'): PodSpec {
  return (findObject(objects, kind, `registry-mirror-${NAME}`) as unknown as { spec: { template: { spec: PodSpec } } })
    .spec.template.spec;
}

function podContainer(kind: 'StatefulSet' | 'DaemonSet', name: string): PodContainer {
  const c = podSpec(kind).containers.find((x) => x.name === name);
  if (!c) throw new Error(`${kind}/registry-mirror-${NAME} has no container ${name}`);
  return c;
}

/** A directory of files, as a ConfigMap volume: read-only for the pod, files `mode`. */
async function configDir(name: string, files: Record<string, string>, mode: number): Promise<string> {
  const d = join(dir, 'volumes', name);
  await mkdir(d, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    await writeFile(join(d, file), content);
    await chmod(join(d, file), mode);
  }
  return d;
}

/** An emptyDir / claim owned by the pod's fsGroup, as the kubelet prepares it. */
async function podDir(name: string, gid: number): Promise<string> {
  const d = join(dir, 'volumes', name);
  await mkdir(d, { recursive: true });
  await chown(d, 0, gid);
  await chmod(d, 0o2775);
  return d;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sti-'));
  await chmod(dir, 0o755);
  ctrd = await Containerd.start(join(dir, 'c'), 'k8s.io', await containerdV2());
  ca = await makeTestCA(join(dir, 'ca'));
  caPem = await readFile(ca.caCert, 'utf8');
  const start = Date.now();
  first = await importStandInImages({ ctr: ctrd.binaries.ctr, address: ctrd.address, caPem, workDir: dir });
  timings.push(`import into a fresh containerd: ${Date.now() - start} ms`);
  // One namespace for the cache and the node agent (--node-agent-namespace set to it): the agent
  // then has the Service's environment variable, the fallback the node agent case below runs without DNS.
  objects = synthesizeMirror(
    { name: NAME, spec: { upstreamUrl: UPSTREAM }, source: 'test/e2e/stand-in-images.test.ts' },
    { namespace: NAMESPACE, nodeAgentNamespace: NAMESPACE },
  );
}, 1_800_000);

afterAll(async () => {
  for (const id of containers.reverse()) await removeContainer(id);
  await ctrd?.stop();
  console.log(timings.join('\n'));
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
});

describe('the import', () => {
  it('names every image the synthesized Pods, the node and the controller use, exactly', async () => {
    const podImages = (['StatefulSet', 'DaemonSet'] as const).flatMap((kind) =>
      podSpec(kind).containers.map((c) => c.image),
    );
    expect(new Set(podImages)).toEqual(
      new Set([REGISTRY_IMAGE, FRONT_IMAGE, FRONT_METRICS_IMAGE, NODE_EXPORTER_IMAGE, NODE_AGENT_IMAGE]),
    );
    const listed = outputOf(await ctrd.ctr(['images', 'ls']));
    for (const name of [...podImages, PAUSE_IMAGE, CONTROLLER_IMAGE]) {
      expect(listed).toMatch(
        new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s.*${first.images[name]}`, 'm'),
      );
    }
    expect(first.imported).toEqual([...STAND_IN_IMAGES]);
  });

  it('imports nothing the second time on the same containerd', async () => {
    const start = Date.now();
    const again = await importStandInImages({ ctr: ctrd.binaries.ctr, address: ctrd.address, caPem, workDir: dir });
    timings.push(`second import on the same containerd: ${Date.now() - start} ms`);
    expect(again.imported).toEqual([]);
    expect(again.images).toEqual(first.images);
  });

  it('records the real images’ entrypoints, commands, users and ports', async () => {
    expect(await storedConfig(REGISTRY_IMAGE)).toMatchObject({
      Entrypoint: ['/entrypoint.sh'],
      Cmd: ['/etc/distribution/config.yml'],
      ExposedPorts: { '5000/tcp': {} },
    });
    expect(await storedConfig(FRONT_IMAGE)).toMatchObject({
      User: '101',
      Entrypoint: ['/docker-entrypoint.sh'],
      Cmd: ['nginx', '-g', 'daemon off;'],
      ExposedPorts: { '8080/tcp': {} },
    });
    expect(await storedConfig(FRONT_METRICS_IMAGE)).toMatchObject({
      Entrypoint: ['/usr/bin/mtail'],
      WorkingDir: '/tmp',
      ExposedPorts: { '3903/tcp': {} },
    });
    expect(await storedConfig(NODE_EXPORTER_IMAGE)).toMatchObject({
      User: 'nobody',
      Entrypoint: ['/bin/node_exporter'],
      ExposedPorts: { '9100/tcp': {} },
    });
    expect(await storedConfig(NODE_AGENT_IMAGE)).toMatchObject({ Cmd: ['sh'] });
    expect(await storedConfig(PAUSE_IMAGE)).toMatchObject({ User: '65535:65535', Entrypoint: ['/pause'] });
  });
});

describe('each image runs with its entrypoint', () => {
  it('registry: /entrypoint.sh passes --version to Distribution 3.1.2, as root with the test CA trusted', async () => {
    expect(await run(REGISTRY_IMAGE, 'registry-version', { args: ['--version'] })).toMatch(/\bv3\.1\.2\b/);
    const bundle = await run(REGISTRY_IMAGE, 'registry-ca', { command: ['cat', '/etc/ssl/certs/ca-certificates.crt'] });
    expect(bundle.endsWith(caPem.trim())).toBe(true);
    expect(await run(REGISTRY_IMAGE, 'registry-id', { command: ['id', '-u'] })).toBe('0');
  });

  it('nginx: the image user 101 tests its default config through /docker-entrypoint.sh', async () => {
    const tmp = await podDir('nginx-default-tmp', 0);
    await chmod(tmp, 0o1777);
    const out = await run(FRONT_IMAGE, 'nginx-default', {
      args: ['nginx', '-t'],
      readOnly: true,
      mounts: [{ src: tmp, dst: '/tmp' }],
    });
    expect(out).toContain('test is successful');
    expect(await run(FRONT_IMAGE, 'nginx-id', { command: ['id', '-u'] })).toBe('101');
  });

  it('mtail, node_exporter, pause and the controller print their versions or help', async () => {
    expect(await run(FRONT_METRICS_IMAGE, 'mtail-version', { args: ['--version'] })).toMatch(/mtail version/);
    expect(await run(NODE_EXPORTER_IMAGE, 'node-exporter-version', { args: ['--version'] })).toMatch(
      /node_exporter, version 1\.12\.1/,
    );
    expect(await run(NODE_EXPORTER_IMAGE, 'node-exporter-id', { command: ['id', '-u'] })).toBe('65534');
    expect(await run(PAUSE_IMAGE, 'pause-version', { args: ['-v'] })).toMatch(/pause/);
    const help = await run(CONTROLLER_IMAGE, 'controller-help', { args: ['--help'], readOnly: true });
    expect(help).toContain('controller-manifests');
  });
});

describe('the cache pod, as synthesized', () => {
  let netns: string;

  beforeAll(async () => {
    const pod = podSpec('StatefulSet');
    const gid = pod.securityContext?.fsGroup ?? 1000;
    const user = `${pod.securityContext?.runAsUser}:${pod.securityContext?.runAsGroup}`;
    const config = configMapData.bind(undefined, objects, `registry-mirror-${NAME}-config`);
    const volumes = {
      config: await configDir('config', { 'config.yml': config('config.yml') }, 0o555),
      front: await configDir('front', { 'nginx.conf': config('nginx.conf') }, 0o644),
      mtail: await configDir('mtail', { 'front.mtail': config('front.mtail') }, 0o644),
      cache: await podDir('cache', gid),
      tmp: await podDir('tmp', gid),
      frontTmp: await podDir('front-tmp', gid),
    };
    const mountsOf = (container: string): { src: string; dst: string; ro?: boolean }[] =>
      (podContainer('StatefulSet', container).volumeMounts ?? []).map((m) => {
        const src = {
          config: volumes.config,
          'front-config': volumes.front,
          'front-metrics-program': volumes.mtail,
          cache: volumes.cache,
          tmp: volumes.tmp,
          'front-tmp': volumes.frontTmp,
        }[m.name];
        if (!src) throw new Error(`the cache pod mounts a volume the test does not make: ${m.name}`);
        return { src, dst: m.mountPath, ro: m.readOnly };
      });

    // The sandbox: pause as the Pod's user, its loopback brought up as CNI's loopback plugin does.
    await run(PAUSE_IMAGE, 'pod-sandbox', { detach: true, user: '65535:65535', readOnly: true });
    const pid = await taskPid('pod-sandbox');
    await execFileAsync('nsenter', ['-t', String(pid), '-n', 'ip', 'link', 'set', 'lo', 'up']);
    netns = `/proc/${pid}/ns/net`;

    // The upstream, through the registry image's default entrypoint (`/entrypoint.sh <config file>`).
    const upstream = await configDir(
      'upstream',
      {
        'config.yml': [
          'version: 0.1',
          'storage:',
          '  filesystem:',
          '    rootdirectory: /var/lib/registry',
          'http:',
          `  addr: ${UPSTREAM}`,
          '  tls:',
          '    certificate: /etc/upstream/server.pem',
          '    key: /etc/upstream/server.key',
          '',
        ].join('\n'),
        'server.pem': await readFile(ca.cert, 'utf8'),
        'server.key': await readFile(ca.key, 'utf8'),
      },
      0o400,
    );
    await run(REGISTRY_IMAGE, 'pod-upstream', {
      args: ['/etc/upstream/config.yml'],
      mounts: [{ src: upstream, dst: '/etc/upstream', ro: true }],
      netns,
      detach: true,
    });
    await waitFor('the upstream to listen', async () =>
      (await logsOf('pod-upstream')).includes('listening on') ? true : undefined,
    );

    for (const name of ['registry', 'front', 'front-metrics', 'volume-exporter']) {
      const c = podContainer('StatefulSet', name);
      await run(c.image, `pod-${name}`, {
        command: c.command,
        args: c.args,
        user,
        readOnly: c.securityContext?.readOnlyRootFilesystem,
        mounts: mountsOf(name),
        env: containerEnv(objects, 'StatefulSet', `registry-mirror-${NAME}`, name),
        netns,
        detach: true,
      });
    }
  }, 120_000);

  it("Distribution answers its probe on the debug port and the front's readiness probe passes", async () => {
    await waitFor('Distribution to answer /debug/health', () =>
      exec('pod-front', ['wget', '-q', '-O', '-', 'http://127.0.0.1:5004/debug/health']).then(() => true),
    ).catch(async (err: Error) => {
      throw new Error(
        `${err.message}\nregistry:\n${await logsOf('pod-registry')}\nfront:\n${await logsOf('pod-front')}`,
      );
    });
    const probe = podContainer('StatefulSet', 'front').readinessProbe?.exec?.command;
    expect(probe?.[0]).toBe('sh');
    await exec('pod-front', probe!);
    // The front passes /v2/ on to Distribution, which answers it.
    expect(await exec('pod-front', ['wget', '-q', '-O', '-', 'http://127.0.0.1:5000/v2/'])).toBe('{}');
  });

  it('mtail serves its metrics and node_exporter the cache volume’s', async () => {
    await waitFor('mtail and node_exporter to serve', async () => {
      const mtail = await exec('pod-front', ['wget', '-q', '-O', '-', 'http://127.0.0.1:3903/metrics']);
      const volume = await exec('pod-front', ['wget', '-q', '-O', '-', 'http://127.0.0.1:9100/metrics']);
      return mtail.includes('# TYPE') && volume.includes('mountpoint="/var/lib/registry"') ? true : undefined;
    });
  });
});

describe('the node agent, as synthesized', () => {
  let dns: DnsServer;
  beforeAll(async () => {
    dns = await startDns(0);
  });
  afterAll(async () => dns?.close());

  it("busybox's nslookup resolves a name through a DNS server", async () => {
    dns.set('registry-mirror-quay.kube-extra.svc.cluster.local', '10.215.0.42');
    const out = await run(NODE_AGENT_IMAGE, 'agent-nslookup', {
      command: ['nslookup', 'registry-mirror-quay.kube-extra.svc.cluster.local', `127.0.0.1:${dns.port}`],
      netHost: true,
      readOnly: true,
    });
    expect(out).toContain('10.215.0.42');
  });

  it('writes hosts.toml as root on a read-only root filesystem, and restores the directory on SIGTERM', async () => {
    const ds = `registry-mirror-${NAME}`;
    const env = containerEnv(objects, 'DaemonSet', ds, 'node-agent');
    const certs = join(dir, 'volumes', 'certs.d');
    await mkdir(certs, { recursive: true });
    const script = await configDir(
      'agent',
      { 'node-agent.sh': configMapData(objects, `registry-mirror-${NAME}-agent`, 'node-agent.sh') },
      0o555,
    );
    const agent = podContainer('DaemonSet', 'node-agent');
    // No DNS in the container's own network namespace: the agent falls back to the Service's env var.
    await run(agent.image, 'agent', {
      command: agent.command,
      user: '0:0',
      readOnly: true,
      mounts: [
        { src: certs, dst: env.CONFIG_DIR },
        { src: script, dst: '/opt/mirror-synth', ro: true },
      ],
      env: { ...env, RESOLVE_INTERVAL: '1', [env.SERVICE_HOST_VAR]: '10.215.0.42' },
      detach: true,
    });
    const hostsToml = join(certs, env.HOSTS.split(' ')[0], 'hosts.toml');
    const written = await waitFor('the agent to write hosts.toml', () => readFile(hostsToml, 'utf8'));
    expect(written).toContain('[host."http://10.215.0.42:5000"]');
    await ctrd.ctr(['tasks', 'kill', '-s', 'SIGTERM', 'agent']);
    await waitFor('the agent to restore certs.d', async () =>
      (await readdirSafe(certs)).length === 0 ? true : undefined,
    );
  });
});

async function readdirSafe(d: string): Promise<string[]> {
  return readdir(d).catch(() => []);
}
