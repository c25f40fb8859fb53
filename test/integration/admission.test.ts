// The allowlist on the API server: `controller-manifests --allowed-*` ships a ConfigMap and a
// ValidatingAdmissionPolicy with its binding, applied here to a kube-apiserver of this file's own
// (the policy is cluster-wide: it must not refuse other files' mirrors). A RegistryMirror naming a
// host the ConfigMap does not allow is refused with the policy's message, as `kubectl create`
// prints it; one it allows is admitted; and the controller, reading the same ConfigMap through its
// environment as the Deployment sets it, stalls a mirror written before the list was tightened.
import { randomBytes } from 'node:crypto';

import { ApiException, type KubernetesObject, loadYaml, PatchStrategy } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { KubeObject } from '../../src/api/kube-object.js';
import { ALLOWLIST_ENV, ALLOWLIST_KEYS, ALLOWLIST_NAME } from '../../src/api/names.js';
import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { resolvePolicy } from '../../src/cli/options.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  type Clients,
  clients,
  condition,
  getMirror,
  GROUP,
  installCrd,
  LogCapture,
  setSpec,
} from '../support/cluster.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { waitFor } from '../support/wait.js';

const suffix = randomBytes(3).toString('hex');
const DIGEST_OK = `sha256:${'a'.repeat(64)}`;
const DIGEST_OTHER = `sha256:${'b'.repeat(64)}`;
const namespace = `allowlist-${suffix}`;
const FIELD_MANAGER = 'mirror-synth-admission-test';
let controlPlane: ControlPlane;
let c: Clients;
const created: string[] = [];

const objectsOf = (text: string): KubeObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null)
    .map((o) => loadYaml<KubernetesObject>(JSON.stringify(o)) as KubeObject);

async function apply(objects: KubeObject[]): Promise<void> {
  for (const o of objects) {
    try {
      await c.objects.patch(o, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (e) {
      throw new Error(`${o.kind}/${o.metadata.name}: ${e instanceof ApiException ? String(e.body) : String(e)}`);
    }
  }
}

/** What the API server answers a create (as `kubectl create -f` sends it: strict field validation). */
async function create(name: string, spec: Record<string, unknown>): Promise<string | undefined> {
  try {
    await c.custom.createClusterCustomObject({
      ...GROUP,
      fieldValidation: 'Strict',
      body: { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', metadata: { name }, spec },
    });
    created.push(name);
    return undefined;
  } catch (e) {
    if (e instanceof ApiException) return (JSON.parse(String(e.body)) as { message: string }).message;
    throw e;
  }
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiException) return (JSON.parse(String(e.body)) as { message: string }).message;
    throw e;
  }
  throw new Error('the API server accepted it');
}

const policyMessage = (detail: string) =>
  `registrymirrors.k8s.osp.tech "${`bad-${suffix}`}" is forbidden: ValidatingAdmissionPolicy '${ALLOWLIST_NAME}' with binding '${ALLOWLIST_NAME}' denied request: ${detail}`;

beforeAll(async () => {
  controlPlane = await startControlPlane({ controllerManager: false });
  c = clients(controlPlane.kubeconfigPath);
  await installCrd(c);
  await apply(
    objectsOf(
      controllerManifests({
        image: 'registry.example.com/mirror-synth:0.1.0',
        namespace,
        allowedUpstreams: 'quay.io,*.example.com',
        allowedMasquerades: 'mirror-quay.io',
        allowedImageRegistries: 'harbor.example.com,mirrors.example.com/*',
        allowedImageDigests: DIGEST_OK,
        allowedImagePullSecrets: 'harbor-pull',
        allowedPriorityClasses: 'mirror-cache',
        log: () => undefined,
      }),
    ),
  );
  // The policy acts once the API server has compiled it and its informers hold the binding and
  // the ConfigMap: until then a create may pass. Wait for a refusal of a probe mirror.
  await waitFor(
    'the allowlist policy to act',
    async () => (await create(`probe-${suffix}`, { upstreamUrl: 'ghcr.io' })) !== undefined,
  );
});

afterAll(async () => {
  await controlPlane?.stop();
});

describe('the allowlist admission policy (controller-manifests --allowed-*)', () => {
  it('refuses a RegistryMirror whose masqueradeUrl the allowlist does not name, with its message', async () => {
    expect(await create(`bad-${suffix}`, { upstreamUrl: 'quay.io', masqueradeUrl: 'registry.k8s.io' })).toBe(
      policyMessage(
        "spec.masqueradeUrl must be a host the allowlist allowedMasquerades admits (mirror-quay.io), got 'registry.k8s.io'",
      ),
    );
    expect(await create(`bad-${suffix}`, { upstreamUrl: 'evil.example.net' })).toBe(
      policyMessage(
        "spec.upstreamUrl must be a host the allowlist allowedUpstreams admits (quay.io,*.example.com), got 'evil.example.net'",
      ),
    );
    expect(await create(`bad-${suffix}`, { upstreamUrl: 'quay.io', imageRegistry: 'harbor.example.com.evil/x' })).toBe(
      policyMessage(
        "spec.imageRegistry must be a registry the allowlist allowedImageRegistries admits (harbor.example.com,mirrors.example.com/*), got 'harbor.example.com.evil/x'",
      ),
    );
    expect(created).not.toContain(`bad-${suffix}`);
  });

  it('refuses a path under an exact registry entry, a digest, pull Secret or priority class it does not name, and any node agent pin', async () => {
    // harbor.example.com is that registry alone: another team's path under it is not admitted
    expect(await create(`bad-${suffix}`, { upstreamUrl: 'quay.io', imageRegistry: 'harbor.example.com/team-a' })).toBe(
      policyMessage(
        "spec.imageRegistry must be a registry the allowlist allowedImageRegistries admits (harbor.example.com,mirrors.example.com/*), got 'harbor.example.com/team-a'",
      ),
    );
    expect(
      await create(`bad-${suffix}`, { upstreamUrl: 'quay.io', imageDigests: { registry: `3.1.2@${DIGEST_OTHER}` } }),
    ).toBe(
      policyMessage(
        `spec.imageDigests.registry must be a digest the allowlist allowedImageDigests admits (${DIGEST_OK}), got '${DIGEST_OTHER}'`,
      ),
    );
    expect(
      await create(`bad-${suffix}`, {
        upstreamUrl: 'quay.io',
        imagePullSecrets: [{ name: 'harbor-pull' }, { name: 'team-a-pull' }],
      }),
    ).toBe(
      policyMessage(
        "spec.imagePullSecrets must be a name the allowlist allowedImagePullSecrets admits (harbor-pull), got 'team-a-pull'",
      ),
    );
    expect(await create(`bad-${suffix}`, { upstreamUrl: 'quay.io', priorityClassName: 'system-node-critical' })).toBe(
      policyMessage(
        "spec.priorityClassName must be a name the allowlist allowedPriorityClasses admits (mirror-cache), got 'system-node-critical'",
      ),
    );
    // The node agent's image is the platform's: the CRD itself refuses a pin of it, whatever the allowlist.
    expect(
      await create(`bad-${suffix}`, { upstreamUrl: 'quay.io', imageDigests: { nodeAgent: `1.37.0@${DIGEST_OK}` } }),
    ).toContain(
      "spec.imageDigests.nodeAgent is not honoured: the node agent runs as root on every node, so its image is the platform's choice",
    );
    expect(created).not.toContain(`bad-${suffix}`);
    // what the lists name is admitted
    expect(
      await create(`fine-${suffix}`, {
        upstreamUrl: 'quay.io',
        imageRegistry: 'mirrors.example.com/team-a',
        imageDigests: { registry: `3.1.2@${DIGEST_OK}` },
        imagePullSecrets: [{ name: 'harbor-pull' }],
        priorityClassName: 'mirror-cache',
      }),
    ).toBeUndefined();
  });

  it('admits what the allowlist names, and refuses a spec changed to what it does not', async () => {
    const ok = `ok-${suffix}`;
    expect(
      await create(ok, {
        upstreamUrl: 'quay.io',
        masqueradeUrl: 'mirror-quay.io',
        imageRegistry: 'harbor.example.com',
      }),
    ).toBeUndefined();
    expect(await create(`sub-${suffix}`, { upstreamUrl: 'registry.example.com' })).toBeUndefined();
    expect(await refusal(setSpec(c, ok, { upstreamUrl: 'quay.io', masqueradeUrl: 'registry.k8s.io' }))).toContain(
      "spec.masqueradeUrl must be a host the allowlist allowedMasquerades admits (mirror-quay.io), got 'registry.k8s.io'",
    );
    expect((await getMirror(c, ok)).spec.masqueradeUrl).toBe('mirror-quay.io');
  });

  it('refuses every RegistryMirror while the allowlist ConfigMap is missing (deleting it opens nothing)', async () => {
    const saved = await c.core.readNamespacedConfigMap({ name: ALLOWLIST_NAME, namespace });
    await c.core.deleteNamespacedConfigMap({ name: ALLOWLIST_NAME, namespace });
    try {
      const message = await waitFor('a refusal without the ConfigMap', async () =>
        create(`gone-${suffix}`, { upstreamUrl: 'quay.io' }),
      );
      expect(message).toContain(`ValidatingAdmissionPolicy '${ALLOWLIST_NAME}'`);
      expect(message).toContain('no params found');
    } finally {
      await c.core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: ALLOWLIST_NAME, labels: saved.metadata?.labels }, data: saved.data ?? {} },
      });
    }
    await waitFor(
      'creates to pass again',
      async () => (await create(`back-${suffix}`, { upstreamUrl: 'quay.io' })) === undefined,
    );
  });

  it("lets a mirror written before the list was tightened keep its labels; the controller stalls it, reading the Deployment's variables", async () => {
    const old = `old-${suffix}`;
    expect(await create(old, { upstreamUrl: 'quay.io', masqueradeUrl: 'mirror-quay.io' })).toBeUndefined();
    // The platform team takes mirror-quay.io off the list (an empty key allows nothing).
    await c.core.patchNamespacedConfigMap({
      name: ALLOWLIST_NAME,
      namespace,
      body: [{ op: 'replace', path: `/data/${ALLOWLIST_KEYS.masquerades}`, value: '' }],
    });
    await waitFor(
      'the tightened list to act',
      async () =>
        (await create(`tight-${suffix}`, { upstreamUrl: 'quay.io', masqueradeUrl: 'mirror-quay.io' })) !== undefined,
    );
    // A write that leaves the spec alone (the controller's mirror=<name> label) passes.
    await c.custom.patchClusterCustomObject({
      ...GROUP,
      name: old,
      body: [{ op: 'add', path: '/metadata/labels', value: { team: 'platform' } }],
    });

    // The Deployment sets each variable from the ConfigMap key of the same list (optional: a key
    // left out is a variable left unset).
    const deployment = (await c.apps.readNamespacedDeployment({ name: 'mirror-synth-controller', namespace })).spec!
      .template.spec!.containers[0];
    const data = (await c.core.readNamespacedConfigMap({ name: ALLOWLIST_NAME, namespace })).data ?? {};
    const env: Record<string, string> = {};
    for (const v of deployment.env ?? []) {
      const ref = v.valueFrom?.configMapKeyRef;
      if (ref?.name === ALLOWLIST_NAME && ref.key in data) env[v.name] = data[ref.key]!;
    }
    expect(Object.keys(env).sort()).toEqual(Object.values(ALLOWLIST_ENV).sort());
    const saved = Object.fromEntries(Object.values(ALLOWLIST_ENV).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    let policy;
    try {
      policy = resolvePolicy({});
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(policy).toEqual({
      upstreams: ['quay.io', '*.example.com'],
      masquerades: [],
      imageRegistries: ['harbor.example.com', 'mirrors.example.com/*'],
      imageDigests: [DIGEST_OK],
      imagePullSecrets: ['harbor-pull'],
      priorityClasses: ['mirror-cache'],
    });

    const logs = new LogCapture();
    let ctl: RunningController | undefined;
    try {
      ctl = await startController({
        kubeConfig: c.kc,
        namespace,
        secondsBetweenStreams: 1,
        leaderElection: false,
        logDestination: logs,
        policy,
      });
      await ctl.running;
      const stalled = await waitFor(`mirror ${old} Stalled`, async () => {
        const m = await getMirror(c, old);
        return condition(m, 'Stalled')?.status === 'True' ? condition(m, 'Stalled') : undefined;
      });
      expect(stalled).toMatchObject({ reason: 'NotAllowed' });
      expect(stalled.message).toBe(
        `spec.masqueradeUrl must be a host the allowlist allowedMasquerades admits (none), got 'mirror-quay.io'. ` +
          `Change the RegistryMirror, or ask the platform team to extend the allowlist (ConfigMap ${namespace}/${ALLOWLIST_NAME}).`,
      );
      // Nothing of it was applied; a mirror the list still allows was.
      expect(
        (await c.apps.listNamespacedStatefulSet({ namespace, labelSelector: `mirror=${old}` })).items,
      ).toHaveLength(0);
      await waitFor(
        `the children of sub-${suffix}`,
        async () =>
          (await c.apps.listNamespacedStatefulSet({ namespace, labelSelector: `mirror=sub-${suffix}` })).items
            .length === 1,
      );
    } finally {
      await ctl?.stop();
    }
  });
});
