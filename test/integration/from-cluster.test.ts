// `listClusterMirrors` (synth --from-cluster) against a real API server: valid mirrors are
// returned validated, invalid ones fail with every problem, and a missing CRD or an
// unreachable cluster fails with a clear ClusterError.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ClusterError, SpecError } from '../../src/api/errors.js';
import { listClusterMirrors } from '../../src/sources/cluster.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import { clients, createMirror, deleteMirror, installCrd } from '../support/kube/cluster.js';

const kubeconfig = inject('kubeconfig');
const c = clients(kubeconfig);
const suffix = randomBytes(3).toString('hex');
const names = [`fc-a-${suffix}`, `fc-b-${suffix}`, `fc-bad-${suffix}`];

describe('listClusterMirrors', () => {
  beforeAll(async () => {
    await installCrd(c);
  });

  afterAll(async () => {
    for (const n of names) await deleteMirror(c, n);
  });

  it('returns every RegistryMirror, validated, with its generation and uid', async () => {
    await createMirror(c, names[0], { upstreamUrl: 'quay.io' });
    await createMirror(c, names[1], { upstreamUrl: 'ghcr.io', credentialsSecret: 'ghcr-creds' });
    const mirrors = await listClusterMirrors({ kubeconfig });
    const ours = mirrors.filter((m) => m.name.endsWith(suffix));
    expect(ours.map((m) => [m.name, m.spec.upstreamUrl, m.source])).toEqual([
      [names[0], 'quay.io', `cluster:registrymirror/${names[0]}`],
      [names[1], 'ghcr.io', `cluster:registrymirror/${names[1]}`],
    ]);
    expect(ours[0].generation).toBe(1);
    expect(ours[0].uid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('fails with a SpecError naming the mirror and the field when one is invalid', async () => {
    // The API server refuses a bad port itself now (CEL); two mirrors on one node host it cannot see.
    await createMirror(c, names[2], { upstreamUrl: 'quay.io' });
    const err = await listClusterMirrors({ kubeconfig }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpecError);
    expect((err as Error).message).toContain(`cluster:registrymirror/${names[2]}`);
    expect((err as Error).message).toContain("spec.upstreamUrl 'quay.io' is already configured on the nodes by mirror");
    await deleteMirror(c, names[2]);
  });

  it('fails with a ClusterError when the cluster cannot be reached', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'from-cluster-'));
    const path = join(dir, 'kubeconfig');
    await writeFile(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'gone', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
        contexts: [{ name: 'gone', context: { cluster: 'gone', user: 'u' } }],
        'current-context': 'gone',
      }),
    );
    const err = await listClusterMirrors({ kubeconfig: path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect((err as Error).message).toContain('cannot reach the Kubernetes API server at https://127.0.0.1:1');
    expect((err as Error).message).not.toContain('not-a-real-token');
  });

  it('fails with a ClusterError for a missing kubeconfig file', async () => {
    const err = await listClusterMirrors({ kubeconfig: '/nonexistent/kubeconfig' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect((err as Error).message).toContain('cannot load kubeconfig /nonexistent/kubeconfig');
  });
});

describe.runIf(!process.env.MIRROR_SYNTH_TEST_KUBECONFIG)('listClusterMirrors without the CRD', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
  });
  afterAll(async () => {
    await cp?.stop();
  });

  it('says the CRD is not installed and how to install it', async () => {
    const err = await listClusterMirrors({ kubeconfig: cp.kubeconfigPath }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect((err as Error).message).toMatch(
      /RegistryMirror CRD \(registrymirrors\.k8s\.osp\.tech\) is not installed .*mirror-synth crd \| kubectl apply -f -/,
    );
  });
});
