import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { UsageError } from '../../src/api/errors.js';
import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { synth } from '../../src/cli/synth.js';
import { chartYaml, escapeForHelm, HELM_README } from '../../src/synth/helm.js';
import { readTree } from '../../src/synth/output.js';
import { SPAWN_TIMEOUT, spawnCli } from '../support/primitives/cli.js';

const repoMirrors = new URL('../../mirrors', import.meta.url).pathname;
let dir: string;
let mirrors: string;
const quiet = { quiet: true } as const;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'helm-'));
  mirrors = join(dir, 'mirrors');
  await cp(repoMirrors, mirrors, { recursive: true });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('synth --format helm', () => {
  it('writes a chart as cdk8s-cli does: Chart.yaml, README.md, the CRD in crds/, manifests in templates/, no kustomization', async () => {
    const out = join(dir, 'chart');
    await synth({ mirrors, out, format: 'helm', chartVersion: '1.2.3-rc.1', ...quiet });
    const files = await readTree(out);
    expect([...files.keys()].sort()).toEqual([
      'Chart.yaml',
      'README.md',
      'crds/crd.yaml',
      'templates/mirrors/dockerhub.yaml',
      'templates/mirrors/internal.yaml',
      'templates/mirrors/quay.yaml',
      'templates/namespace.yaml',
    ]);
    expect(parseAllDocuments(files.get('Chart.yaml')!)[0].toJS()).toMatchObject({
      apiVersion: 'v2',
      version: '1.2.3-rc.1',
      type: 'application',
    });
    expect(files.get('README.md')).toBe(HELM_README);
    // the manifests are the plain output's bytes
    await synth({ mirrors, out: join(dir, 'plain'), ...quiet });
    for (const [path, text] of await readTree(join(dir, 'plain'))) {
      if (path === 'crd.yaml') expect(files.get('crds/crd.yaml')).toBe(text);
      else if (!path.endsWith('kustomization.yaml') && !path.startsWith('monitoring/')) {
        expect(files.get(`templates/${path}`), path).toBe(text);
      }
    }
    // a second run replaces the chart it wrote
    await synth({ mirrors, out, format: 'helm', chartVersion: '1.2.4', ...quiet });
    expect((await readTree(out)).get('Chart.yaml')).toContain('version: "1.2.4"');
  });

  it('needs a SemVer --chart-version, and a known --format', async () => {
    const out = join(dir, 'chart');
    await expect(synth({ mirrors, out, format: 'helm', ...quiet })).rejects.toThrow(
      /--format helm needs --chart-version <semver>/,
    );
    await expect(synth({ mirrors, out, format: 'helm', chartVersion: '1.2', ...quiet })).rejects.toThrow(
      "--chart-version must be a SemVer 2 version such as 1.2.3, got '1.2'",
    );
    await expect(synth({ mirrors, out, format: 'kustomize', ...quiet })).rejects.toBeInstanceOf(UsageError);
  });

  it("escapes what Helm's template engine would read, and quotes Chart.yaml as cdk8s-cli does", () => {
    expect(escapeForHelm('a {{ $labels.mirror }} b')).toBe('a {{ "{{" }} $labels.mirror }} b');
    expect(chartYaml({ chartVersion: '0.1.0', chartName: 'mirrors' })).toBe(
      'apiVersion: "v2"\nname: "mirrors"\nversion: "0.1.0"\ndescription: Generated chart for mirrors\ntype: application\n',
    );
  });
});

describe('controller-manifests and cdk8s.yaml', () => {
  it(
    "writes a chart when the working directory's cdk8s.yaml says synthConfig.format: helm, as synth does; --format plain prints",
    async () => {
      await writeFile(
        join(dir, 'cdk8s.yaml'),
        'app: npx mirror-synth synth\nsynthConfig:\n  format: helm\n  chartVersion: 0.2.0\n',
      );
      const image = 'registry.example.com/mirror-synth:0.1.0';
      const noOut = await spawnCli(['controller-manifests', '--image', image], dir);
      expect(noOut.code).toBe(2);
      expect(noOut.stderr).toContain(
        "controller-manifests --format helm (cdk8s.yaml's synthConfig.format) needs --out <dir> for the chart",
      );
      expect(noOut.stdout).toBe('');

      const written = await spawnCli(['controller-manifests', '--image', image, '--out', 'chart'], dir);
      expect(written.stderr).toBe('');
      expect(written.code).toBe(0);
      const files = await readTree(join(dir, 'chart'));
      expect([...files.keys()].sort()).toEqual([
        'Chart.yaml',
        'README.md',
        'crds/crd.yaml',
        'templates/controller.yaml',
      ]);
      expect(files.get('Chart.yaml')).toContain('version: "0.2.0"');
      const plain = controllerManifests({ image, log: () => undefined });
      expect(files.get('templates/controller.yaml')).toBe(plain);

      const flag = await spawnCli(['controller-manifests', '--image', image, '--format', 'plain'], dir);
      expect(flag.code).toBe(0);
      expect(flag.stdout).toBe(plain);
    },
    3 * SPAWN_TIMEOUT,
  );
});
