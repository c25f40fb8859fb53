import { describe, expect, it } from 'vitest';

import { readSpec } from '../../src/controller/read.js';

describe('the read stage', () => {
  const mirror = (spec: Record<string, unknown>) => ({
    apiVersion: 'k8s.osp.tech/v1',
    kind: 'RegistryMirror',
    metadata: { name: 'quay' },
    spec,
  });
  const opts = { namespace: 'kube-extra' };

  it('hands on the parsed spec', () => {
    expect(readSpec(mirror({ upstreamUrl: 'quay.io' }), opts)).toMatchObject({
      name: 'quay',
      spec: { upstreamUrl: 'quay.io' },
    });
  });

  it('stalls a spec the schema refuses (InvalidSpec)', () => {
    expect(readSpec(mirror({ upstreamUrl: 'https://quay.io' }), opts)).toMatchObject({
      type: 'Stalled',
      reason: 'InvalidSpec',
    });
  });

  it('stalls what the allowlist refuses (NotAllowed), and fails closed on a broken list (InvalidAllowlist)', () => {
    const refused = readSpec(mirror({ upstreamUrl: 'quay.io' }), {
      ...opts,
      policy: () => ({ lists: { upstreams: ['docker.io'] }, broken: {} }),
    });
    expect(refused).toMatchObject({ type: 'Stalled', reason: 'NotAllowed' });
    expect(refused).toHaveProperty('message', expect.stringContaining('ConfigMap kube-extra/'));
    const broken = readSpec(mirror({ upstreamUrl: 'quay.io' }), {
      ...opts,
      policy: () => ({ lists: {}, broken: { upstreams: 'allowedUpstreams: bad entry' } }),
    });
    expect(broken).toMatchObject({ type: 'Stalled', reason: 'InvalidAllowlist' });
  });

  it('stalls a streaming fill without the fill image (NoFillImage)', () => {
    const spec = { upstreamUrl: 'quay.io', fill: 'streaming' };
    expect(readSpec(mirror(spec), opts)).toMatchObject({ type: 'Stalled', reason: 'NoFillImage' });
    expect(readSpec(mirror(spec), { ...opts, fillImage: 'mirror-synth:1' })).toMatchObject({ name: 'quay' });
  });
});
