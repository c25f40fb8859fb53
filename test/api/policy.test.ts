// The allowlist's object storage endpoints, and a list read from the ConfigMap as the controller
// reads it: exact host[:port] for https (AWS's regional endpoint when the spec sets none), plain
// http only by an entry written with its scheme, and a typo breaking its list rather than vanishing.
import { describe, expect, it } from 'vitest';

import {
  badEntries,
  endpointAllowed,
  governedField,
  objectStorageEndpointValue,
  policyProblems,
  readAllowlistData,
} from '../../src/api/policy.js';
import type { MirrorSpec } from '../../src/api/schema.js';

const withBucket = (s3: Record<string, unknown>): MirrorSpec => ({
  upstreamUrl: 'quay.io',
  objectStorage: { s3: { bucket: 'cache', region: 'eu-west-1', ...s3 } },
});
const problems = (spec: MirrorSpec, entries: string[]) =>
  policyProblems({ source: 'mirrors/quay.yaml', name: 'quay', spec }, { objectStorageEndpoints: entries }).map(
    (p) => `${p.field}: ${p.message}`,
  );

describe('object storage endpoints', () => {
  it('names an endpoint as its entries do: host[:port] for https, http://host[:port] for http, AWS by region', () => {
    expect(objectStorageEndpointValue({ region: 'eu-west-1' })).toBe('s3.eu-west-1.amazonaws.com');
    expect(objectStorageEndpointValue({ region: 'x', endpoint: 'https://minio.example.com:9000/' })).toBe(
      'minio.example.com:9000',
    );
    expect(objectStorageEndpointValue({ region: 'x', endpoint: 'http://seaweedfs.storage.svc:8333' })).toBe(
      'http://seaweedfs.storage.svc:8333',
    );
  });

  it('matches exactly; plain http only through an entry written http://', () => {
    expect(endpointAllowed('minio.example.com', ['minio.example.com'])).toBe(true);
    expect(endpointAllowed('minio.example.com', ['https://minio.example.com'])).toBe(true);
    expect(endpointAllowed('minio.example.com:9000', ['minio.example.com'])).toBe(false);
    expect(endpointAllowed('evil.minio.example.com', ['minio.example.com'])).toBe(false);
    expect(endpointAllowed('http://minio.example.com', ['minio.example.com'])).toBe(false);
    expect(endpointAllowed('http://minio.example.com', ['http://minio.example.com'])).toBe(true);
    expect(endpointAllowed('minio.example.com', ['http://minio.example.com'])).toBe(false);
  });

  it('refuses an endpoint the list does not name, naming the field that chose it', () => {
    expect(problems(withBucket({ endpoint: 'http://minio.example.com' }), ['minio.example.com'])).toEqual([
      "spec.objectStorage.s3.endpoint: spec.objectStorage.s3.endpoint must be an endpoint the allowlist allowedObjectStorageEndpoints admits (minio.example.com), got 'http://minio.example.com' (plain http is admitted only by an entry written http://host[:port])",
    ]);
    expect(problems(withBucket({}), ['minio.example.com'])).toEqual([
      "spec.objectStorage.s3.region: spec.objectStorage.s3.region must be an endpoint the allowlist allowedObjectStorageEndpoints admits (minio.example.com), got 's3.eu-west-1.amazonaws.com'",
    ]);
    expect(problems(withBucket({}), ['s3.eu-west-1.amazonaws.com'])).toEqual([]);
    expect(problems({ upstreamUrl: 'quay.io' }, [])).toEqual([]);
  });

  it('takes host[:port], https:// and http:// entries, nothing with a path or upper case', () => {
    expect(
      badEntries('objectStorageEndpoints', [
        'minio.example.com:9000',
        'https://a.example.com',
        'http://b.svc:8333',
        'ftp://c',
        'https://d/x',
        'Minio',
      ]),
    ).toEqual(['ftp://c', 'https://d/x', 'Minio']);
  });
});

describe('the allowlist ConfigMap, as the controller reads it', () => {
  it('reads each key present; a key with a bad entry is broken (named with the ConfigMap, key and entry), not dropped', () => {
    const read = readAllowlistData(
      { allowedUpstreams: 'quay.io, Quay.io,ghcr.io', allowedMasquerades: '', allowedPriorityClasses: 'a,b' },
      'ConfigMap kube-extra/mirror-synth-allowlist',
    );
    expect(read.lists).toEqual({ masquerades: [], priorityClasses: ['a', 'b'] });
    expect(read.broken).toEqual({
      upstreams:
        "ConfigMap kube-extra/mirror-synth-allowlist, key allowedUpstreams: 'Quay.io' is not a host[:port] or *.domain (lowercase, no scheme)",
    });
    expect(readAllowlistData(undefined, 'x')).toEqual({ lists: {}, broken: {} });
  });

  it('a broken list governs the mirrors that name its field', () => {
    expect(governedField({ upstreamUrl: 'quay.io' }, 'masquerades')).toBeUndefined();
    expect(governedField({ upstreamUrl: 'quay.io' }, 'upstreams')).toBe('spec.upstreamUrl');
    expect(governedField(withBucket({}), 'objectStorageEndpoints')).toBe('spec.objectStorage.s3.region');
  });
});
