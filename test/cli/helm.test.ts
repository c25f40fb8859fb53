import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { UsageError } from '../../src/api/errors.js';
import { synth } from '../../src/cli/synth.js';
import { chartYaml, escapeForHelm, HELM_README } from '../../src/synth/helm.js';
import { readTree } from '../../src/synth/output.js';

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
