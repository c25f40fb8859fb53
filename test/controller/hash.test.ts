import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { CONTENT_HASH_ANNOTATION } from '../../src/api/names.js';
import { canonicalJson, withContentHash } from '../../src/controller/hash.js';

const secret: KubeObject = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'registry-mirror-hub-credentials', namespace: 'kube-extra' },
  type: 'Opaque',
  data: { username: 'Ym90', password: 'aHVudGVyMg==' },
};

describe('content hashes', () => {
  it("never annotates a Secret with a plain sha256 of its data (offline guessing): it is keyed by the source Secret's uid", () => {
    const hashed = withContentHash(secret, 'uid-of-the-referenced-secret');
    const annotation = hashed.metadata.annotations?.[CONTENT_HASH_ANNOTATION];
    expect(annotation).toMatch(/^[0-9a-f]{64}$/);
    const unkeyed = createHash('sha256').update(canonicalJson(secret)).digest('hex');
    expect(annotation).not.toBe(unkeyed);
    // Another key, another hash: nobody without the uid can recompute it.
    expect(withContentHash(secret, 'another-uid').metadata.annotations?.[CONTENT_HASH_ANNOTATION]).not.toBe(annotation);
    // Same input, same hash (a no-op resync writes nothing).
    expect(withContentHash(secret, 'uid-of-the-referenced-secret')).toEqual(hashed);
  });

  it('refuses to hash a Secret without a key', () => {
    expect(() => withContentHash(secret)).toThrow(/needs a key/);
  });

  it('hashes other kinds with sha256 of their canonical JSON', () => {
    const cm: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: 'b' } };
    const unkeyed = createHash('sha256').update(canonicalJson(cm)).digest('hex');
    expect(withContentHash(cm).metadata.annotations?.[CONTENT_HASH_ANNOTATION]).toBe(unkeyed);
  });
});
