import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { CONTENT_HASH_ANNOTATION } from '../../src/api/names.js';
import { canonicalJson, contentHash, credentialsHash, withContentHash } from '../../src/controller/hash.js';
import { childKey, type LiveMeta, needsApply, planChildren, sortForApply } from '../../src/controller/plan.js';

const owner = [{ apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', name: 'quay', uid: 'u1', controller: true }];

function obj(kind: string, name: string, extra: Record<string, unknown> = {}): KubeObject {
  return withContentHash<KubeObject>(
    {
      apiVersion: kind === 'StatefulSet' || kind === 'DaemonSet' ? 'apps/v1' : 'v1',
      kind,
      metadata: {
        name,
        namespace: 'kube-extra',
        labels: { mirror: 'quay', 'app.kubernetes.io/managed-by': 'mirror-synth' },
        ownerReferences: owner,
      },
      ...extra,
    },
    kind === 'Secret' ? 'secret-uid' : undefined,
  );
}

function live(o: KubeObject, meta: Partial<LiveMeta['metadata']> = {}): LiveMeta {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: { ...o.metadata, resourceVersion: '10', generation: 1, ...meta },
  };
}

describe('hashing', () => {
  it('is independent of key order', () => {
    expect(contentHash({ a: 1, b: { c: 2, d: 3 } })).toBe(contentHash({ b: { d: 3, c: 2 }, a: 1 }));
    expect(canonicalJson({ b: 1, a: undefined })).toBe('{"b":1}');
  });

  it('puts the hash of the object itself in an annotation, and re-hashing is stable', () => {
    const a = obj('ConfigMap', 'c', { data: { x: '1' } });
    const hash = a.metadata.annotations![CONTENT_HASH_ANNOTATION];
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(withContentHash(a).metadata.annotations![CONTENT_HASH_ANNOTATION]).toBe(hash);
    expect(obj('ConfigMap', 'c', { data: { x: '2' } }).metadata.annotations![CONTENT_HASH_ANNOTATION]).not.toBe(hash);
  });

  it('hashes credentials by username and password only, keyed, without exposing them', () => {
    const data = { username: 'dXNlcg==', password: 'cGFzcw==' };
    const h = credentialsHash('uid-1', data);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(credentialsHash('uid-1', { ...data, other: 'eA==' })).toBe(h);
    expect(credentialsHash('uid-1', { ...data, password: 'cGFzczI=' })).not.toBe(h);
    expect(credentialsHash('uid-2', data)).not.toBe(h);
    expect(h).not.toBe(contentHash(data));
  });
});

describe('needsApply', () => {
  const cm = obj('ConfigMap', 'registry-mirror-quay-config', { data: { a: '1' } });
  const sts = obj('StatefulSet', 'registry-mirror-quay', { spec: { replicas: 1 } });
  const hash = (o: KubeObject) => o.metadata.annotations![CONTENT_HASH_ANNOTATION];

  it('applies a missing child or one whose content hash differs', () => {
    expect(needsApply(cm, undefined, undefined)).toBe(true);
    expect(needsApply(cm, live(cm, { annotations: { [CONTENT_HASH_ANNOTATION]: 'old' } }), undefined)).toBe(true);
    expect(needsApply(cm, live(cm, { annotations: {} }), undefined)).toBe(true);
  });

  it('skips a child whose content hash matches (after a restart there is no record)', () => {
    expect(needsApply(cm, live(cm), undefined)).toBe(false);
    expect(needsApply(sts, live(sts), undefined)).toBe(false);
  });

  it('re-applies a child someone else changed since the controller applied it', () => {
    expect(needsApply(cm, live(cm, { resourceVersion: '10' }), { hash: hash(cm), resourceVersion: '10' })).toBe(false);
    expect(needsApply(cm, live(cm, { resourceVersion: '11' }), { hash: hash(cm), resourceVersion: '10' })).toBe(true);
    // Workloads: status updates move resourceVersion but not generation.
    expect(
      needsApply(sts, live(sts, { resourceVersion: '99', generation: 1 }), { hash: hash(sts), generation: 1 }),
    ).toBe(false);
    expect(needsApply(sts, live(sts, { generation: 2 }), { hash: hash(sts), generation: 1 })).toBe(true);
  });

  it('applies a child that is being deleted', () => {
    expect(needsApply(cm, live(cm, { deletionTimestamp: '2025-01-01T00:00:00Z' }), undefined)).toBe(true);
  });
});

describe('planChildren', () => {
  const desired = [
    obj('DaemonSet', 'registry-mirror-quay'),
    obj('StatefulSet', 'registry-mirror-quay'),
    obj('Service', 'registry-mirror-quay'),
    obj('Service', 'registry-mirror-quay-headless'),
    obj('ConfigMap', 'registry-mirror-quay-config'),
    obj('ConfigMap', 'registry-mirror-quay-agent'),
  ];

  it('applies in order ConfigMaps, Services, StatefulSet, DaemonSet', () => {
    const plan = planChildren({ mirror: 'quay', desired, live: [], applied: () => undefined });
    expect(plan.apply.map(childKey)).toEqual([
      'ConfigMap/kube-extra/registry-mirror-quay-agent',
      'ConfigMap/kube-extra/registry-mirror-quay-config',
      'Service/kube-extra/registry-mirror-quay',
      'Service/kube-extra/registry-mirror-quay-headless',
      'StatefulSet/kube-extra/registry-mirror-quay',
      'DaemonSet/kube-extra/registry-mirror-quay',
    ]);
    expect(plan.prune).toEqual([]);
  });

  it('writes nothing when every child is up to date', () => {
    const plan = planChildren({ mirror: 'quay', desired, live: desired.map((d) => live(d)), applied: () => undefined });
    expect(plan.apply).toEqual([]);
    expect(plan.unchanged).toHaveLength(6);
  });

  it('prunes owned children that are no longer desired, workloads first, and leaves others alone', () => {
    const stale = live(obj('Secret', 'registry-mirror-quay-credentials'));
    const staleSts = live(obj('StatefulSet', 'registry-mirror-quay-old'));
    const foreign = {
      ...live(obj('ConfigMap', 'applied-by-gitops')),
      metadata: { ...live(obj('ConfigMap', 'x')).metadata, name: 'applied-by-gitops', ownerReferences: [] },
    };
    const plan = planChildren({
      mirror: 'quay',
      desired,
      live: [...desired.map((d) => live(d)), stale, staleSts, foreign],
      applied: () => undefined,
    });
    expect(plan.prune.map(childKey)).toEqual([
      'StatefulSet/kube-extra/registry-mirror-quay-old',
      'Secret/kube-extra/registry-mirror-quay-credentials',
    ]);
  });

  it('prunes a node agent left in the output namespace when the desired one is in the node agent namespace', () => {
    const inAgentNs = (o: KubeObject): KubeObject => ({
      ...o,
      metadata: { ...o.metadata, namespace: 'kube-extra-node' },
    });
    const moved = desired.map((d) => (d.kind === 'DaemonSet' || d.metadata.name.endsWith('-agent') ? inAgentNs(d) : d));
    const plan = planChildren({
      mirror: 'quay',
      desired: moved,
      live: [
        ...desired.map((d) => live(d)),
        ...moved.filter((d) => d.metadata.namespace === 'kube-extra-node').map((d) => live(d)),
      ],
      applied: () => undefined,
    });
    expect(plan.apply).toEqual([]);
    expect(plan.prune.map(childKey)).toEqual([
      'DaemonSet/kube-extra/registry-mirror-quay',
      'ConfigMap/kube-extra/registry-mirror-quay-agent',
    ]);
  });

  it('puts a derived Secret before everything that reads it', () => {
    expect(sortForApply([obj('StatefulSet', 's'), obj('Secret', 'c')]).map((o) => o.kind)).toEqual([
      'Secret',
      'StatefulSet',
    ]);
  });
});

describe('ChildIndex', () => {
  it('files children by their mirror label, follows relabelling and deletion', async () => {
    const { ChildIndex } = await import('../../src/controller/caches.js');
    const idx = new ChildIndex();
    const cm = live(obj('ConfigMap', 'c'));
    expect(idx.update(cm, 'add')).toBe('quay');
    expect(idx.of('quay').map(childKey)).toEqual(['ConfigMap/kube-extra/c']);
    const moved = {
      ...cm,
      metadata: { ...cm.metadata, labels: { mirror: 'ghcr', 'app.kubernetes.io/managed-by': 'mirror-synth' } },
    };
    expect(idx.update(moved, 'update')).toBe('ghcr');
    expect(idx.of('quay')).toEqual([]);
    expect(idx.mirrors()).toEqual(['ghcr']);
    const foreign = { ...cm, metadata: { ...cm.metadata, labels: { mirror: 'ghcr' } } };
    expect(idx.update(foreign, 'update')).toBeUndefined();
    expect(idx.mirrors()).toEqual([]);
    idx.update(moved, 'add');
    idx.update(moved, 'delete');
    expect(idx.mirrors()).toEqual([]);
  });
});

describe('describeError', () => {
  it('gives the API Status message, or the HTTP code, never a body or headers', async () => {
    const { describeError, isTransient } = await import('../../src/api/kube-errors.js');
    const body = JSON.stringify({ kind: 'Status', message: 'secrets "x" is forbidden', code: 403 });
    expect(
      describeError({
        code: 403,
        body,
        message: `HTTP-Code: 403\nBody: ${body}\nHeaders: {"authorization":"Bearer abc"}`,
      }),
    ).toBe('403: secrets "x" is forbidden');
    expect(describeError({ code: 404, body: '404 page not found', message: 'HTTP-Code: 404\nHeaders: {}' })).toBe(
      'HTTP 404',
    );
    expect(describeError(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toBe(
      'Error: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(isTransient({ code: 503 })).toBe(true);
    expect(isTransient({ code: 422 })).toBe(false);
    expect(isTransient(new Error('socket hang up'))).toBe(true);
  });
});
