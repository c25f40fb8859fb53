// The chart `mirror-synth synth --format helm` writes, checked by the real Helm (built from
// tools/helm): `helm lint` is clean, `helm template` gives back exactly the plain output's
// objects (Helm adds no label of its own; its `# Source:` comments are dropped by parsing),
// and the API server accepts every rendered object.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { KubeObject } from '../../src/api/kube-object.js';
import { controllerChart, controllerManifests } from '../../src/cli/controller-manifests.js';
import { synth } from '../../src/cli/synth.js';
import { readTree } from '../../src/synth/output.js';
import { ensureTool } from '../support/primitives/tools.js';

const exec = promisify(execFile);
const repoMirrors = new URL('../../mirrors', import.meta.url).pathname;
let dir: string;
let helm: string;
let chart: string;

const objectsOf = (text: string): KubeObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
const key = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

beforeAll(async () => {
  helm = await ensureTool('helm');
  dir = await mkdtemp(join(tmpdir(), 'helm-it-'));
  await cp(repoMirrors, join(dir, 'mirrors'), { recursive: true });
  chart = join(dir, 'registry-mirrors');
  await synth({ mirrors: join(dir, 'mirrors'), out: chart, format: 'helm', chartVersion: '0.1.0', quiet: true });
  await synth({ mirrors: join(dir, 'mirrors'), out: join(dir, 'plain'), quiet: true });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the Helm chart', () => {
  it('passes helm lint', async () => {
    const { stdout } = await exec(helm, ['lint', '--strict', chart], { env: { ...process.env, HOME: dir } });
    expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  it('helm template gives back the plain output, object for object', async () => {
    const { stdout } = await exec(helm, ['template', 'mirrors', chart, '--include-crds'], {
      env: { ...process.env, HOME: dir },
      maxBuffer: 64 * 1024 * 1024,
    });
    const rendered = objectsOf(stdout);
    const plain = [...(await readTree(join(dir, 'plain')))]
      .filter(([p]) => !p.endsWith('kustomization.yaml') && !p.startsWith('monitoring/'))
      .flatMap(([, text]) => objectsOf(text));
    expect(rendered.map(key).sort()).toEqual(plain.map(key).sort());
    const byKey = new Map(rendered.map((o) => [key(o), o]));
    for (const o of plain) expect(byKey.get(key(o)), key(o)).toEqual(o);
  });

  it('the API server accepts every rendered object (server-side apply, dry run)', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(inject('kubeconfig'));
    const api = KubernetesObjectApi.makeApiClient(kc);
    const { stdout } = await exec(helm, ['template', 'mirrors', chart, '--include-crds'], {
      env: { ...process.env, HOME: dir },
      maxBuffer: 64 * 1024 * 1024,
    });
    // through client-node's typed models, which would drop wire names such as x-kubernetes-int-or-string
    const objects = objectsOf(stdout).map((o) => loadYaml<KubernetesObject>(JSON.stringify(o)) as KubeObject);
    // the CRD and the namespace for real (the rest refers to them), the rest as a dry run
    for (const o of objects.filter((x) => x.kind === 'CustomResourceDefinition' || x.kind === 'Namespace')) {
      await api.patch(o, undefined, undefined, 'mirror-synth-helm-test', true, PatchStrategy.ServerSideApply);
    }
    for (const o of objects.filter((x) => x.kind !== 'CustomResourceDefinition' && x.kind !== 'Namespace')) {
      await expect(
        api.patch(o, undefined, 'All', 'mirror-synth-helm-test', true, PatchStrategy.ServerSideApply),
        key(o),
      ).resolves.toBeDefined();
    }
  });
});

describe("the controller's Helm chart (controller-manifests --format helm)", () => {
  it('passes helm lint, renders the CRD and exactly the controller manifests, and the API server accepts them', async () => {
    const out = join(dir, 'controller-chart');
    const opts = { image: 'registry.example.com/mirror-synth:0.1.0', namespace: 'helm-controller', monitoring: false };
    await controllerChart({ ...opts, format: 'helm', chartVersion: '0.1.0', out, log: () => undefined });
    const env = { ...process.env, HOME: dir };
    expect((await exec(helm, ['lint', '--strict', out], { env })).stdout).toContain('0 chart(s) failed');
    const { stdout } = await exec(helm, ['template', 'controller', out, '--include-crds'], { env });
    const rendered = objectsOf(stdout);
    const expected = objectsOf(controllerManifests({ ...opts, log: () => undefined }));
    expect(rendered.map(key).sort()).toEqual(
      ['CustomResourceDefinition//registrymirrors.k8s.osp.tech', ...expected.map(key)].sort(),
    );
    const api = (() => {
      const kc = new KubeConfig();
      kc.loadFromFile(inject('kubeconfig'));
      return KubernetesObjectApi.makeApiClient(kc);
    })();
    for (const o of rendered.map((x) => loadYaml<KubernetesObject>(JSON.stringify(x)) as KubeObject)) {
      const real = o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace';
      await expect(
        api.patch(
          o,
          undefined,
          real ? undefined : 'All',
          'mirror-synth-helm-test',
          true,
          PatchStrategy.ServerSideApply,
        ),
        key(o),
      ).resolves.toBeDefined();
    }
  });
});
