import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { resolveNodeRuntime } from '../../src/cli/options.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';
import { cli, SPAWN_TIMEOUT, spawnCli } from '../support/primitives/cli.js';

/** The node agent's host directories in a synthesized mirror file. */
async function agentHostDirs(file: string): Promise<string[]> {
  const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  const ds = docs.find((d) => d.kind === 'DaemonSet') as {
    spec: { template: { spec: { volumes: { hostPath?: { path: string } }[] } } };
  };
  return ds.spec.template.spec.volumes.flatMap((v) => (v.hostPath ? [v.hostPath.path] : []));
}

let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'cli-runtime-'));
  await mkdir(join(cwd, 'mirrors'));
  await writeFile(join(cwd, 'mirrors', 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
  await import('../../src/cli/synth.js');
}, SPAWN_TIMEOUT);
afterAll(() => rm(cwd, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

describe('--node-runtime', () => {
  it('synth --node-runtime cri-o --mirrors <dir> --out <dir> writes a node agent for CRI-O; check agrees', async () => {
    const paths = ['--mirrors', join(cwd, 'mirrors'), '--out', join(cwd, 'out-crio')];
    const r = await cli('synth', '--node-runtime', 'cri-o', ...paths);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await agentHostDirs(join(cwd, 'out-crio', 'mirrors', 'quay.yaml'))).toEqual([
      '/etc/containers/registries.conf.d',
    ]);
    expect((await cli('check', '-q', '--node-runtime', 'cri-o', ...paths)).code).toBe(0);
    // the same output is stale for another runtime
    expect((await cli('check', '-q', ...paths)).code).toBe(1);
    vi.stubEnv('NODE_RUNTIME', 'cri-o');
    expect((await cli('check', '-q', ...paths)).code).toBe(0);
  });

  it('exits 2 on an unknown runtime, naming the choices, and writes nothing', async () => {
    const out = join(cwd, 'out-bogus');
    const r = await cli('synth', '--node-runtime', 'bogus', '--mirrors', join(cwd, 'mirrors'), '--out', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("node runtime must be one of containerd, k3s, rke2, cri-o; got 'bogus'");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
    const controller = await cli('controller', '--node-runtime', 'docker');
    expect(controller.code).toBe(2);
    expect(controller.stderr).toContain("got 'docker'");
  });

  it(
    "takes nodeRuntime from the working directory's cdk8s.yaml, as `cdk8s synth` runs the binary",
    async () => {
      const dir = await mkdtemp(join(cwd, 'cdk8s-'));
      await mkdir(join(dir, 'mirrors'));
      await writeFile(join(dir, 'mirrors', 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
      await writeFile(join(dir, 'cdk8s.yaml'), 'app: npx mirror-synth synth\noutput: dist\nnodeRuntime: k3s\n');
      const r = await spawnCli(['synth'], dir, { NODE_RUNTIME: '' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(await agentHostDirs(join(dir, 'dist', 'mirrors', 'quay.yaml'))).toEqual([
        '/var/lib/rancher/k3s/agent/etc/containerd/certs.d',
      ]);
    },
    SPAWN_TIMEOUT,
  );
});

describe('resolveNodeRuntime', () => {
  it('defaults to containerd; NODE_RUNTIME sets it; the flag wins', () => {
    vi.stubEnv('NODE_RUNTIME', '');
    expect(resolveNodeRuntime()).toBe('containerd');
    vi.stubEnv('NODE_RUNTIME', 'k3s');
    expect(resolveNodeRuntime()).toBe('k3s');
    expect(resolveNodeRuntime('rke2')).toBe('rke2');
    vi.stubEnv('NODE_RUNTIME', 'crio');
    expect(() => resolveNodeRuntime()).toThrow("node runtime must be one of containerd, k3s, rke2, cri-o; got 'crio'");
  });
});
