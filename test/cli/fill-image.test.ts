// The streaming fill's image (`spec.fill: streaming`) has no default: mirror-synth publishes no
// image, so synth, validate and check refuse such a mirror, naming its file, name and field, until
// the platform names one (--fill-image, FILL_IMAGE, cdk8s.yaml `fillImage`). spec.fill: whole (the
// default) needs none and its output does not depend on it.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { resolveFillImage } from '../../src/cli/options.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';
import { cli, SPAWN_TIMEOUT, spawnCli } from '../support/primitives/cli.js';

const IMAGE = 'registry.example.com/platform/mirror-synth:0.1.0';

/** The fill (or another) container's image in a synthesized mirror file, or undefined when it has none. */
async function fillImage(file: string, container = 'fill'): Promise<string | undefined> {
  const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  const sts = docs.find((d) => d.kind === 'StatefulSet') as {
    spec: { template: { spec: { containers: { name: string; image: string }[] } } };
  };
  return sts.spec.template.spec.containers.find((c) => c.name === container)?.image;
}

let cwd: string;
let mirrors: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'cli-fill-image-'));
  mirrors = join(cwd, 'mirrors');
  await mkdir(mirrors);
  await writeFile(join(mirrors, 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
  await writeFile(
    join(mirrors, 'big.yaml'),
    mirrorYaml('big', '{upstreamUrl: registry.example.org, fill: streaming, imageRegistry: harbor.example.com/hub}'),
  );
  await import('../../src/cli/synth.js');
}, SPAWN_TIMEOUT);
afterAll(() => rm(cwd, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

describe('the fill image', () => {
  it('synth, validate and check refuse spec.fill: streaming without one, naming file, mirror and field, and write nothing', async () => {
    vi.stubEnv('FILL_IMAGE', '');
    const out = join(cwd, 'out-none');
    for (const args of [
      ['synth', '--mirrors', mirrors, '--out', out],
      ['validate', '--mirrors', mirrors],
      ['check', '--mirrors', mirrors, '--out', out],
    ]) {
      const r = await cli(...args);
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr, args[0]).toContain(
        `${join(mirrors, 'big.yaml')}: mirror 'big': spec.fill is streaming, which runs \`mirror-synth fill\` from the mirror-synth image, and no image is set for it`,
      );
      expect(r.stderr).toContain('--fill-image, FILL_IMAGE or fillImage in cdk8s.yaml');
      expect(r.stderr).not.toContain('ghcr.io');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('--fill-image (or FILL_IMAGE) names it: the fill runs it as given, whatever spec.imageRegistry; whole mirrors run it as their keeper only', async () => {
    const withFlag = join(cwd, 'out-flag');
    const r = await cli('synth', '--fill-image', IMAGE, '--mirrors', mirrors, '--out', withFlag);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await fillImage(join(withFlag, 'mirrors', 'big.yaml'))).toBe(IMAGE);
    expect(await fillImage(join(withFlag, 'mirrors', 'quay.yaml'))).toBeUndefined();
    // the size bound's keeper runs the same image in every mirror
    expect(await fillImage(join(withFlag, 'mirrors', 'quay.yaml'), 'keeper')).toBe(IMAGE);
    expect((await cli('check', '-q', '--fill-image', IMAGE, '--mirrors', mirrors, '--out', withFlag)).code).toBe(0);
    expect((await cli('validate', '-q', '--fill-image', IMAGE, '--mirrors', mirrors)).code).toBe(0);
    // another image is another output
    expect((await cli('check', '-q', '--fill-image', `${IMAGE}-2`, '--mirrors', mirrors, '--out', withFlag)).code).toBe(
      1,
    );
    vi.stubEnv('FILL_IMAGE', IMAGE);
    expect((await cli('check', '-q', '--mirrors', mirrors, '--out', withFlag)).code).toBe(0);

    // whole mirrors without an image: no keeper, the TTL-only store they always had
    const whole = join(cwd, 'whole');
    await mkdir(whole);
    await writeFile(join(whole, 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
    vi.stubEnv('FILL_IMAGE', '');
    expect((await cli('synth', '-q', '--mirrors', whole, '--out', join(cwd, 'whole-none'))).code).toBe(0);
    expect(await fillImage(join(cwd, 'whole-none', 'mirrors', 'quay.yaml'), 'keeper')).toBeUndefined();
  });

  it(
    "takes fillImage from the working directory's cdk8s.yaml, as `cdk8s synth` runs the binary",
    async () => {
      const dir = await mkdtemp(join(cwd, 'cdk8s-'));
      await mkdir(join(dir, 'mirrors'));
      await writeFile(join(dir, 'mirrors', 'big.yaml'), mirrorYaml('big', '{upstreamUrl: quay.io, fill: streaming}'));
      await writeFile(join(dir, 'cdk8s.yaml'), `app: npx mirror-synth synth\noutput: dist\nfillImage: ${IMAGE}\n`);
      const r = await spawnCli(['synth'], dir, { FILL_IMAGE: '' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(await fillImage(join(dir, 'dist', 'mirrors', 'big.yaml'))).toBe(IMAGE);
    },
    SPAWN_TIMEOUT,
  );

  it('exits 2 on a fill image that is not an image reference, or names no tag or digest', async () => {
    for (const [image, message] of [
      ['not an image', 'the fill image must be an image reference'],
      ['Registry.example.com/Mirror-Synth:0.1.0', 'the fill image must be an image reference'],
      ['registry.example.com/mirror-synth', 'the fill image must name a tag or a digest'],
      ['registry.example.com:5000/mirror-synth', 'the fill image must name a tag or a digest'],
    ]) {
      const r = await cli('validate', '--fill-image', image, '--mirrors', mirrors);
      expect(r.code, image).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain(`got '${image}' (--fill-image, FILL_IMAGE or fillImage in cdk8s.yaml)`);
    }
  });
});

describe('resolveFillImage', () => {
  it('has no default; FILL_IMAGE sets it; the flag wins; a tag, a digest or both', () => {
    vi.stubEnv('FILL_IMAGE', '');
    expect(resolveFillImage()).toBeUndefined();
    vi.stubEnv('FILL_IMAGE', IMAGE);
    expect(resolveFillImage()).toBe(IMAGE);
    expect(resolveFillImage('localhost:5000/ms:dev')).toBe('localhost:5000/ms:dev');
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(resolveFillImage(`registry.example.com/mirror-synth@${digest}`)).toBe(
      `registry.example.com/mirror-synth@${digest}`,
    );
    expect(resolveFillImage(`${IMAGE}@${digest}`)).toBe(`${IMAGE}@${digest}`);
  });
});
