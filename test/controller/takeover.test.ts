import type { V1OwnerReference } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

import { byAge, hostConflictOf } from '../../src/controller/arbitrate.js';
import { isLegacy, type LegacyKind, legacyNamed, legacySelector, ordinal } from '../../src/controller/legacy.js';
import { takeoverPhase } from '../../src/controller/takeover.js';
import { mirrorChanged } from '../../src/controller/watches.js';

describe('takeover helpers', () => {
  const legacy = { app: 'docker-registry', mirror: 'quay' };
  const mirrorRef = { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', name: 'quay', uid: 'u' };
  const obj = (name: string, labels: Record<string, string> = legacy, ownerReferences?: V1OwnerReference[]) => ({
    metadata: { name, labels, ...(ownerReferences ? { ownerReferences } : {}) },
  });

  it("recognises the original operator's objects by their labels and names, and only those", () => {
    expect(isLegacy('StatefulSet', obj('registry-mirror-quay'), 'quay')).toBe(true);
    expect(isLegacy('StatefulSet', obj('registry-mirror-quay', { ...legacy, mirror: 'other' }), 'quay')).toBe(false);
    expect(
      isLegacy(
        'StatefulSet',
        obj('registry-mirror-quay', { ...legacy, 'app.kubernetes.io/managed-by': 'mirror-synth' }),
        'quay',
      ),
    ).toBe(false);
    expect(isLegacy('StatefulSet', obj('registry-mirror-quay', { mirror: 'quay' }), 'quay')).toBe(false);
    expect(isLegacy('StatefulSet', undefined, 'quay')).toBe(false);
    expect(legacySelector('quay')).toBe('app=docker-registry,mirror=quay');
  });

  it('knows the names mirror-operator gave each kind', () => {
    const yes: Array<[LegacyKind, string]> = [
      ['DaemonSet', 'registry-mirror-quay'],
      ['DaemonSet', 'registry-mirror-quay-utils'],
      ['Service', 'registry-mirror-quay'],
      ['Service', 'registry-mirror-quay-headless'],
      ['Secret', 'registry-mirror-quay-secret'],
      ['PersistentVolumeClaim', 'image-store-registry-mirror-quay-0'],
      ['PersistentVolumeClaim', 'image-store-registry-mirror-quay-12'],
      ['Pod', 'registry-mirror-quay-1'],
      ['Pod', 'registry-mirror-quay-utils-x7k2p'],
      ['Pod', 'registry-mirror-quay-x7k2p'],
    ];
    const no: Array<[LegacyKind, string]> = [
      ['StatefulSet', 'registry-mirror-quay2'],
      ['Secret', 'registry-mirror-quay-credentials'],
      ['Secret', 'registry-mirror-quay-tls'],
      ['Service', 'registry-mirror-quay-metrics'],
      // the new cache's claims (volumeClaimTemplate "cache"), and others carrying the labels
      ['PersistentVolumeClaim', 'cache-registry-mirror-quay-0'],
      ['PersistentVolumeClaim', 'data-registry-mirror-quay-0'],
      ['PersistentVolumeClaim', 'image-store-registry-mirror-quay-x'],
      ['PersistentVolumeClaim', 'image-store-registry-mirror-quay2-0'],
      ['Pod', 'registry-mirror-quay-utils'],
      ['Pod', 'registry-mirror-quay2-0'],
    ];
    for (const [kind, name] of yes) expect(legacyNamed(kind, name, 'quay'), `${kind} ${name}`).toBe(true);
    for (const [kind, name] of no) expect(legacyNamed(kind, name, 'quay'), `${kind} ${name}`).toBe(false);
    // The mirror's name is matched literally, not as a pattern.
    expect(legacyNamed('PersistentVolumeClaim', 'image-store-registry-mirror-aXb-0', 'a.b')).toBe(false);
  });

  it('never counts an object with an ownerReference the original did not set', () => {
    const claim = 'image-store-registry-mirror-quay-0';
    expect(isLegacy('PersistentVolumeClaim', obj(claim), 'quay')).toBe(true);
    // the original set non-controller references to the RegistryMirror on its objects
    expect(isLegacy('Service', obj('registry-mirror-quay', legacy, [mirrorRef]), 'quay')).toBe(true);
    // ours are controller references
    expect(isLegacy('Service', obj('registry-mirror-quay', legacy, [{ ...mirrorRef, controller: true }]), 'quay')).toBe(
      false,
    );
    // a claim a StatefulSet owns (a retention policy: ours) is not the original's
    const stsRef = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      name: 'registry-mirror-quay',
      uid: 's',
      controller: true,
    };
    expect(isLegacy('PersistentVolumeClaim', obj(claim, legacy, [stsRef]), 'quay')).toBe(false);
    // a pod of the original's StatefulSet or DaemonSet, until orphaned
    expect(isLegacy('Pod', obj('registry-mirror-quay-0', legacy, [stsRef]), 'quay')).toBe(true);
    expect(
      isLegacy(
        'Pod',
        obj('registry-mirror-quay-utils-x7k2p', legacy, [
          { ...stsRef, kind: 'DaemonSet', name: 'registry-mirror-quay-utils' },
        ]),
        'quay',
      ),
    ).toBe(true);
    expect(
      isLegacy('Pod', obj('registry-mirror-quay-0', legacy, [{ ...stsRef, kind: 'ReplicaSet', name: 'x' }]), 'quay'),
    ).toBe(false);
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

describe('the phase of a takeover', () => {
  const at = (o: Partial<Parameters<typeof takeoverPhase>[0]>) =>
    takeoverPhase({ daemonSets: 0, statefulSet: false, anyReady: false, highReady: 0, ...o });
  it('orphans the DaemonSets first, then surges and orphans the StatefulSet, then moves', () => {
    expect(at({ daemonSets: 1, statefulSet: true, anyReady: true })).toBe('orphan-daemonsets');
    expect(at({ statefulSet: true, anyReady: true })).toBe('surge');
    expect(at({ statefulSet: true, anyReady: true, highReady: 1 })).toBe('orphan-statefulset');
    expect(at({ statefulSet: true })).toBe('orphan-statefulset');
    expect(at({ anyReady: true })).toBe('move');
  });
});
