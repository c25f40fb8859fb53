import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readTree } from '../../src/synth/output.js';
import { mirrorYaml } from '../support/fixtures.js';

// The real binary, as `npx mirror-synth` runs it (compiled lib/, built by `npm test`).
const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin', 'mirror-synth.js');
const run = async (args: string[], cwd: string, env: Record<string, string> = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)('node', [bin, ...args], {
      cwd,
      env: { ...process.env, NAMESPACE: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

let cwd: string;
beforeAll(async () => {
  if (!existsSync(join(root, 'lib', 'main.js')))
    throw new Error('lib/ is not built: run `npm run build` (npm test does)');
  cwd = await mkdtemp(join(tmpdir(), 'cli-'));
  await cp(join(root, 'mirrors'), join(cwd, 'mirrors'), { recursive: true });
});
afterAll(() => rm(cwd, { recursive: true, force: true }));

describe('mirror-synth binary', () => {
  it('with no arguments synthesizes mirrors/ into dist/', async () => {
    const r = await run([], cwd);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Synthesized 3 mirrors/);
    expect(await readFile(join(cwd, 'dist', 'mirrors', 'quay.yaml'), 'utf8')).toContain('name: registry-mirror-quay');
    expect((await run(['check'], cwd)).code).toBe(0);
  });

  it('writes what the library writes for the repository (dist/ is what CI checks)', async () => {
    await run(['synth', '--out', 'out2'], cwd);
    expect(await readFile(join(cwd, 'out2', 'mirrors', 'internal.yaml'), 'utf8')).toBe(
      await readFile(join(root, 'dist', 'mirrors', 'internal.yaml'), 'utf8'),
    );
  });

  it("runs as cdk8s.yaml's app: `cdk8s synth` passes CDK8S_OUTDIR and gets the same files", async () => {
    const outdir = join(cwd, 'cdk8s-out');
    const r = await run(['synth'], cwd, { CDK8S_OUTDIR: outdir });
    expect(r.code).toBe(0);
    for (const f of ['crd.yaml', 'kustomization.yaml', 'mirrors/quay.yaml']) {
      expect(await readFile(join(outdir, f), 'utf8')).toBe(await readFile(join(root, 'dist', f), 'utf8'));
    }
  });

  it('exits 1 with one clear line per problem and no stack trace on a bad spec', async () => {
    await writeFile(join(cwd, 'mirrors', 'bad.yaml'), mirrorYaml('bad', '{upstreamUrl: "https://bad.io"}'));
    const r = await run(['synth', '--out', 'out3'], cwd);
    await rm(join(cwd, 'mirrors', 'bad.yaml'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: invalid mirror spec; nothing was written.\nmirrors/bad.yaml: mirror 'bad': spec.upstreamUrl must be a registry host[:port] without a scheme, got 'https://bad.io'\n",
    );
    expect(existsSync(join(cwd, 'out3'))).toBe(false);
  });

  it('check exits 1 when dist/ is stale', async () => {
    await run([], cwd);
    await writeFile(join(cwd, 'dist', 'mirrors', 'quay.yaml'), '# edited by hand\n');
    const r = await run(['check'], cwd);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stale:    dist/mirrors/quay.yaml');
  });

  it('exits 2 on a usage error', async () => {
    const r = await run(['synth', '--no-such-flag'], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
  });

  it('renders large sets on worker threads to the same bytes as on one thread', async () => {
    const many = join(cwd, 'many');
    await mkdir(join(many, 'mirrors'), { recursive: true });
    for (let i = 0; i < 250; i++) {
      await writeFile(join(many, 'mirrors', `m${i}.yaml`), mirrorYaml(`m${i}`, `{upstreamUrl: r${i}.example.com}`));
    }
    expect((await run(['synth', '-q', '--out', 'one'], many, { MIRROR_SYNTH_WORKERS: '1' })).code).toBe(0);
    expect((await run(['synth', '-q', '--out', 'three'], many, { MIRROR_SYNTH_WORKERS: '3' })).code).toBe(0);
    const one = await readTree(join(many, 'one'));
    expect(one.size).toBe(257); // crd, namespace, kustomization, 250 mirrors, monitoring/ (4 files)
    expect(await readTree(join(many, 'three'))).toEqual(one);
  });

  it('names an unknown command instead of passing it to synth', async () => {
    const r = await run(['sytnh'], cwd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'sytnh'");
  });

  it('has --help for every command', async () => {
    for (const cmd of ['synth', 'validate', 'check', 'crd', 'controller', 'controller-manifests']) {
      const r = await run([cmd, '--help'], cwd);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toContain(`Usage: mirror-synth ${cmd}`);
    }
  });

  it('crd prints a CustomResourceDefinition', async () => {
    const r = await run(['crd'], cwd);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kind: CustomResourceDefinition');
    expect(r.stdout).toContain('name: registrymirrors.k8s.osp.tech');
  });
});
