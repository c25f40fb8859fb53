import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { SpecError, UsageError } from '../../src/api/errors.js';
import {
  checkHostConflicts,
  checkNameCollisions,
  checkUniqueNames,
  findNameCollisions,
  parseMirrorFile,
  parseMirrorResource,
} from '../../src/api/validate.js';
import { validate } from '../../src/cli/validate.js';
import { loadMirrorDir } from '../../src/sources/files.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';

const fixtures = new URL('../fixtures', import.meta.url).pathname;

function specError(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

describe('invalid specs are refused with a message naming file, mirror and field', () => {
  for (const file of readdirSync(join(fixtures, 'invalid')).sort()) {
    it(file, () => {
      const path = join(fixtures, 'invalid', file);
      const text = readFileSync(path, 'utf8');
      const expected = /^# expect: (.*)$/m.exec(text)?.[1];
      expect(expected, `${file} needs a '# expect:' line`).toBeDefined();
      const err = specError(() => parseMirrorFile(text, path));
      expect(err.message.startsWith(`${path}: `)).toBe(true);
      expect(err.message).toContain(expected);
      expect(err.message).not.toMatch(/\n\s+at /); // no stack trace in the message
    });
  }
});

describe('image fields a spec may not set', () => {
  // One mechanism for both: the same message from a file (synth), a cluster object (the controller)
  // and the CRD (test/integration/crd-validation.test.ts runs the same fixtures).
  const digest = '@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
  for (const [role, where] of [
    ['nodeAgent', "--node-agent-image (env NODE_AGENT_IMAGE, cdk8s.yaml nodeAgentImage), not a RegistryMirror's spec"],
    ['fill', "synth's --fill-image (env FILL_IMAGE, cdk8s.yaml fillImage) or the controller's own image"],
  ] as const) {
    it(`refuses spec.imageDigests.${role} from a cluster object as from a file, saying where the image is set`, () => {
      const spec = { upstreamUrl: 'quay.io', imageDigests: { [role]: `1.0${digest}` } };
      const err = specError(() =>
        parseMirrorResource(
          { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', metadata: { name: 'quay' }, spec },
          'cluster:registrymirror/quay',
        ),
      );
      expect(err.problems).toEqual([
        expect.objectContaining({
          source: 'cluster:registrymirror/quay',
          mirror: 'quay',
          field: `spec.imageDigests.${role}`,
        }),
      ]);
      expect(err.message).toContain(`spec.imageDigests.${role} is not honoured: `);
      expect(err.message).toContain(where);
      const file = specError(() => parseMirrorFile(mirrorYaml('quay', JSON.stringify(spec)), 'mirrors/quay.yaml'));
      expect(file.problems.map((p) => p.message)).toEqual(err.problems.map((p) => p.message));
    });
  }
});

describe('valid specs', () => {
  it('accepts the original API unchanged', () => {
    const m = parseMirrorResource(
      {
        apiVersion: 'k8s.osp.tech/v1',
        kind: 'RegistryMirror',
        metadata: { name: 'internal' },
        spec: { upstreamUrl: 'internal.docker.tech.lastmile.com', credentialsSecret: 'internal-mirror' },
      },
      'x.yaml',
    );
    expect(m).toEqual({
      name: 'internal',
      source: 'x.yaml',
      spec: { upstreamUrl: 'internal.docker.tech.lastmile.com', credentialsSecret: 'internal-mirror' },
    });
  });

  it('accepts cluster objects with server-set metadata and status', () => {
    const m = parseMirrorResource(
      {
        apiVersion: 'k8s.osp.tech/v1',
        kind: 'RegistryMirror',
        metadata: { name: 'quay', uid: 'abc', generation: 3, resourceVersion: '12', managedFields: [] },
        spec: { upstreamUrl: 'quay.io' },
        status: { observedGeneration: 2 },
      },
      'cluster:registrymirror/quay',
    );
    expect(m.generation).toBe(3);
    expect(m.uid).toBe('abc');
  });

  it('reads several documents from one file and skips empty ones', () => {
    const ms = parseMirrorFile(readFileSync(join(fixtures, 'mirrors', 'dockerhub.yaml'), 'utf8') + '\n---\n', 'f.yaml');
    expect(ms.map((m) => m.name)).toEqual(['dockerhub', 'ghcr']);
  });

  it('accepts quantities written as numbers', () => {
    const m = parseMirrorResource(
      {
        apiVersion: 'k8s.osp.tech/v1',
        kind: 'RegistryMirror',
        metadata: { name: 'q' },
        spec: { upstreamUrl: 'quay.io', resources: { limits: { cpu: 2 } } },
      },
      'f.yaml',
    );
    expect(m.spec.resources?.limits?.cpu).toBe(2);
  });

  it('reports every problem of a spec at once', () => {
    const err = specError(() =>
      parseMirrorResource(
        {
          apiVersion: 'k8s.osp.tech/v1',
          kind: 'RegistryMirror',
          metadata: { name: 'q' },
          spec: { upstreamUrl: 'HTTP://x', replicas: 0 },
        },
        'f.yaml',
      ),
    );
    expect(err.problems.map((p) => p.field).sort()).toEqual(['spec.replicas', 'spec.upstreamUrl']);
  });
});

describe('a mirrors directory', () => {
  it('refuses two files declaring the same mirror, naming both', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirrors-'));
    const doc = mirrorYaml('quay', '{upstreamUrl: quay.io}');
    await writeFile(join(dir, 'a.yaml'), doc);
    await writeFile(join(dir, 'b.yml'), doc);
    const err = await loadMirrorDir(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SpecError);
    expect((err as Error).message).toBe(
      `${join(dir, 'b.yml')}: mirror 'quay': metadata.name 'quay' is already used by ${join(dir, 'a.yaml')}; mirror names must be unique`,
    );
  });

  it('collects problems from every file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirrors-'));
    await writeFile(join(dir, 'a.yaml'), mirrorYaml('a', '{}'));
    await writeFile(join(dir, 'b.yaml'), mirrorYaml('b', '{upstreamUrl: "x/y"}'));
    await writeFile(join(dir, 'notes.txt'), 'not a spec');
    const err = (await loadMirrorDir(dir).catch((e: unknown) => e)) as SpecError;
    expect(err.problems.map((p) => `${p.mirror}:${p.field}`)).toEqual(['a:spec.upstreamUrl', 'b:spec.upstreamUrl']);
  });

  it('is a usage error when missing', async () => {
    await expect(loadMirrorDir('/nonexistent/mirrors')).rejects.toBeInstanceOf(UsageError);
  });

  it('checkUniqueNames accepts distinct names', () => {
    expect(() =>
      checkUniqueNames([
        { name: 'a', spec: { upstreamUrl: 'a.io' }, source: 'a' },
        { name: 'b', spec: { upstreamUrl: 'b.io' }, source: 'b' },
      ]),
    ).not.toThrow();
  });
});

describe('node host conflicts: two mirrors may not configure the same registry host on the nodes', () => {
  const m = (name: string, upstreamUrl: string, masqueradeUrl?: string) => ({
    name,
    source: `mirrors/${name}.yaml`,
    spec: { upstreamUrl, ...(masqueradeUrl ? { masqueradeUrl } : {}) },
  });

  it.each([
    ['the same upstream', m('a', 'quay.io'), m('b', 'quay.io'), 'spec.upstreamUrl', "spec.upstreamUrl 'quay.io'"],
    [
      'two names of Docker Hub',
      m('a', 'docker.io'),
      m('b', 'index.docker.io'),
      'spec.upstreamUrl',
      "spec.upstreamUrl 'index.docker.io' (node host docker.io)",
    ],
    [
      "an upstream equal to another's masqueradeUrl",
      m('a', 'quay.io', 'registry.example.com'),
      m('b', 'registry.example.com'),
      'spec.upstreamUrl',
      "spec.upstreamUrl 'registry.example.com'",
    ],
    [
      "a masqueradeUrl equal to another's upstream",
      m('a', 'quay.io'),
      m('b', 'ghcr.io', 'quay.io'),
      'spec.masqueradeUrl',
      "spec.masqueradeUrl 'quay.io'",
    ],
  ])('refuses %s, naming the later mirror, its field and the mirror that has the host', (_, a, b, field, what) => {
    const err = specError(() => checkHostConflicts([a, b]));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatchObject({ source: 'mirrors/b.yaml', mirror: 'b', field });
    expect(err.message).toBe(
      `mirrors/b.yaml: mirror 'b': ${what} is already configured on the nodes by mirror 'a' (mirrors/a.yaml); two mirrors may not configure the same registry host`,
    );
  });

  it('accepts mirrors of different hosts', () => {
    expect(() =>
      checkHostConflicts([m('a', 'quay.io', 'quay.example.com'), m('b', 'docker.io'), m('c', 'ghcr.io')]),
    ).not.toThrow();
  });

  it('is checked when loading a directory, so synth and validate refuse it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirrors-'));
    await writeFile(join(dir, 'a.yaml'), mirrorYaml('hub', '{upstreamUrl: docker.io}'));
    await writeFile(join(dir, 'b.yaml'), mirrorYaml('hub2', '{upstreamUrl: registry-1.docker.io}'));
    const err = (await loadMirrorDir(dir).catch((e: unknown) => e)) as SpecError;
    expect(err).toBeInstanceOf(SpecError);
    expect(err.message).toContain(
      `${join(dir, 'b.yaml')}: mirror 'hub2': spec.upstreamUrl 'registry-1.docker.io' (node host docker.io) is already configured on the nodes by mirror 'hub'`,
    );
  });
});

describe('name collisions: two mirrors may not create an object of the same kind and name', () => {
  const m = (name: string) => ({ name, source: `mirrors/${name}.yaml` });

  it("refuses 'a' beside 'a-headless' (a's headless Service is a-headless's Service), naming both files and mirrors", () => {
    const err = specError(() => checkNameCollisions([m('a'), m('a-headless')]));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatchObject({
      source: 'mirrors/a-headless.yaml',
      mirror: 'a-headless',
      field: 'metadata.name',
    });
    expect(err.message).toBe(
      "mirrors/a-headless.yaml: mirror 'a-headless': metadata.name 'a-headless' gives its Service the name registry-mirror-a-headless, which is the headless Service of mirror 'a' (mirrors/a.yaml); two mirrors may not create the same object: rename one of them",
    );
    // whichever comes first keeps the name; the other is refused
    expect(findNameCollisions([m('a-headless'), m('a')])).toMatchObject([
      { mirror: 'a', other: 'a-headless', object: 'Service/registry-mirror-a-headless' },
    ]);
  });

  it('accepts names whose children only look alike', () => {
    // `a-config`'s ConfigMaps are registry-mirror-a-config-config and -agent; `a-0`'s StatefulSet is not a's pod
    expect(findNameCollisions(['a', 'a-config', 'a-agent', 'a-0', 'a-credentials', 'b'].map(m))).toEqual([]);
  });

  it('is checked when loading a directory, so synth and validate refuse it and write nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirrors-'));
    await writeFile(join(dir, 'a.yaml'), mirrorYaml('a', '{upstreamUrl: a.example.com}'));
    await writeFile(join(dir, 'b.yaml'), mirrorYaml('a-headless', '{upstreamUrl: b.example.com}'));
    const err = (await validate({ mirrors: dir, quiet: true }).catch((e: unknown) => e)) as SpecError;
    expect(err).toBeInstanceOf(SpecError);
    expect(err.message).toBe(
      `${join(dir, 'b.yaml')}: mirror 'a-headless': metadata.name 'a-headless' gives its Service the name registry-mirror-a-headless, which is the headless Service of mirror 'a' (${join(dir, 'a.yaml')}); two mirrors may not create the same object: rename one of them`,
    );
  });
});
