// The allowlist on the API server: `controller-manifests --allowed-*` ships a ConfigMap and a
// ValidatingAdmissionPolicy with its binding, applied here to a kube-apiserver of this file's own
// (the policy is cluster-wide: it must not refuse other files' mirrors). A RegistryMirror naming a
// host the ConfigMap does not allow is refused with the policy's message, as `kubectl create`
// prints it; one it allows is admitted; and the controller, watching the same ConfigMap, stalls a
// mirror when the list is tightened and reconciles it when loosened, without a restart; a typo in a
// list refuses what it governs (fail closed) with a message naming the ConfigMap, key and entry.
import { randomBytes } from 'node:crypto';

import { ApiException, type KubernetesObject, loadYaml, PatchStrategy } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { KubeObject } from '../../src/api/kube-object.js';
import { ALLOWLIST_KEYS, ALLOWLIST_NAME } from '../../src/api/names.js';
import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { startController } from '../../src/controller/controller.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import {
  type Clients,
  clients,
  condition,
  getMirror,
  GROUP,
  installCrd,
  LogCapture,
  setSpec,
} from '../support/kube/cluster.js';
import { waitFor } from '../support/primitives/wait.js';

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
        allowedObjectStorageEndpoints: 'minio.example.com,http://seaweedfs.storage.svc:8333',
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

  it('refuses an object storage endpoint the list does not name, and plain http unless its entry is written http://', async () => {
    const bucket = (s3: Record<string, unknown>) => ({
      upstreamUrl: 'quay.io',
      objectStorage: { s3: { bucket: 'cache', region: 'eu-west-1', ...s3 } },
    });
    const shown = 'minio.example.com,http://seaweedfs.storage.svc:8333';
    expect(await create(`bad-${suffix}`, bucket({ endpoint: 'http://minio.example.com' }))).toBe(
      policyMessage(
        `spec.objectStorage.s3.endpoint must be an endpoint the allowlist allowedObjectStorageEndpoints admits (${shown}), got 'http://minio.example.com' (plain http is admitted only by an entry written http://host[:port])`,
      ),
    );
    expect(await create(`bad-${suffix}`, bucket({ endpoint: 'https://minio.example.com:9000' }))).toBe(
      policyMessage(
        `spec.objectStorage.s3.endpoint must be an endpoint the allowlist allowedObjectStorageEndpoints admits (${shown}), got 'minio.example.com:9000'`,
      ),
    );
    // No endpoint: AWS S3's regional endpoint, s3.<region>.amazonaws.com.
    expect(await create(`bad-${suffix}`, bucket({}))).toBe(
      policyMessage(
        `spec.objectStorage.s3.region must be an endpoint the allowlist allowedObjectStorageEndpoints admits (${shown}), got 's3.eu-west-1.amazonaws.com'`,
      ),
    );
    expect(created).not.toContain(`bad-${suffix}`);
    expect(await create(`s3-${suffix}`, bucket({ endpoint: 'https://minio.example.com/' }))).toBeUndefined();
    expect(await create(`s3http-${suffix}`, bucket({ endpoint: 'http://seaweedfs.storage.svc:8333' }))).toBeUndefined();
  });

  it('the running controller follows the ConfigMap: a list tightened or loosened takes effect without a restart', async () => {
    const old = `old-${suffix}`;
    // A registry host of its own: the mirrors above hold quay.io and mirror-quay.io (HostConflict).
    expect(await create(old, { upstreamUrl: 'live.example.com' })).toBeUndefined();
    const logs = new LogCapture();
    // As the Deployment runs it: no list set by flag or variable, so the ConfigMap governs them all.
    const ctl = await startController({
      kubeConfig: c.kc,
      namespace,
      secondsBetweenStreams: 1,
      leaderElection: false,
      logDestination: logs,
    });
    try {
      await ctl.running;
      const statefulSets = async (mirror: string) =>
        (await c.apps.listNamespacedStatefulSet({ namespace, labelSelector: `mirror=${mirror}` })).items.length;
      await waitFor(`the children of ${old}`, async () => (await statefulSets(old)) === 1);

      // The platform team takes *.example.com off the list.
      await setAllowlistKey(ALLOWLIST_KEYS.upstreams, 'quay.io');
      const stalled = await waitForStalled(old, 'NotAllowed');
      expect(stalled.message).toBe(
        `spec.upstreamUrl must be a host the allowlist allowedUpstreams admits (quay.io), got 'live.example.com'. ` +
          `Change the RegistryMirror, or ask the platform team to extend the allowlist (ConfigMap ${namespace}/${ALLOWLIST_NAME}).`,
      );
      // A write that leaves the spec alone (the controller's mirror=<name> label) passes the admission policy.
      await c.custom.patchClusterCustomObject({
        ...GROUP,
        name: old,
        body: [{ op: 'add', path: '/metadata/labels/team', value: 'platform' }],
      });

      // Put back, the mirror is allowed again and reconciled, still without a restart.
      await setAllowlistKey(ALLOWLIST_KEYS.upstreams, 'quay.io,*.example.com');
      await waitFor(`${old} allowed again`, async () => {
        const m = await getMirror(c, old);
        return condition(m, 'Stalled')?.status === 'False' && condition(m, 'Ready') !== undefined;
      });
      expect(ctl.health()).toBeUndefined();
    } finally {
      await ctl.stop();
    }
  });

  it('a bad entry refuses the mirrors its list governs, names ConfigMap, key and entry, and does not stop the controller', async () => {
    const name = `typo-${suffix}`;
    expect(await create(name, { upstreamUrl: 'typo.example.com' })).toBeUndefined();
    const logs = new LogCapture();
    const ctl = await startController({
      kubeConfig: c.kc,
      namespace,
      secondsBetweenStreams: 1,
      leaderElection: false,
      logDestination: logs,
      metricsPort: 0,
    });
    const expected =
      `ConfigMap ${namespace}/${ALLOWLIST_NAME}, key allowedUpstreams: 'https://quay.io' is not a host[:port] or *.domain (lowercase, no scheme)` +
      '. Every RegistryMirror this list governs is refused until the platform team fixes the entry (a list with a typo fails closed).';
    try {
      await ctl.running;
      await waitFor(`${name} applied`, async () => condition(await getMirror(c, name), 'Stalled')?.status === 'False');
      await setAllowlistKey(ALLOWLIST_KEYS.upstreams, 'https://quay.io,*.example.com');
      const stalled = await waitForStalled(name, 'InvalidAllowlist');
      expect(stalled.message).toBe(expected);
      const events = await waitFor(`the InvalidAllowlist Event of ${name}`, async () => {
        const list = await c.core.listNamespacedEvent({
          namespace: 'default',
          fieldSelector: `involvedObject.name=${name}`,
        });
        return list.items.find((e) => e.reason === 'InvalidAllowlist');
      });
      expect(events.message).toBe(expected);
      expect(logs.text()).toContain(`'https://quay.io' is not a host[:port]`);
      // The controller runs on: /healthz answers 200.
      const healthz = await fetch(`http://127.0.0.1:${ctl.metricsPort}/healthz`);
      expect(healthz.status).toBe(200);
      // The admission policy, reading the same key, refuses in the same words.
      // (once its informer holds the change: by now it does, but wait rather than race it).
      const refused = await waitFor('a refusal', async () => create(`bad-${suffix}`, { upstreamUrl: 'quay.io' }));
      expect(refused).toBe(policyMessage(expected));

      await setAllowlistKey(ALLOWLIST_KEYS.upstreams, 'quay.io,*.example.com');
      await waitFor(
        `${name} recovered`,
        async () => condition(await getMirror(c, name), 'Stalled')?.status === 'False',
      );
    } finally {
      await ctl.stop();
    }
  });
});

async function setAllowlistKey(key: string, value: string): Promise<void> {
  await c.core.patchNamespacedConfigMap({
    name: ALLOWLIST_NAME,
    namespace,
    body: [{ op: 'replace', path: `/data/${key}`, value }],
  });
}

async function waitForStalled(name: string, reason: string) {
  return waitFor(`mirror ${name} Stalled with ${reason}`, async () => {
    const stalled = condition(await getMirror(c, name), 'Stalled');
    return stalled?.status === 'True' && stalled.reason === reason ? stalled : undefined;
  });
}
