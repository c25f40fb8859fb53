import { describe, expect, it } from 'vitest';

import { byAge, hostConflictOf } from '../../src/controller/reconciler.js';
import { isLegacy, legacySelector, ordinal } from '../../src/controller/takeover.js';
import { mirrorChanged } from '../../src/controller/watches.js';

describe('takeover helpers', () => {
  it("recognises the original operator's objects by their labels, and only those", () => {
    expect(isLegacy({ metadata: { labels: { app: 'docker-registry', mirror: 'quay' } } }, 'quay')).toBe(true);
    expect(isLegacy({ metadata: { labels: { app: 'docker-registry', mirror: 'other' } } }, 'quay')).toBe(false);
    expect(
      isLegacy(
        {
          metadata: {
            labels: { app: 'docker-registry', mirror: 'quay', 'app.kubernetes.io/managed-by': 'mirror-synth' },
          },
        },
        'quay',
      ),
    ).toBe(false);
    expect(isLegacy({ metadata: { labels: { mirror: 'quay' } } }, 'quay')).toBe(false);
    expect(legacySelector('quay')).toBe('app=docker-registry,mirror=quay');
  });

  it('reads StatefulSet ordinals from pod names', () => {
    expect(ordinal('registry-mirror-quay-1', 'registry-mirror-quay')).toBe(1);
    expect(ordinal('registry-mirror-quay-utils-abcde', 'registry-mirror-quay')).toBeUndefined();
    expect(ordinal('registry-mirror-quay2-0', 'registry-mirror-quay')).toBeUndefined();
  });
});

describe('node-host conflicts in the controller', () => {
  const m = (name: string, created: string, spec: Record<string, string>) => ({
    apiVersion: 'k8s.osp.tech/v1',
    kind: 'RegistryMirror',
    metadata: { name, creationTimestamp: new Date(created) },
    spec,
  });
  const hub = m('hub', '2025-01-01T00:00:00Z', { upstreamUrl: 'docker.io' });
  const index = m('index', '2025-01-02T00:00:00Z', { upstreamUrl: 'index.docker.io' });
  const alias = m('alias', '2025-01-03T00:00:00Z', { upstreamUrl: 'quay.io', masqueradeUrl: 'docker.io' });

  it('stalls the later mirror (by creationTimestamp, then name), naming the other', () => {
    const all = [alias, index, hub];
    expect(hostConflictOf('hub', all)).toBeUndefined();
    expect(hostConflictOf('index', all)).toMatchObject({ other: 'hub', host: 'docker.io', field: 'spec.upstreamUrl' });
    expect(hostConflictOf('alias', all)).toMatchObject({ other: 'hub', field: 'spec.masqueradeUrl' });
  });

  it('breaks a creationTimestamp tie by name', () => {
    const a = m('a', '2025-01-01T00:00:00Z', { upstreamUrl: 'quay.io' });
    const b = m('b', '2025-01-01T00:00:00Z', { upstreamUrl: 'quay.io' });
    expect([b, a].sort(byAge).map((x) => x.metadata.name)).toEqual(['a', 'b']);
    expect(hostConflictOf('b', [b, a])).toMatchObject({ other: 'a' });
    expect(hostConflictOf('a', [b, a])).toBeUndefined();
  });

  it('within one second, keeps the hosts with the mirror that already holds them', () => {
    const serving = {
      ...m('zz-serving', '2025-01-01T00:00:00Z', { upstreamUrl: 'quay.io' }),
      status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'Serving' }] },
    } as typeof hub;
    const newer = m('aa-new', '2025-01-01T00:00:00Z', { upstreamUrl: 'quay.io' });
    expect(hostConflictOf('aa-new', [newer, serving])).toMatchObject({ other: 'zz-serving' });
    expect(hostConflictOf('zz-serving', [newer, serving])).toBeUndefined();
    // a mirror stalled for the conflict does not hold the hosts
    const stalled = {
      ...newer,
      status: { observedGeneration: 1, conditions: [{ type: 'Stalled', status: 'True', reason: 'HostConflict' }] },
    } as typeof hub;
    expect(hostConflictOf('aa-new', [stalled, serving])).toMatchObject({ other: 'zz-serving' });
  });
});

describe('which RegistryMirror updates queue a reconcile', () => {
  const base = { metadata: { name: 'quay', uid: 'u', generation: 1, labels: { mirror: 'quay' } } };
  it('ignores a status-only update (such as its own status write)', () => {
    expect(mirrorChanged({ ...base, status: { observedGeneration: 1 } }, base)).toBe(false);
  });
  it('acts on a spec change, a deletion, a lost label, or an unknown previous state', () => {
    expect(mirrorChanged({ metadata: { ...base.metadata, generation: 2 } }, base)).toBe(true);
    expect(mirrorChanged({ metadata: { ...base.metadata, deletionTimestamp: new Date() } }, base)).toBe(true);
    expect(mirrorChanged({ metadata: { ...base.metadata, labels: {} } }, base)).toBe(true);
    expect(mirrorChanged(base, undefined)).toBe(true);
  });
});
