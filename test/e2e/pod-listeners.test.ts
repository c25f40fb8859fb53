// What a cache pod listens on, seen from the pod's address. The synthesized front (Debian's nginx
// with the ConfigMap's nginx.conf) and Distribution (its config.yml and env) run with their ports
// exactly as synthesized, inside a network namespace the test makes, as a pod has its own: loopback
// and one address, no route out. Only paths (storage, scratch, the credential helper) are changed.
import { type ChildProcess, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { synthesizeMirror } from '../../src/index.js';
import { letThrough } from '../support/components/front.js';
import { mirrorEnv } from '../support/components/registry.js';
import { cacheContainer, cachePodUser, configMapData, type ManifestObject } from '../support/primitives/manifest.js';
import { spawnTracked } from '../support/primitives/processes.js';
import { waitFor } from '../support/primitives/wait.js';

const execFileAsync = promisify(execFile);
const NAME = 'listeners';
/** The pod's address, inside the test's network namespace only. */
const POD_IP = '10.244.7.10';

function synth(): ManifestObject[] {
  return synthesizeMirror(
    { name: NAME, spec: { upstreamUrl: 'registry.example.test' }, source: 'test/e2e/pod-listeners.test.ts' },
    { namespace: 'test' },
  );
}

describe("a cache pod's listeners, from the pod's address", () => {
  const netns = `ms-pod-${randomBytes(4).toString('hex')}`;
  let dir: string;
  const children: ChildProcess[] = [];
  /** What the pod's processes wrote to stderr, for a failure's message. */
  const errors: string[] = [];

  /** `curl` in the pod's network namespace: the HTTP status, or 'refused' when nothing listens. */
  async function get(url: string, method = 'GET'): Promise<{ status: number | 'refused'; body: string }> {
    const body = join(dir, 'body');
    try {
      const { stdout } = await execFileAsync('ip', [
        'netns',
        'exec',
        netns,
        'curl',
        '-s',
        '-X',
        method,
        '-o',
        body,
        '-w',
        '%{http_code}',
        '--max-time',
        '10',
        url,
      ]);
      return { status: Number(stdout), body: await readFile(body, 'utf8') };
    } catch (err) {
      // curl's exit status 7: could not connect
      if ((err as { code?: number }).code === 7) return { status: 'refused', body: '' };
      throw err;
    }
  }

  /** Run `argv` in the pod's network namespace, as `user` when given. */
  function inPod(argv: string[], env: NodeJS.ProcessEnv, user?: { uid: number; gid: number }): ChildProcess {
    const child = spawnTracked(
      'nsenter',
      [`--net=/run/netns/${netns}`, ...(user ? ['-S', String(user.uid), '-G', String(user.gid)] : []), ...argv],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.on('data', (d: Buffer) => errors.push(d.toString()));
    children.push(child);
    return child;
  }

  beforeAll(async () => {
    const objects = synth();
    dir = await mkdtemp(join(tmpdir(), 'ms-listeners-'));
    await execFileAsync('ip', ['netns', 'add', netns]);
    await execFileAsync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    // the pod's interface: a veth pair with both ends in the namespace (nothing leaves it)
    await execFileAsync('ip', ['-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
    await execFileAsync('ip', ['-n', netns, 'addr', 'add', `${POD_IP}/24`, 'dev', 'eth0']);
    for (const link of ['eth0', 'eth1']) await execFileAsync('ip', ['-n', netns, 'link', 'set', link, 'up']);

    const user = cachePodUser(objects, NAME);
    const volume = join(dir, 'volume');
    const scratch = join(dir, 'tmp');
    for (const d of [dir, volume, scratch]) {
      await mkdir(d, { recursive: true });
      await chown(d, user.uid, user.gid);
    }
    await letThrough([dir, volume, scratch]);

    // Distribution: config.yml and the registry container's env; storage in the test's volume.
    const config = join(dir, 'config.yml');
    await writeFile(config, configMapData(objects, `registry-mirror-${NAME}-config`, 'config.yml'));
    const env = await mirrorEnv({ name: NAME, objects, dir });
    const registry = cacheContainer(objects, NAME, 'registry');
    expect(registry.command?.slice(0, 2)).toEqual(['registry', 'serve']);
    // as root, as the test support runs it (the cached binary is under /root)
    inPod([inject('registryBinary'), 'serve', config], {
      PATH: process.env.PATH,
      ...env,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: volume,
    });

    // The front: nginx.conf with its paths in the test's dirs, its listeners untouched.
    const conf = configMapData(objects, `registry-mirror-${NAME}-config`, 'nginx.conf')
      .replaceAll(' /tmp/', ` ${scratch}/`)
      .replaceAll(' /var/lib/registry/', ` ${volume}/`);
    const confPath = join(dir, 'nginx.conf');
    await writeFile(confPath, conf);
    const command = cacheContainer(objects, NAME, 'front').command!.map((a) =>
      a.endsWith('/nginx.conf') ? confPath : a,
    );
    inPod(command, { PATH: process.env.PATH }, user);

    await waitFor('the front and Distribution to answer on the pod address', async () => {
      const r = await get(`http://${POD_IP}:5000/v2/`);
      if (r.status !== 200) throw new Error(`${r.status}\n${errors.join('')}`);
      return true;
    });
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await execFileAsync('ip', ['netns', 'del', netns]).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves Distribution's Prometheus metrics on the metrics port (5001)", async () => {
    const r = await waitFor('metrics on the metrics port', async () => {
      const res = await get(`http://${POD_IP}:5001/metrics`);
      return res.status === 200 && /^registry_/m.test(res.body) ? res : undefined;
    });
    // Distribution's own series (its HTTP handler counted the /v2/ above), not nginx's
    expect(r.body).toMatch(/^registry_http_requests_total\{[^}]*\} \d+/m);
  });

  it("keeps Distribution's debug server (pprof, expvar, health) off the pod's address", async () => {
    for (const path of ['/debug/pprof/', '/debug/pprof/heap', '/debug/vars', '/debug/health', '/']) {
      expect({ path, status: (await get(`http://${POD_IP}:5001${path}`)).status }).toEqual({ path, status: 404 });
    }
    // only GET (and HEAD) of /metrics is passed on
    expect((await get(`http://${POD_IP}:5001/metrics`, 'POST')).status).toBe(403);
    // the debug server itself listens on the pod's loopback only
    expect((await get(`http://${POD_IP}:5004/debug/pprof/`)).status).toBe('refused');
    expect((await get('http://127.0.0.1:5004/debug/pprof/')).status).toBe(200);
  });

  it("the registry container's probe reaches Distribution's health inside the pod", async () => {
    const probe = cacheContainer(synth(), NAME, 'registry') as { livenessProbe?: { exec?: { command: string[] } } };
    const argv = probe.livenessProbe?.exec?.command;
    expect(argv?.[0]).toBe('wget');
    await execFileAsync('ip', ['netns', 'exec', netns, ...argv!]);
  });
});
