import { describe, expect, it } from 'vitest';

import { SpecError } from '../../src/api/errors.js';
import { parseMirrorResource } from '../../src/api/validate.js';
import { checkClusterClaims } from '../../src/sources/cluster.js';

describe('synth --from-cluster: which of two mirrors keeps a node host', () => {
  const mirror = (name: string, status?: unknown) =>
    parseMirrorResource(
      {
        apiVersion: 'k8s.osp.tech/v1',
        kind: 'RegistryMirror',
        metadata: { name, creationTimestamp: '2025-01-01T00:00:00Z' },
        spec: { upstreamUrl: 'quay.io' },
        ...(status === undefined ? {} : { status }),
      },
      `cluster:registrymirror/${name}`,
    );
  const problem = (mirrors: Parameters<typeof checkClusterClaims>[0]) => {
    try {
      checkClusterClaims(mirrors);
    } catch (err) {
      if (err instanceof SpecError) return err.problems[0];
      throw err;
    }
    return undefined;
  };

  it('within one second, the mirror holding its claims (as the controller decides), else the name', () => {
    expect(problem([mirror('zz-serving'), mirror('aa-new')])).toMatchObject({ mirror: 'zz-serving', other: 'aa-new' });
    const serving = mirror('zz-serving', {
      observedGeneration: 1,
      conditions: [{ type: 'Ready', status: 'True', reason: 'Serving' }],
    });
    expect(serving.holdsClaims).toBe(true);
    expect(problem([mirror('aa-new'), serving])).toMatchObject({ mirror: 'aa-new', other: 'zz-serving' });
  });
});
