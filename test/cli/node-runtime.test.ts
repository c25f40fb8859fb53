import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { check } from '../../src/cli/check.js';
import { resolveNodeRuntime } from '../../src/cli/options.js';
import { mirrorYaml } from '../support/fixtures.js';

// --node-runtime through the real binary: the exit code and cdk8s.yaml in the working
// directory are what is tested, so these spawn it (compiled lib/, built by `npm test`).
const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin', 'mirror-synth.js');
const run = async (args: string[], cwd: string, env: Record<string, string> = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)('node', [bin, ...args], {
      cwd,
      env: { ...process.env, NAMESPACE: '', NODE_RUNTIME: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

/** The node agent's host directory in a synthesized mirror file. */
async function agentHostDir(file: string): Promise<string> {
  const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  const volumes = ds!.spec.template.spec.volumes as { hostPath?: { path: string } }[];
  return volumes
    .filter((v) => v.hostPath)
    .map((v) => v.hostPath!.path)
    .join(',');
}

let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'cli-runtime-'));
  await mkdir(join(cwd, 'mirrors'));
  await writeFile(join(cwd, 'mirrors', 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
});
afterAll(() => rm(cwd, { recursive: true, force: true }));

describe('--node-runtime', { timeout: 30_000 }, () => {
  it('synth --node-runtime cri-o writes a node agent for CRI-O', async () => {
    const r = await run(['synth', '--node-runtime', 'cri-o', '--mirrors', 'mirrors', '--out', 'out-crio'], cwd);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await agentHostDir(join(cwd, 'out-crio', 'mirrors', 'quay.yaml'))).toBe('/etc/containers/registries.conf.d');
    const out = { mirrors: join(cwd, 'mirrors'), out: join(cwd, 'out-crio'), quiet: true };
    await expect(check({ ...out, nodeRuntime: 'cri-o' })).resolves.toBeUndefined();
    // the same output is stale for another runtime
    await expect(check(out)).rejects.toThrow(/is stale/);
  });

  it('takes nodeRuntime from cdk8s.yaml, as `cdk8s synth` runs it', async () => {
    const dir = await mkdtemp(join(cwd, 'cdk8s-'));
    await mkdir(join(dir, 'mirrors'));
    await writeFile(join(dir, 'mirrors', 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
    await writeFile(join(dir, 'cdk8s.yaml'), 'app: node bin/mirror-synth.js synth\noutput: dist\nnodeRuntime: cri-o\n');
    const r = await run(['synth'], dir);
    expect(r.code).toBe(0);
    expect(await agentHostDir(join(dir, 'dist', 'mirrors', 'quay.yaml'))).toBe('/etc/containers/registries.conf.d');
  });

  it('exits 2 on an unknown runtime, naming the choices, and writes nothing', async () => {
    const r = await run(['synth', '--node-runtime', 'bogus', '--mirrors', 'mirrors', '--out', 'out-bogus'], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("node runtime must be one of containerd, k3s, rke2, cri-o; got 'bogus'");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(cwd, 'out-bogus'))).toBe(false);
    const controller = await run(['controller', '--node-runtime', 'docker'], cwd);
    expect(controller.code).toBe(2);
    expect(controller.stderr).toContain("got 'docker'");
  });
});

describe('resolveNodeRuntime', () => {
  const saved = process.env.NODE_RUNTIME;
  afterEach(() => {
    if (saved === undefined) delete process.env.NODE_RUNTIME;
    else process.env.NODE_RUNTIME = saved;
  });

  it('defaults to containerd; NODE_RUNTIME sets it; the flag wins', () => {
    delete process.env.NODE_RUNTIME;
    expect(resolveNodeRuntime()).toBe('containerd');
    process.env.NODE_RUNTIME = 'k3s';
    expect(resolveNodeRuntime()).toBe('k3s');
    expect(resolveNodeRuntime('rke2')).toBe('rke2');
    process.env.NODE_RUNTIME = 'crio';
    expect(() => resolveNodeRuntime()).toThrow("node runtime must be one of containerd, k3s, rke2, cri-o; got 'crio'");
  });
});
