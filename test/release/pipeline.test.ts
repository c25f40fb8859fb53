// The release job in .gitlab-ci.yml: it runs on version tags only, checks the tag against
// package.json's version before anything else, and hands the rest to scripts/release.sh, the
// script test/e2e/release.test.ts runs against a real registry. And that check itself.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { repoRoot } from '../support/primitives/repo-root.js';

const run = promisify(execFile);
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const release = (...args: string[]) =>
  run('bash', [join(repoRoot, 'scripts/release.sh'), ...args], { cwd: repoRoot }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );

interface Job {
  stage?: string;
  image?: string;
  rules?: { if?: string }[];
  id_tokens?: Record<string, { aud?: string }>;
  before_script?: string[];
  script?: string[];
}

describe('.gitlab-ci.yml', () => {
  const ci = parse(readFileSync(join(repoRoot, '.gitlab-ci.yml'), 'utf8'), { uniqueKeys: true }) as Record<
    string,
    unknown
  > & { stages: string[]; release: Job };

  it('is well-formed YAML whose jobs name declared stages', () => {
    const jobs = Object.entries(ci).filter(([name, v]) => !['stages', 'default', 'variables'].includes(name) && v);
    expect(jobs.length).toBeGreaterThan(3);
    for (const [name, job] of jobs) {
      const stage = (job as Job).stage ?? 'test';
      expect(ci.stages, `job ${name}`).toContain(stage);
      expect((job as Job).script, `job ${name} has a script`).toBeInstanceOf(Array);
    }
  });

  it('releases on v* tags only, from the last stage', () => {
    expect(ci.stages.at(-1)).toBe('release');
    expect(ci.release.stage).toBe('release');
    expect(ci.release.rules).toEqual([{ if: '$CI_COMMIT_TAG =~ /^v/' }]);
    for (const [name, job] of Object.entries(ci)) {
      if (name !== 'release' && (job as Job | undefined)?.script) {
        expect((job as Job).script!.join('\n'), `job ${name}`).not.toContain('scripts/release.sh');
      }
    }
  });

  it('checks the tag first, then runs scripts/release.sh all with the same tag', () => {
    const script = ci.release.script!;
    expect(script[0]).toBe('scripts/release.sh version "$CI_COMMIT_TAG"');
    const all = script.filter((line) => line.startsWith('scripts/release.sh all '));
    expect(all).toEqual([
      'scripts/release.sh all "$CI_COMMIT_TAG" "$CI_REGISTRY_IMAGE/controller" "$CI_REGISTRY_IMAGE/charts"',
    ]);
    expect(script.indexOf(all[0])).toBe(script.length - 1);
    // No secret on a command line or in a file: the npm token stays a variable npm expands.
    expect(script.join('\n')).not.toMatch(/\$\{?(NPM_TOKEN|CI_REGISTRY_PASSWORD|COSIGN_PASSWORD)\}?[^'"]*\s--/);
    expect(script.some((l) => l.includes("'//registry.npmjs.org/:_authToken=${NPM_TOKEN}"))).toBe(true);
  });

  it('gives the job an OIDC token for keyless signing and npm provenance', () => {
    expect(ci.release.id_tokens).toEqual({ SIGSTORE_ID_TOKEN: { aud: 'sigstore' } });
    expect(ci.release.before_script!.join('\n')).toMatch(/tools\/build\.sh cosign/);
  });
});

describe('scripts/release.sh version', { timeout: 90_000 }, () => {
  it(`prints package.json's version (${version}), and accepts the tag v${version}`, async () => {
    expect(await release('version')).toMatchObject({ code: 0, stdout: `${version}\n` });
    expect(await release('version', `v${version}`)).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('refuses any other tag, naming it and the version, before doing anything', async () => {
    const other = await release('version', 'v99.0.0');
    expect(other.code).toBe(1);
    expect(other.stdout).toBe('');
    expect(other.stderr).toContain(`release: the tag 'v99.0.0' is not v${version} (package.json's version)`);
    const bare = await release('version', version);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain(`the tag '${version}' has no leading v`);
    // `all` checks first: nothing is built or pushed (the registry named does not exist).
    const all = await release('all', 'v99.0.0', '127.0.0.1:9/nowhere/controller', '127.0.0.1:9/nowhere/charts');
    expect(all.code).toBe(1);
    expect(all.stderr).toMatch(/^release: the tag 'v99.0.0' is not v/);
  });

  it('refuses a repository with a tag, and an image not named by digest', async () => {
    expect((await release('image', 'example.com/mirror-synth:1.0')).stderr).toContain(
      "REPO must be a repository, host[:port]/path without a tag or digest; got 'example.com/mirror-synth:1.0'",
    );
    expect((await release('sign', 'example.com/mirror-synth:1.0')).stderr).toContain(
      "REF must name the image by digest (...@sha256:<64 hex digits>); got 'example.com/mirror-synth:1.0'",
    );
  });
});
