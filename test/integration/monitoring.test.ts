// dist/ and dist/monitoring/ as `kubectl apply -k` applies them: rendered by the real kustomize
// (built from tools/kustomize, the version kubectl embeds) and applied to a real kube-apiserver
// of its own. Without the Prometheus Operator's CRDs, dist/ applies and dist/monitoring/ is
// refused; with the CRDs of the operator release pinned in tools/prometheus-operator installed,
// every monitoring object (and the controller's, `controller-manifests --monitoring`) is
// accepted and reads back unchanged: the CRDs' schemas prune no field we write.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  ApiException,
  type KubernetesObject,
  type KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { KubeObject } from '../../src/api/kube-object.js';
import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { synth } from '../../src/cli/synth.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import { clients } from '../support/kube/cluster.js';
import { ensureTool } from '../support/primitives/tools.js';
import { waitFor } from '../support/primitives/wait.js';

const exec = promisify(execFile);
const repoMirrors = new URL('../../mirrors', import.meta.url).pathname;
const FIELD_MANAGER = 'mirror-synth-monitoring-test';

let dir: string;
let dist: string;
let kustomize: string;
let controlPlane: ControlPlane;
let api: KubernetesObjectApi;

/** Parse YAML documents into objects as client-node sends them (wire names kept). */
const objectsOf = (text: string): KubeObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null)
    .map((o) => loadYaml<KubernetesObject>(JSON.stringify(o)) as KubeObject);
const key = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

async function kustomizeBuild(path: string): Promise<KubeObject[]> {
  const { stdout } = await exec(kustomize, ['build', path], { maxBuffer: 64 * 1024 * 1024 });
  return objectsOf(stdout);
}

/** `kubectl apply --server-side` of one object; the CRDs and Namespaces first, as kubectl orders them. */
async function apply(objects: KubeObject[]): Promise<void> {
  const first = (o: KubeObject) => (o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace' ? 0 : 1);
  for (const o of [...objects].sort((a, b) => first(a) - first(b))) {
    try {
      await api.patch(o, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (e) {
      throw new Error(`${key(o)}: ${e instanceof ApiException ? String(e.body) : String(e)}`);
    }
  }
}

async function established(names: string[]): Promise<void> {
  const { ext } = clients(controlPlane.kubeconfigPath);
  for (const name of names) {
    await waitFor(`CRD ${name} to be Established`, async () =>
      (await ext.readCustomResourceDefinition({ name })).status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      ),
    );
  }
}

beforeAll(async () => {
  [kustomize] = await Promise.all([ensureTool('kustomize'), ensureTool('prometheus-operator-crds')]);
  controlPlane = await startControlPlane({ controllerManager: false });
  api = clients(controlPlane.kubeconfigPath).objects;
  dir = await mkdtemp(join(tmpdir(), 'monitoring-it-'));
  await cp(repoMirrors, join(dir, 'mirrors'), { recursive: true });
  dist = join(dir, 'dist');
  await synth({ mirrors: join(dir, 'mirrors'), out: dist, quiet: true });
});

afterAll(async () => {
  await controlPlane?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kubectl apply -k dist/ and dist/monitoring/', () => {
  it('dist/ applies on a cluster without the Prometheus Operator, and leaves monitoring out', async () => {
    const objects = await kustomizeBuild(dist);
    expect(objects.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/'))).toEqual([]);
    expect(objects.map((o) => o.kind)).toEqual(expect.arrayContaining(['StatefulSet', 'DaemonSet', 'Service']));
    await apply(objects);
    for (const o of objects) {
      await expect(api.read(o as KubernetesObject & { metadata: { name: string } }), key(o)).resolves.toBeDefined();
    }
  });

  it("dist/monitoring/'s PodMonitors and PrometheusRule are refused there: nothing serves their API group", async () => {
    const monitoring = await kustomizeBuild(join(dist, 'monitoring'));
    const operatorKinds = monitoring.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/'));
    expect(new Set(operatorKinds.map((o) => o.kind))).toEqual(new Set(['PodMonitor', 'PrometheusRule']));
    for (const o of operatorKinds) await expect(apply([o]), key(o)).rejects.toThrow(/404 page not found/);
  });

  it('with the operator CRDs installed, every monitoring object is accepted and reads back as written', async () => {
    const crdDir = await ensureTool('prometheus-operator-crds');
    const crds = (
      await Promise.all(
        (await readdir(crdDir))
          .filter((f) => f.endsWith('.yaml'))
          .sort()
          .map(async (f) => objectsOf(await readFile(join(crdDir, f), 'utf8'))),
      )
    ).flat();
    expect(crds.map((c) => c.metadata.name)).toEqual(
      expect.arrayContaining(['podmonitors.monitoring.coreos.com', 'prometheusrules.monitoring.coreos.com']),
    );
    await apply(crds);
    await established(crds.map((c) => c.metadata.name));

    const monitoring = [
      ...(await kustomizeBuild(join(dist, 'monitoring'))),
      ...objectsOf(
        controllerManifests({
          image: 'registry.example.com/mirror-synth:0.1.0',
          namespace: 'kube-extra',
          monitoring: true,
          log: () => undefined,
        }),
      ).filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/')),
    ];
    expect(monitoring.map((o) => o.kind).sort()).toEqual(
      expect.arrayContaining(['ConfigMap', 'PodMonitor', 'PodMonitor', 'PrometheusRule', 'PrometheusRule']),
    );
    await apply(monitoring);
    for (const o of monitoring) {
      const back = (await api.read(o)) as unknown as KubeObject & Record<string, unknown>;
      const written = o as KubeObject & Record<string, unknown>;
      // a field the CRD's structural schema does not know would be dropped here without a word
      for (const field of ['spec', 'data'] as const) {
        if (written[field] !== undefined) expect(back[field], `${key(o)} .${field}`).toEqual(written[field]);
      }
    }
  }, 120_000);
});
