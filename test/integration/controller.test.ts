// The controller against a real kube-apiserver: children applied by server-side apply, status
// and Events, Secrets rolling the registry pods, pruning, a steady state that writes nothing,
// failures that stall one mirror only, and no secret value in logs, Events or status.
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import {
  CONTENT_HASH_ANNOTATION,
  CREDENTIALS_HASH_ANNOTATION,
  SECRET_MIRRORS_ANNOTATION,
} from '../../src/api/names.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import {
  b64,
  children,
  clients,
  condition,
  createMirror,
  createMirrorNamespaces,
  deleteMirror,
  getMirror,
  installCrd,
  LogCapture,
  setSpec,
  waitForReady,
} from '../support/kube/cluster.js';
import { simulateReadyWorkloads } from '../support/kube/workload-status.js';
import { waitFor } from '../support/primitives/wait.js';

const c = clients(inject('kubeconfig'));
const suffix = randomBytes(3).toString('hex');
const namespace = `ctl-${suffix}`;
const name = (base: string) => `${base}-${suffix}`;
const PASSWORD = `Pw-${randomBytes(12).toString('hex')}`;
const PASSWORD2 = `Pw2-${randomBytes(12).toString('hex')}`;
const DOCKER_PASSWORD = `Dk-${randomBytes(12).toString('hex')}`;
const BUCKET_KEY = `Bk-${randomBytes(12).toString('hex')}`;
const secrets = [PASSWORD, PASSWORD2, DOCKER_PASSWORD, BUCKET_KEY];
const created: string[] = [];
const logs = new LogCapture();
let ctl: RunningController;

async function mirror(base: string, spec: Record<string, unknown>): Promise<string> {
  const n = name(base);
  created.push(n);
  await createMirror(c, n, spec, { test: suffix });
  return n;
}

async function secret(secretName: string, data: Record<string, string>, type = 'Opaque'): Promise<void> {
  // Each Secret lets the mirrors of this file that use it send it to their upstream (its opt-in annotation).
  const hosts = { private: 'registry.example.com', dockercfg: 'cfg.example.com', missing: 'missing.example.com' };
  const optIn = {
    [SECRET_MIRRORS_ANNOTATION]: Object.entries(hosts)
      .map(([m, host]) => `${name(m)}@${host}`)
      .join(','),
  };
  const body = {
    metadata: { name: secretName, namespace, annotations: optIn },
    type,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
  try {
    await c.core.replaceNamespacedSecret({ name: secretName, namespace, body });
  } catch {
    await c.core.createNamespacedSecret({ namespace, body });
  }
}

const writes = async (): Promise<number> =>
  (await ctl.metrics.writesTotal.get()).values.reduce((s, v) => s + v.value, 0);

async function idle(): Promise<void> {
  await waitFor('the controller to be idle', () => Promise.resolve(ctl.idle()));
}

function statefulSetOf(kids: Map<string, Record<string, any>>, n: string) {
  return kids.get(`StatefulSet/registry-mirror-${n}`)!;
}

let stopSimulating: (() => Promise<void>) | undefined;

beforeAll(async () => {
  await installCrd(c);
  await createMirrorNamespaces(c, namespace);
  // No kubelet in the test control plane: the workloads' status is patched to report ready pods.
  stopSimulating = simulateReadyWorkloads(c.kc, namespace);
  ctl = await startController({
    kubeConfig: c.kc,
    namespace,
    secondsBetweenStreams: 1,
    metricsPort: 0,
    leaderElection: true,
    leaseName: `mirror-synth-${suffix}`,
    resyncSeconds: 3600,
    logLevel: 'debug',
    logDestination: logs,
    workers: 4,
  });
  await ctl.running;
});

afterAll(async () => {
  await stopSimulating?.();
  await ctl?.stop();
  for (const n of created) await deleteMirror(c, n);
  await c.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('controller', () => {
  it('applies every child of a new mirror, owned by it, and reports Ready for its generation', async () => {
    const n = await mirror('quay', { upstreamUrl: 'quay.io' });
    const m = await waitForReady(c, n);
    expect(condition(m, 'Stalled')).toMatchObject({ status: 'False' });
    expect(condition(m, 'Reconciling')).toMatchObject({ status: 'False' });
    const kids = await children(c, namespace, n);
    expect([...kids.keys()].sort()).toEqual(
      [
        `ConfigMap/registry-mirror-${n}-agent`,
        `ConfigMap/registry-mirror-${n}-config`,
        `DaemonSet/registry-mirror-${n}`,
        `Service/registry-mirror-${n}`,
        `Service/registry-mirror-${n}-headless`,
        `StatefulSet/registry-mirror-${n}`,
      ].sort(),
    );
    for (const kid of kids.values()) {
      expect(kid.metadata.ownerReferences).toEqual([
        {
          apiVersion: 'k8s.osp.tech/v1',
          kind: 'RegistryMirror',
          name: n,
          uid: m.metadata!.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(kid.metadata.annotations?.[CONTENT_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
      expect((kid.metadata.managedFields as Array<{ manager: string }>).map((f) => f.manager)).toContain(
        'mirror-synth',
      );
    }
    // The Event is recorded after the status write, without holding the worker up: wait for it.
    const events = await waitFor(`the Reconciled Event of ${n}`, async () => {
      const list = await c.core.listNamespacedEvent({
        namespace: 'default',
        fieldSelector: `involvedObject.name=${n}`,
      });
      return list.items.some((e) => e.reason === 'Reconciled') ? list : undefined;
    });
    expect(events.items.map((e) => e.reason)).toContain('Reconciled');
  });

  it('follows a change of upstreamUrl', async () => {
    const n = await mirror('ghcr', { upstreamUrl: 'ghcr.io' });
    await waitForReady(c, n);
    const before = (await children(c, namespace, n)).get(`ConfigMap/registry-mirror-${n}-config`)!;
    expect(JSON.stringify(before.data)).toContain('https://ghcr.io');
    await setSpec(c, n, { upstreamUrl: 'registry.k8s.io' });
    const m = await waitForReady(c, n);
    expect(m.metadata!.generation).toBe(2);
    const after = (await children(c, namespace, n)).get(`ConfigMap/registry-mirror-${n}-config`)!;
    expect(JSON.stringify(after.data)).toContain('https://registry.k8s.io');
  });

  it('reads credentials from a Secret and rolls the registry pods when its content or the reference changes', async () => {
    await secret(`creds-a-${suffix}`, { username: 'bot', password: PASSWORD });
    await secret(`creds-b-${suffix}`, { username: 'bot2', password: PASSWORD2 });
    const n = await mirror('private', { upstreamUrl: 'registry.example.com', credentialsSecret: `creds-a-${suffix}` });
    await waitForReady(c, n);
    const sts1 = statefulSetOf(await children(c, namespace, n), n);
    const env = JSON.stringify(sts1.spec.template.spec);
    expect(env).toContain(`creds-a-${suffix}`);
    const hash1 = sts1.spec.template.metadata.annotations[CREDENTIALS_HASH_ANNOTATION];
    expect(hash1).toMatch(/^[0-9a-f]{64}$/);

    await secret(`creds-a-${suffix}`, { username: 'bot', password: `${PASSWORD}-rotated` });
    const hash2 = await waitFor('the credentials hash to change after the Secret changed', async () => {
      const h = statefulSetOf(await children(c, namespace, n), n).spec.template.metadata.annotations[
        CREDENTIALS_HASH_ANNOTATION
      ];
      return h !== hash1 ? h : undefined;
    });

    await setSpec(c, n, { upstreamUrl: 'registry.example.com', credentialsSecret: `creds-b-${suffix}` });
    await waitForReady(c, n);
    const sts3 = statefulSetOf(await children(c, namespace, n), n);
    expect(JSON.stringify(sts3.spec.template.spec)).toContain(`creds-b-${suffix}`);
    expect(sts3.spec.template.metadata.annotations[CREDENTIALS_HASH_ANNOTATION]).not.toBe(hash2);
  });

  it("takes a bucket's key from a Secret only once it opts in, and rolls the registry pods when it changes", async () => {
    const secretName = `bucket-${suffix}`;
    const data = (key: string) => ({ accessKey: b64('AKBUCKET'), secretKey: b64(key) });
    // no opt-in annotation yet
    await c.core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: secretName, namespace }, data: data(BUCKET_KEY) },
    });
    const n = await mirror('bucket', {
      upstreamUrl: 'bucket.example.com',
      replicas: 2,
      objectStorage: {
        s3: {
          bucket: 'mirror-cache',
          region: 'us-east-1',
          endpoint: 'http://s3.example.com:8333',
          credentialsSecret: secretName,
        },
      },
    });
    const stalled = await waitFor(`mirror ${n} Stalled`, async () => {
      const s = condition(await getMirror(c, n), 'Stalled');
      return s?.status === 'True' ? s : undefined;
    });
    expect(stalled.reason).toBe('ObjectStorageSecretNotOptedIn');
    expect(stalled.message).toContain(
      `annotate secret ${secretName} --overwrite ${SECRET_MIRRORS_ANNOTATION}=${n}@s3.example.com:8333`,
    );
    expect(stalled.message).toContain('http://s3.example.com:8333');
    expect(stalled.message).not.toContain(BUCKET_KEY);

    await c.core.patchNamespacedSecret({
      name: secretName,
      namespace,
      body: [
        {
          op: 'add',
          path: '/metadata/annotations',
          value: { [SECRET_MIRRORS_ANNOTATION]: `${n}@s3.example.com:8333` },
        },
      ],
    });
    await waitForReady(c, n);
    const sts = statefulSetOf(await children(c, namespace, n), n);
    const registry = sts.spec.template.spec.containers.find((x: { name: string }) => x.name === 'registry');
    expect(registry.env).toContainEqual({
      name: 'AWS_SECRET_ACCESS_KEY',
      valueFrom: { secretKeyRef: { name: secretName, key: 'secretKey' } },
    });
    const hash1 = sts.spec.template.metadata.annotations[CREDENTIALS_HASH_ANNOTATION];
    expect(hash1).toMatch(/^[0-9a-f]{64}$/);

    await c.core.patchNamespacedSecret({
      name: secretName,
      namespace,
      body: [{ op: 'replace', path: '/data/secretKey', value: b64(`${BUCKET_KEY}-rotated`) }],
    });
    await waitFor('the credentials hash to change after the bucket Secret changed', async () => {
      const h = statefulSetOf(await children(c, namespace, n), n).spec.template.metadata.annotations[
        CREDENTIALS_HASH_ANNOTATION
      ];
      return h !== hash1 ? h : undefined;
    });
  });

  it('derives a Secret from a dockerconfigjson Secret and prunes it when no longer needed', async () => {
    const cfg = JSON.stringify({ auths: { 'https://cfg.example.com': { auth: b64(`robot:${DOCKER_PASSWORD}`) } } });
    await secret(`pull-${suffix}`, { '.dockerconfigjson': cfg }, 'kubernetes.io/dockerconfigjson');
    const n = await mirror('dockercfg', { upstreamUrl: 'cfg.example.com', credentialsSecret: `pull-${suffix}` });
    await waitForReady(c, n);
    const derivedName = `registry-mirror-${n}-credentials`;
    const derived = await c.core.readNamespacedSecret({ name: derivedName, namespace });
    expect(Buffer.from(derived.data!.password, 'base64').toString()).toBe(DOCKER_PASSWORD);
    expect(derived.metadata!.ownerReferences![0].name).toBe(n);
    // the cache pod mounts it for the credential helper
    expect(JSON.stringify(statefulSetOf(await children(c, namespace, n), n).spec.template.spec.volumes)).toContain(
      derivedName,
    );

    await secret(`creds-a-${suffix}`, { username: 'bot', password: PASSWORD });
    await setSpec(c, n, { upstreamUrl: 'cfg.example.com', credentialsSecret: `creds-a-${suffix}` });
    await waitForReady(c, n);
    await waitFor(
      'the derived Secret to be pruned',
      async () => !(await children(c, namespace, n)).has(`Secret/${derivedName}`),
    );
  });

  it('stalls a mirror whose Secret is missing, or whose node host another mirror configures, while another mirror still reconciles', async () => {
    const missing = await mirror('missing', {
      upstreamUrl: 'missing.example.com',
      credentialsSecret: `nope-${suffix}`,
    });
    const good = await mirror('good', { upstreamUrl: 'docker.io' });
    await waitForReady(c, good);
    // index.docker.io is Docker Hub's docker.io on the nodes: the later mirror stalls, naming the earlier one.
    const bad = await mirror('conflict', { upstreamUrl: 'index.docker.io' });

    const m1 = await waitForReady(c, missing, 'False');
    expect(condition(m1, 'Stalled')).toMatchObject({ status: 'True', reason: 'CredentialsSecretNotFound' });
    expect(condition(m1, 'Stalled')!.message).toContain(
      `Secret ${namespace}/nope-${suffix} (spec.credentialsSecret) does not exist`,
    );
    const m2 = await waitForReady(c, bad, 'False');
    expect(condition(m2, 'Stalled')).toMatchObject({ status: 'True', reason: 'HostConflict' });
    expect(condition(m2, 'Stalled')!.message).toContain(`the older mirror '${good}' already configures`);
    expect((await children(c, namespace, bad)).size).toBe(0);
    // Recorded after the status write, without holding the worker up: wait for it.
    const warnings = await waitFor(`the CredentialsSecretNotFound Event of ${missing}`, async () => {
      const list = await c.core.listNamespacedEvent({
        namespace: 'default',
        fieldSelector: `involvedObject.name=${missing},type=Warning`,
      });
      return list.items.some((e) => e.reason === 'CredentialsSecretNotFound') ? list : undefined;
    });
    expect(warnings.items.map((e) => e.reason)).toContain('CredentialsSecretNotFound');

    // Creating the Secret is enough: no change to the mirror is needed.
    await secret(`nope-${suffix}`, { username: 'late', password: PASSWORD });
    const fixed = await waitForReady(c, missing);
    expect(condition(fixed, 'Stalled')).toMatchObject({ status: 'False' });
    // Deleting the older mirror frees the host: the later one takes it without being touched.
    await deleteMirror(c, good);
    await waitForReady(c, bad);
    created.splice(created.indexOf(good), 1);
  });

  it('repairs a child deleted by hand', async () => {
    const n = await mirror('repair', { upstreamUrl: 'repair.example.com' });
    await waitForReady(c, n);
    await c.core.deleteNamespacedService({ name: `registry-mirror-${n}`, namespace });
    await waitFor('the Service to be recreated', async () =>
      (await children(c, namespace, n)).has(`Service/registry-mirror-${n}`),
    );
  });

  it('writes nothing and changes no resourceVersion over repeated resyncs', async () => {
    await idle();
    const ours = created.filter((n) => !n.startsWith('missing'));
    const snapshot = async () => {
      const out: Record<string, string> = {};
      for (const n of ours) {
        out[`mirror/${n}`] = (await getMirror(c, n)).metadata!.resourceVersion!;
        for (const [k, v] of await children(c, namespace, n)) out[`${n}/${k}`] = v.metadata.resourceVersion as string;
      }
      return out;
    };
    // Let the StatefulSet/DaemonSet controllers (if any) settle first.
    await new Promise((r) => setTimeout(r, 1000));
    const before = await snapshot();
    const writesBefore = await writes();
    for (let i = 0; i < 5; i++) {
      ctl.resync();
      await idle();
    }
    expect(await writes()).toBe(writesBefore);
    const after = await snapshot();
    for (const [k, rv] of Object.entries(before)) {
      if (k.includes('StatefulSet') || k.includes('DaemonSet')) continue; // status updates by kube-controller-manager
      expect(after[k], k).toBe(rv);
    }
  });

  it('removes the children of a deleted mirror', async () => {
    const n = await mirror('deleteme', { upstreamUrl: 'deleteme.example.com' });
    await waitForReady(c, n);
    expect((await children(c, namespace, n)).size).toBe(6);
    await deleteMirror(c, n);
    await waitFor('children to be removed', async () => (await children(c, namespace, n)).size === 0, 60_000);
  });

  it('serves health, readiness and metrics', async () => {
    const base = `http://127.0.0.1:${ctl.metricsPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('mirror_synth_reconcile_total{result="success"}');
    expect(metrics).toContain('mirror_synth_apply_duration_seconds_bucket');
    expect(metrics).toMatch(/mirror_synth_watched_mirrors \d+/);
    expect(metrics).toContain('mirror_synth_leader 1');
  });

  it('never writes a secret value to logs, Events or status', async () => {
    const forbidden = secrets.flatMap((s) => [s, b64(s), b64(`robot:${s}`)]);
    const texts = [logs.text()];
    const events = await c.core.listNamespacedEvent({ namespace: 'default' });
    texts.push(JSON.stringify(events.items.map((e) => [e.reason, e.message])));
    for (const n of created) texts.push(JSON.stringify((await getMirror(c, n).catch(() => ({ status: {} }))).status));
    for (const t of texts) for (const f of forbidden) expect(t.includes(f)).toBe(false);
    expect(logs.lines.length).toBeGreaterThan(10);
    for (const line of logs.lines) expect(() => JSON.parse(line)).not.toThrow();
  });
});
