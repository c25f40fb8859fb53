// The harness itself: the shared control plane serves real API calls, its garbage collector
// acts on ownerReferences, and its kube-apiserver can be stopped and started again.
import { randomBytes } from 'node:crypto';

import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { apiServerRemote } from '../support/components/control-plane.js';

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfig'));
const core = kc.makeApiClient(CoreV1Api);
const namespace = `control-plane-${randomBytes(4).toString('hex')}`;

async function isGone(name: string): Promise<boolean> {
  try {
    await core.readNamespacedConfigMap({ name, namespace });
    return false;
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return true;
    throw err;
  }
}

describe('control plane', () => {
  beforeAll(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('stores and reads back a ConfigMap', async () => {
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'hello' }, data: { greeting: 'hi' } },
    });
    const read = await core.readNamespacedConfigMap({ name: 'hello', namespace });
    expect(read.data).toEqual({ greeting: 'hi' });
    expect(read.metadata?.uid).toBeTruthy();
  });

  it.runIf(inject('garbageCollector'))('garbage-collects an object whose owner is deleted', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace });
    await expect.poll(() => isGone('dependent'), { timeout: 30_000, interval: 250 }).toBe(true);
  });

  it.runIf(inject('ownControlPlane'))('keeps its data across a kube-apiserver restart', async () => {
    const apiServer = apiServerRemote(inject('apiServerControlUrl'));
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'durable' }, data: { a: '1' } } });

    await apiServer.stopApiServer();
    try {
      await expect(core.readNamespacedConfigMap({ name: 'durable', namespace })).rejects.toThrow();
    } finally {
      await apiServer.startApiServer();
    }

    const read = await core.readNamespacedConfigMap({ name: 'durable', namespace });
    expect(read.data).toEqual({ a: '1' });
  });
});
