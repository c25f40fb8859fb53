// The controller image as users run it: `npm run build:image` (umoci, no Docker engine) writes
// an OCI archive; a real containerd (Debian's 1.6, then 2.x) imports it and runs it with
// `ctr run` (runc), on the host network, with a read-only root filesystem, the image's own user
// and the test API server's kubeconfig mounted read-only. It must apply a RegistryMirror's
// children, report what the mirror waits for, and stop cleanly on SIGTERM. It runs the Node.js
// release the build script pins (not the tests' own node), holds no optional dependency
// (cdk8s-plus-27's `backport`, with @octokit/rest and axios), and every module of lib/ loads in
// it without them. Nothing runs the children's pods here; the same image reconciling a mirror to
// Ready as a Deployment on a real node, with the real kubelet, is
// test/e2e/real-node-controller.test.ts.
import { type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LEASE_NAME } from '../../src/api/names.js';
import { Containerd, containerdV2, debianContainerd } from '../support/components/containerd.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import {
  ensureControllerImage,
  type ImageConfig,
  imageConfig,
  imageLayerPaths,
  imageNodeVersion,
} from '../support/fixtures/controller-image.js';
import {
  type Clients,
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
} from '../support/kube/cluster.js';
import { installCrd } from '../support/kube/crd.js';
import { reservePort } from '../support/primitives/ports.js';
import { removeOnExit, spawnTracked } from '../support/primitives/processes.js';
import { waitFor } from '../support/primitives/wait.js';

const REF_BASE = 'mirror-synth.test/controller';
const CONTAINER = 'controller';

let dir: string;
let cp: ControlPlane;
let c: Clients;
let archive: string;
let config: ImageConfig;
let kubeDir: string;

/** ctr's output without its log lines (containerd 2.x's ctr warns about cgroup v1 on stderr). */
const outputOf = (text: string): string =>
  text
    .split('\n')
    .filter((l) => !l.startsWith('time='))
    .join('\n')
    .trim();

/** The container's init process (node), as containerd reports it. */
async function containerPid(ctrd: Containerd): Promise<number> {
  const out = await ctrd.ctr(['tasks', 'ls']);
  const line = out.split('\n').find((l) => l.startsWith(`${CONTAINER} `));
  if (!line) throw new Error(`no task ${CONTAINER} in:\n${out}`);
  return Number(line.trim().split(/\s+/)[1]);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'img-'));
  removeOnExit(dir);
  const [image, plane] = await Promise.all([ensureControllerImage(join(dir, 'build-image.log')), startControlPlane()]);
  cp = plane;
  c = clients(cp.kubeconfigPath);
  archive = image.archive;
  config = await imageConfig(archive);
  await installCrd(c.kc);
  // The kubeconfig, readable by the image's non-root user, in a directory mounted read-only.
  kubeDir = join(dir, 'kube');
  await mkdir(kubeDir, { mode: 0o755 });
  await copyFile(cp.kubeconfigPath, join(kubeDir, 'config'));
  await chmod(join(kubeDir, 'config'), 0o644);
}, 1_800_000);

afterAll(async () => {
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
});

it('the image records a numeric non-root user, the app directory and `node /app/bin/mirror-synth.js controller`', () => {
  expect(config.User).toMatch(/^[1-9][0-9]*:[1-9][0-9]*$/);
  expect(config.WorkingDir).toBe('/app');
  expect(config.Entrypoint).toEqual(['node', '/app/bin/mirror-synth.js']);
  expect(config.Cmd).toEqual(['controller']);
  expect(config.Env).toContain('NODE_ENV=production');
});

it('holds only the production dependencies the controller and the fill load: no optional `backport`, no axios, no @octokit', async () => {
  const paths = (await imageLayerPaths(archive)).flat().map((p) => p.replace(/^\/?/, '/'));
  const modules = paths.filter((p) => p.startsWith('/app/node_modules/'));
  // Not vacuous: the dependencies are there (and node, in its own layer).
  expect(modules).toContain('/app/node_modules/@kubernetes/client-node/package.json');
  expect(modules).toContain('/app/node_modules/cdk8s-plus-27/package.json');
  expect(paths).toContain('/usr/local/bin/node');
  const unwanted = modules.filter((p) => /\/node_modules\/(backport|axios|@octokit)(\/|$)/.test(p));
  expect(unwanted).toEqual([]);
});

describe.each([
  { runtime: 'containerd 1.6 (Debian)', short: 'v1', binaries: () => Promise.resolve(debianContainerd) },
  { runtime: 'containerd 2.x', short: 'v2', binaries: containerdV2 },
])('the controller image under $runtime (ctr run)', ({ short, binaries }) => {
  const namespace = `image-${short}`;
  const mirror = `quay-${short}`;
  let ctrd: Containerd;
  let metricsPort: number;
  let run: ChildProcess | undefined;
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  const output: string[] = [];

  beforeAll(async () => {
    ctrd = await Containerd.start(join(dir, `ctrd-${short}`), 'image', await binaries());
    // containerd 2.x imports through its transfer service, which unpacks only for the platforms
    // of its unpack_config (none without the CRI plugin): --local imports in ctr, as 1.6 does.
    const local = ctrd.binaries.configVersion === 4 ? ['--local'] : [];
    const imported = await ctrd.ctr(
      [
        'images',
        'import',
        ...local,
        '--base-name',
        REF_BASE,
        '--platform',
        'linux/amd64',
        '--snapshotter',
        'native',
        archive,
      ],
      {},
      300_000,
    );
    const ref = outputOf(await ctrd.ctr(['images', 'ls', '-q']))
      .split('\n')
      .find((l) => l.startsWith(`${REF_BASE}:`));
    if (!ref) throw new Error(`ctr images import gave no ${REF_BASE}:<tag>:\n${imported}`);

    await createMirrorNamespaces(c, namespace);
    metricsPort = await reservePort();

    // The image's entrypoint and default args as its config records them, plus a free metrics
    // port (the host network is shared): ctr replaces the whole command line when given one.
    const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? []), '--metrics-port', String(metricsPort)];
    run = spawnTracked(
      ctrd.binaries.ctr,
      [
        ...['--address', ctrd.address, '-n', ctrd.namespace, 'run', '--rm', '--snapshotter', 'native'],
        ...['--net-host', '--read-only', '--mount', `type=bind,src=${kubeDir},dst=/etc/kube,options=rbind:ro`],
        ...['--env', 'KUBECONFIG=/etc/kube/config', '--env', `NAMESPACE=${namespace}`],
        ...['--env', 'SECONDS_BETWEEN_STREAMS=1', ref, CONTAINER, ...args],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    for (const s of [run.stdout!, run.stderr!]) {
      s.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    }
    const child = run;
    // 'close', not 'exit': the test reads the output once the process is gone, and output can
    // still be in the pipe when 'exit' fires.
    exit = new Promise((ok) => child.once('close', (code, signal) => ok({ code, signal })));
  }, 600_000);

  afterAll(async () => {
    await deleteMirror(c, mirror);
    if (run && run.exitCode === null && run.signalCode === null) {
      await ctrd?.ctr(['tasks', 'kill', '-s', 'SIGKILL', CONTAINER]).catch(() => undefined);
      await exit;
    }
    await ctrd?.ctr(['containers', 'rm', CONTAINER]).catch(() => undefined);
    await ctrd?.stop();
  });

  it('serves /readyz once it leads', async () => {
    await waitFor(
      `the controller in the container to serve /readyz on ${metricsPort}`,
      async () => {
        if (run!.exitCode !== null) throw new Error(`ctr run exited ${run!.exitCode}:\n${output.join('\n')}`);
        const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
        return res?.status === 200;
      },
      180_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\ncontainer output:\n${output.slice(-30).join('\n')}`);
    });
  });

  it(`runs Node ${imageNodeVersion()} (the build script's, not the host's), and every module of lib/ loads in it`, async () => {
    const version = await ctrd.ctr(['tasks', 'exec', '--exec-id', 'version', CONTAINER, 'node', '--version']);
    expect(outputOf(version)).toBe(`v${imageNodeVersion()}`);
    // Every module the controller and the fill can load, imported in the image: a dependency the
    // image left out (an optional one) would fail here. render-worker.js is a worker's entry
    // point (it needs workerData); it imports dist.js, imported here.
    const script = `
      const { readdirSync } = require('node:fs');
      const modules = readdirSync('/app/lib', { recursive: true })
        .filter((f) => f.endsWith('.js') && !f.endsWith('render-worker.js'));
      (async () => {
        for (const f of modules) await import('/app/lib/' + f);
        console.log('imported ' + modules.length);
      })().catch((e) => { console.log('failed: ' + e.message); process.exitCode = 1; });`;
    const imported = await ctrd
      .ctr(['tasks', 'exec', '--exec-id', 'imports', CONTAINER, 'node', '-e', script])
      .catch((err: Error) => err.message);
    expect(outputOf(imported)).toMatch(/^imported [1-9][0-9]+$/);
  });

  it('runs as the image user, not root, on a read-only root filesystem', async () => {
    const pid = await containerPid(ctrd);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const [uid, gid] = config.User!.split(':');
    expect(/^Uid:\s+(.*)$/m.exec(status)?.[1].split(/\s+/)).toEqual([uid, uid, uid, uid]);
    expect(/^Gid:\s+(.*)$/m.exec(status)?.[1].split(/\s+/)).toEqual([gid, gid, gid, gid]);
    // A write into the world-writable /tmp fails for the filesystem, not for permissions.
    const write = await ctrd
      .ctr([
        ...['tasks', 'exec', '--exec-id', 'probe', CONTAINER],
        ...['node', '-e', "try { require('fs').writeFileSync('/tmp/x', '') } catch (e) { console.log(e.code) }"],
      ])
      .catch((err: Error) => err.message);
    expect(outputOf(write)).toBe('EROFS');
  });

  it("applies a RegistryMirror's children and reports what it waits for", async () => {
    await createMirror(c, mirror, { upstreamUrl: 'quay.io' });
    const m = await waitFor(
      `${mirror} to report Ready=False CacheNotReady`,
      async () => {
        const x = await getMirror(c, mirror);
        return condition(x, 'Ready')?.reason === 'CacheNotReady' ? x : undefined;
      },
      120_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\ncontainer output:\n${output.slice(-30).join('\n')}`);
    });
    expect(condition(m, 'Ready')).toMatchObject({ status: 'False' });
    expect(condition(m, 'Ready')!.message).toContain(`StatefulSet registry-mirror-${mirror}`);
    const sts = await c.apps.readNamespacedStatefulSet({ name: `registry-mirror-${mirror}`, namespace });
    expect(sts.metadata?.managedFields?.map((f) => f.manager)).toContain('mirror-synth');
  });

  it('exits 0 on SIGTERM, having released its Lease', async () => {
    await ctrd.ctr(['tasks', 'kill', '-s', 'SIGTERM', CONTAINER]);
    const result = await Promise.race([exit, new Promise<'timeout'>((ok) => setTimeout(() => ok('timeout'), 30_000))]);
    expect(result, output.slice(-20).join('\n')).toEqual({ code: 0, signal: null });
    expect(output.join('\n')).toContain('signal received');
    const lease = await c.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_NAME, namespace });
    expect(lease.spec?.holderIdentity).toBeUndefined();
  });
});
