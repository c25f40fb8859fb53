import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { readTree } from '../../src/synth/output.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';
import { cli, SPAWN_TIMEOUT, spawnCli } from '../support/primitives/cli.js';

const root = new URL('../../', import.meta.url).pathname;

let cwd: string;
beforeAll(async () => {
  if (!existsSync(join(root, 'lib', 'cli', 'main.js')))
    throw new Error('lib/ is not built: run `npm run build` (npm test does)');
  cwd = await mkdtemp(join(tmpdir(), 'cli-'));
  await cp(join(root, 'mirrors'), join(cwd, 'mirrors'), { recursive: true });
  // The commands import cdk8s lazily; load it here, once, rather than inside the first test.
  await import('../../src/cli/synth.js');
}, SPAWN_TIMEOUT);
afterAll(() => rm(cwd, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

describe('mirror-synth binary (a real process)', () => {
  it(
    'with no arguments synthesizes mirrors/ into dist/, which check then accepts',
    async () => {
      const r = await spawnCli([], cwd);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Synthesized 3 mirrors/);
      expect(await readFile(join(cwd, 'dist', 'mirrors', 'quay.yaml'), 'utf8')).toContain('name: registry-mirror-quay');
      expect((await spawnCli(['check'], cwd)).code).toBe(0);
    },
    SPAWN_TIMEOUT,
  );

  it(
    'renders large sets on worker threads (compiled lib/ only) to the same bytes as on one thread',
    async () => {
      const many = join(cwd, 'many');
      await mkdir(join(many, 'mirrors'), { recursive: true });
      for (let i = 0; i < 250; i++) {
        await writeFile(join(many, 'mirrors', `m${i}.yaml`), mirrorYaml(`m${i}`, `{upstreamUrl: r${i}.example.com}`));
      }
      const [one, three] = await Promise.all([
        spawnCli(['synth', '-q', '--out', 'one'], many, { MIRROR_SYNTH_WORKERS: '1' }),
        spawnCli(['synth', '-q', '--out', 'three'], many, { MIRROR_SYNTH_WORKERS: '3' }),
      ]);
      expect([one.code, one.stderr, three.code, three.stderr]).toEqual([0, '', 0, '']);
      const files = await readTree(join(many, 'one'));
      expect(files.size).toBe(257); // crd, namespace, kustomization, 250 mirrors, monitoring/ (4 files)
      expect(await readTree(join(many, 'three'))).toEqual(files);
    },
    SPAWN_TIMEOUT,
  );
});

describe('mirror-synth command line', () => {
  it("writes what the repository's dist/ holds (what CI checks)", async () => {
    const out = join(cwd, 'out2');
    expect((await cli('synth', '-q', '--mirrors', join(cwd, 'mirrors'), '--out', out)).code).toBe(0);
    expect(await readFile(join(out, 'mirrors', 'internal.yaml'), 'utf8')).toBe(
      await readFile(join(root, 'dist', 'mirrors', 'internal.yaml'), 'utf8'),
    );
  });

  it("runs as cdk8s.yaml's app: `cdk8s synth` passes CDK8S_OUTDIR and gets the same files", async () => {
    const outdir = join(cwd, 'cdk8s-out');
    vi.stubEnv('CDK8S_OUTDIR', outdir);
    expect((await cli('synth', '-q', '--mirrors', join(cwd, 'mirrors'))).code).toBe(0);
    for (const f of ['crd.yaml', 'kustomization.yaml', 'mirrors/quay.yaml']) {
      expect(await readFile(join(outdir, f), 'utf8')).toBe(await readFile(join(root, 'dist', f), 'utf8'));
    }
  });

  it('exits 1 with one clear line per problem and no stack trace on a bad spec, writing nothing', async () => {
    const dir = join(cwd, 'bad');
    await mkdir(join(dir, 'mirrors'), { recursive: true });
    await writeFile(join(dir, 'mirrors', 'bad.yaml'), mirrorYaml('bad', '{upstreamUrl: "https://bad.io"}'));
    const r = await cli('synth', '--mirrors', join(dir, 'mirrors'), '--out', join(dir, 'out'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `error: invalid mirror spec; nothing was written.\n${join(dir, 'mirrors', 'bad.yaml')}: mirror 'bad': spec.upstreamUrl must be a registry host[:port] without a scheme, got 'https://bad.io'\n`,
    );
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('check exits 1 naming the stale file', async () => {
    const out = join(cwd, 'stale');
    const mirrors = join(cwd, 'mirrors');
    expect((await cli('synth', '-q', '--mirrors', mirrors, '--out', out)).code).toBe(0);
    await writeFile(join(out, 'mirrors', 'quay.yaml'), '# edited by hand\n');
    const r = await cli('check', '--mirrors', mirrors, '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`stale:    ${out}/mirrors/quay.yaml`);
  });

  it('exits 2 on a usage error', async () => {
    const r = await cli('synth', '--no-such-flag');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
  });

  it('names an unknown command instead of passing it to synth', async () => {
    const r = await cli('sytnh');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'sytnh'");
  });

  it('has --help for every command', async () => {
    for (const cmd of ['synth', 'validate', 'check', 'crd', 'controller', 'controller-manifests']) {
      const r = await cli(cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toContain(`Usage: mirror-synth ${cmd}`);
    }
  });

  it('crd prints a CustomResourceDefinition', async () => {
    const r = await cli('crd');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kind: CustomResourceDefinition');
    expect(r.stdout).toContain('name: registrymirrors.k8s.osp.tech');
  });

  it('controller-manifests prints the controller objects with the image given', async () => {
    const r = await cli('controller-manifests', '--image', 'example.com/mirror-synth:1.2.3');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kind: Deployment');
    expect(r.stdout).toContain('image: example.com/mirror-synth:1.2.3');
  });
});
