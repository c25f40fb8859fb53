// The allowlist of what RegistryMirrors may name: synth, validate and check refuse what it does not
// allow with the usual message, each list from its flag, else its variable, else cdk8s.yaml.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { ALLOWLIST_ENV } from '../../src/api/names.js';
import { hostAllowed, registryAllowed } from '../../src/api/policy.js';
import { resolvePolicy } from '../../src/cli/options.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';
import { cli, SPAWN_TIMEOUT, spawnCli } from '../support/primitives/cli.js';

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;
let cwd: string;
let mirrors: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'cli-allowlist-'));
  mirrors = join(cwd, 'mirrors');
  await mkdir(mirrors);
  await writeFile(
    join(mirrors, 'k8s.yaml'),
    mirrorYaml(
      'k8s',
      `{upstreamUrl: evil.example.net, masqueradeUrl: registry.k8s.io, imageRegistry: evil.example.net/x, imageDigests: {registry: '3.1.2@${DIGEST_B}'}, imagePullSecrets: [{name: ok-pull}, {name: team-pull}], priorityClassName: system-node-critical}`,
    ),
  );
  await writeFile(join(mirrors, 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.io}'));
  await import('../../src/cli/synth.js');
}, SPAWN_TIMEOUT);
afterAll(() => rm(cwd, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

const clear = () => {
  for (const name of Object.values(ALLOWLIST_ENV)) vi.stubEnv(name, undefined);
};

describe('the allowlist', () => {
  it('allows anything when no list is set (as before)', async () => {
    clear();
    const out = join(cwd, 'out-any');
    const r = await cli('synth', '-q', '--mirrors', mirrors, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('refuses every field a list does not allow, naming file, mirror and field, and writes nothing', async () => {
    clear();
    const out = join(cwd, 'out-refused');
    const r = await cli(
      'synth',
      '--mirrors',
      mirrors,
      '--out',
      out,
      '--allowed-upstreams',
      'quay.io,*.example.com',
      '--allowed-masquerades',
      '',
      '--allowed-image-registries',
      'harbor.example.com',
      '--allowed-image-digests',
      DIGEST_A,
      '--allowed-image-pull-secrets',
      'ok-pull',
      '--allowed-priority-classes',
      'mirror-cache',
    );
    expect(r.code).toBe(1);
    const file = join(mirrors, 'k8s.yaml');
    expect(r.stderr).toBe(
      [
        'error: invalid mirror specs; nothing was written.',
        `${file}: mirror 'k8s': spec.upstreamUrl must be a host the allowlist allowedUpstreams admits (quay.io,*.example.com), got 'evil.example.net'`,
        `${file}: mirror 'k8s': spec.masqueradeUrl must be a host the allowlist allowedMasquerades admits (none), got 'registry.k8s.io'`,
        `${file}: mirror 'k8s': spec.imageRegistry must be a registry the allowlist allowedImageRegistries admits (harbor.example.com), got 'evil.example.net/x'`,
        `${file}: mirror 'k8s': spec.imageDigests.registry must be a digest the allowlist allowedImageDigests admits (${DIGEST_A}), got '${DIGEST_B}'`,
        `${file}: mirror 'k8s': spec.imagePullSecrets must be a name the allowlist allowedImagePullSecrets admits (ok-pull), got 'team-pull'`,
        `${file}: mirror 'k8s': spec.priorityClassName must be a name the allowlist allowedPriorityClasses admits (mirror-cache), got 'system-node-critical'`,
        '',
      ].join('\n'),
    );
    expect(existsSync(out)).toBe(false);
    // validate and check say the same
    expect((await cli('validate', '--mirrors', mirrors, '--allowed-masquerades', '')).stderr).toContain(
      "spec.masqueradeUrl must be a host the allowlist allowedMasquerades admits (none), got 'registry.k8s.io'",
    );
    expect((await cli('check', '--mirrors', mirrors, '--out', out, '--allowed-upstreams', 'quay.io')).stderr).toContain(
      "got 'evil.example.net'",
    );
  });

  it('refuses an http object storage endpoint the list admits only as https, naming file, mirror and field', async () => {
    clear();
    const dir = await mkdtemp(join(cwd, 's3-'));
    await writeFile(
      join(dir, 'seaweed.yaml'),
      mirrorYaml(
        'seaweed',
        '{upstreamUrl: quay.io, objectStorage: {s3: {bucket: cache, region: us-east-1, endpoint: "http://seaweedfs.storage.svc:8333"}}}',
      ),
    );
    const out = join(dir, 'out');
    const refused = await cli(
      'synth',
      '--mirrors',
      dir,
      '--out',
      out,
      '--allowed-object-storage-endpoints',
      'seaweedfs.storage.svc:8333',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `${join(dir, 'seaweed.yaml')}: mirror 'seaweed': spec.objectStorage.s3.endpoint must be an endpoint the allowlist allowedObjectStorageEndpoints admits (seaweedfs.storage.svc:8333), got 'http://seaweedfs.storage.svc:8333' (plain http is admitted only by an entry written http://host[:port])`,
    );
    expect(existsSync(out)).toBe(false);
    // The entry written with its scheme admits plain http.
    const allowed = await cli(
      'synth',
      '-q',
      '--mirrors',
      dir,
      '--out',
      out,
      '--allowed-object-storage-endpoints',
      'http://seaweedfs.storage.svc:8333',
    );
    expect(allowed.stderr).toBe('');
    expect(allowed.code).toBe(0);
    vi.stubEnv('ALLOWED_OBJECT_STORAGE_ENDPOINTS', 'minio.example.com/x');
    expect(() => resolvePolicy({})).toThrow(
      "ALLOWED_OBJECT_STORAGE_ENDPOINTS: 'minio.example.com/x' is not an endpoint host[:port] (https), or http://host[:port] to admit plain http (lowercase, no path)",
    );
  });

  it('takes each list from its flag, else its variable (empty: nothing), else cdk8s.yaml, else anything', () => {
    clear();
    expect(resolvePolicy({})).toEqual({});
    vi.stubEnv('ALLOWED_UPSTREAMS', ' quay.io , ghcr.io ');
    vi.stubEnv('ALLOWED_MASQUERADES', '');
    expect(resolvePolicy({})).toEqual({ upstreams: ['quay.io', 'ghcr.io'], masquerades: [] });
    expect(resolvePolicy({ allowedUpstreams: 'docker.io' })).toEqual({ upstreams: ['docker.io'], masquerades: [] });
    expect(() => resolvePolicy({ allowedUpstreams: 'https://quay.io' })).toThrow(
      "--allowed-upstreams: 'https://quay.io' is not a host[:port] or *.domain (lowercase, no scheme)",
    );
    expect(() => resolvePolicy({ allowedImageRegistries: 'Harbor' })).toThrow(
      "--allowed-image-registries: 'Harbor' is not a registry host[:port][/path], or one ending in /* for every path under it",
    );
    expect(resolvePolicy({ allowedImageRegistries: 'harbor.example.com/*,quay.io/team' })).toMatchObject({
      imageRegistries: ['harbor.example.com/*', 'quay.io/team'],
    });
    expect(() => resolvePolicy({ allowedImageDigests: 'sha256:abc' })).toThrow(
      "--allowed-image-digests: 'sha256:abc' is not a digest sha256:<64 lower-case hex digits>",
    );
    vi.stubEnv('ALLOWED_PRIORITY_CLASSES', 'mirror-cache');
    expect(resolvePolicy({ allowedImagePullSecrets: 'a,b' })).toMatchObject({
      imagePullSecrets: ['a', 'b'],
      priorityClasses: ['mirror-cache'],
    });
  });

  it(
    "reads the lists from the working directory's cdk8s.yaml",
    async () => {
      const dir = await mkdtemp(join(cwd, 'cdk8s-'));
      await mkdir(join(dir, 'mirrors'));
      await writeFile(join(dir, 'mirrors', 'ghcr.yaml'), mirrorYaml('ghcr', '{upstreamUrl: ghcr.io}'));
      await writeFile(join(dir, 'cdk8s.yaml'), 'app: npx mirror-synth synth\nallowedUpstreams: [quay.io]\n');
      clear(); // so the spawned process sees no ALLOWED_* variable
      const refused = await spawnCli(['synth'], dir);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        "mirror 'ghcr': spec.upstreamUrl must be a host the allowlist allowedUpstreams admits (quay.io), got 'ghcr.io'",
      );
      const allowed = await spawnCli(['synth', '-q', '--allowed-upstreams', 'ghcr.io'], dir);
      expect(allowed.stderr).toBe('');
      expect(allowed.code).toBe(0);
    },
    SPAWN_TIMEOUT,
  );
});

describe('matching', () => {
  it('matches hosts exactly or under a *.domain, registries exactly or under a /* entry', () => {
    expect(hostAllowed('quay.io', ['quay.io'])).toBe(true);
    expect(hostAllowed('quay.io:443', ['quay.io'])).toBe(false);
    expect(hostAllowed('a.example.com', ['*.example.com'])).toBe(true);
    expect(hostAllowed('example.com', ['*.example.com'])).toBe(false);
    expect(hostAllowed('evilexample.com', ['*.example.com'])).toBe(false);
    // a registry entry is that registry alone: a writer cannot pick another team's path under it
    expect(registryAllowed('harbor.example.com', ['harbor.example.com'])).toBe(true);
    expect(registryAllowed('harbor.example.com/team-a', ['harbor.example.com'])).toBe(false);
    expect(registryAllowed('harbor.example.com.evil', ['harbor.example.com'])).toBe(false);
    expect(registryAllowed('harbor.example.com/hubx', ['harbor.example.com/hub'])).toBe(false);
    // /* admits every path under it, not the registry itself nor a look-alike host
    expect(registryAllowed('harbor.example.com/hub', ['harbor.example.com/*'])).toBe(true);
    expect(registryAllowed('harbor.example.com/hub/deep', ['harbor.example.com/*'])).toBe(true);
    expect(registryAllowed('harbor.example.com', ['harbor.example.com/*'])).toBe(false);
    expect(registryAllowed('harbor.example.com.evil/hub', ['harbor.example.com/*'])).toBe(false);
  });
});
