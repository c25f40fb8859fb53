import { pino } from 'pino';
import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { CONTENT_HASH_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, MIRROR_LABEL } from '../../src/api/names.js';
import { ChildApplier } from '../../src/controller/apply.js';
import { ChildIndex } from '../../src/controller/caches.js';
import type { KubeClient, RegistryMirrorObject } from '../../src/controller/kube.js';
import { createMetrics } from '../../src/controller/metrics.js';
import type { LiveMeta } from '../../src/controller/plan.js';
import type { Takeover } from '../../src/controller/takeover.js';

describe('the apply stage', () => {
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY, [MIRROR_LABEL]: 'quay' };
  const ownerReferences = [
    { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', name: 'quay', uid: 'u', controller: true },
  ];
  const child = (kind: string, name: string, hash: string): KubeObject => ({
    apiVersion: 'v1',
    kind,
    metadata: { name, namespace: 'ns', labels, ownerReferences, annotations: { [CONTENT_HASH_ANNOTATION]: hash } },
  });
  const mirror: RegistryMirrorObject = { metadata: { name: 'quay', uid: 'u' }, spec: { upstreamUrl: 'quay.io' } };
  const log = pino({ level: 'silent' });

  function applier(failDelete = false) {
    const calls: string[] = [];
    const client = {
      apply: (o: KubeObject, force: boolean) => {
        calls.push(`apply ${o.kind}/${o.metadata.name}${force ? ' force' : ''}`);
        return Promise.resolve({ metadata: { resourceVersion: '7' } });
      },
      delete: (o: LiveMeta) => {
        calls.push(`delete ${o.kind}/${o.metadata.name}`);
        return failDelete ? Promise.reject(new Error('boom')) : Promise.resolve();
      },
    } as unknown as KubeClient;
    const a = new ChildApplier({
      client,
      namespace: 'ns',
      metrics: createMetrics({ defaultMetrics: false }),
      children: new ChildIndex(),
      mirrors: { get: () => undefined, list: () => [] },
      takeover: {} as Takeover,
    });
    return { a, calls };
  }

  it('applies what changed, knows the echo of its own write, and prunes what is no longer desired', async () => {
    const { a, calls } = applier();
    const cm = child('ConfigMap', 'quay-config', 'h1');
    const stale = {
      ...child('Service', 'quay-old', 'h0'),
      metadata: { ...child('Service', 'quay-old', 'h0').metadata },
    };
    const plan = a.plan('quay', [cm], [stale]);
    expect(await a.converge(mirror, plan, [stale as LiveMeta], log)).toBeUndefined();
    // Not live and ours yet: applied without force, so someone else's object of that name is a 409.
    expect(calls).toEqual(['apply ConfigMap/quay-config', 'delete Service/quay-old']);
    const echo = { ...cm, metadata: { ...cm.metadata, resourceVersion: '7' } } as LiveMeta;
    expect(a.isOwnWrite(echo)).toBe(true);
    expect(a.isOwnWrite({ ...echo, metadata: { ...echo.metadata, resourceVersion: '8' } })).toBe(false);
    // Unchanged content is not written again.
    expect(a.plan('quay', [cm], [echo]).apply).toEqual([]);
  });

  it('retries when a prune fails (PruneFailed)', async () => {
    const { a } = applier(true);
    const stale = child('Service', 'quay-old', 'h0') as LiveMeta;
    expect(await a.converge(mirror, a.plan('quay', [], [stale]), [stale], log)).toMatchObject({
      type: 'Retrying',
      reason: 'PruneFailed',
    });
  });
});
