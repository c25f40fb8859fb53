import { describe, expect, it } from 'vitest';

import { arbitrate, takenByAnotherMirror } from '../../src/controller/arbitrate.js';
import { ChildIndex } from '../../src/controller/caches.js';
import type { RegistryMirrorObject } from '../../src/controller/kube.js';

describe('the arbitrate stage', () => {
  const m = (name: string, created: string, upstreamUrl: string): RegistryMirrorObject => ({
    apiVersion: 'k8s.osp.tech/v1',
    kind: 'RegistryMirror',
    metadata: { name, creationTimestamp: new Date(created) },
    spec: { upstreamUrl },
  });

  it('stalls the younger of two mirrors configuring one node host (HostConflict)', () => {
    const all = [m('b', '2025-01-02T00:00:00Z', 'quay.io'), m('a', '2025-01-01T00:00:00Z', 'quay.io')];
    expect(arbitrate('a', all)).toBeUndefined();
    expect(arbitrate('b', all)).toMatchObject({ type: 'Stalled', reason: 'HostConflict' });
    expect(arbitrate('b', [all[0]])).toBeUndefined();
  });

  it("refuses to apply over another mirror's child, and waits for the garbage collector after it is deleted", () => {
    const child = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'registry-mirror-a' } };
    const owned = {
      kind: 'Service',
      metadata: {
        name: 'registry-mirror-a',
        ownerReferences: [
          { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', name: 'other', uid: 'u', controller: true },
        ],
      },
    };
    const known = (mirrors: RegistryMirrorObject[]) => ({
      namespace: 'kube-extra',
      children: new ChildIndex(),
      mirrors: { get: (n: string) => mirrors.find((x) => x.metadata?.name === n), list: () => mirrors },
    });
    const other = m('other', '2025-01-01T00:00:00Z', 'docker.io');
    expect(takenByAnotherMirror('a', [child], [owned], known([other]))).toMatchObject({ reason: 'NameCollision' });
    expect(takenByAnotherMirror('a', [child], [owned], known([]))).toMatchObject({ type: 'Retrying' });
    expect(takenByAnotherMirror('other', [child], [owned], known([other]))).toBeUndefined();
  });
});
