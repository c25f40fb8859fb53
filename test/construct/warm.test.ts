// spec.cache.pinned in the synthesized objects: the list's ConfigMap, the cache pod's warm container
// (mirror-synth warm from the fill image), its port for monitoring and the API server's pod proxy,
// and that a change of the list changes the ConfigMap only: no cache pod rolls.
import { describe, expect, it } from 'vitest';

import { SpecError } from '../../src/api/errors.js';
import type { KubeObject } from '../../src/api/kube-object.js';
import { parseMirrorFile } from '../../src/api/validate.js';
import { synthesizeMirror } from '../../src/synth/chart.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';

type Obj = KubeObject & { spec?: any; data?: Record<string, string> };
const IMAGE = 'registry.example.com/mirror-synth:1.0.0';

function synth(spec: string, fillImage: string | null = IMAGE): Obj[] {
  const [mirror] = parseMirrorFile(mirrorYaml('hub', spec), 'mirrors/hub.yaml');
  return synthesizeMirror(mirror, { namespace: 'kube-extra', ...(fillImage ? { fillImage } : {}) });
}
const find = (objs: Obj[], kind: string, name: string): Obj | undefined =>
  objs.find((o) => o.kind === kind && o.metadata.name === name);
const podOf = (objs: Obj[]) => find(objs, 'StatefulSet', 'registry-mirror-hub')!.spec.template;
const DIGEST_REF = `library/busybox@sha256:${'a'.repeat(64)}`;
const pinned = (images: string, more = ''): string => `{upstreamUrl: docker.io, cache: {pinned: [${images}]${more}}}`;
const PINNED = pinned(`library/nginx:1.27, ${DIGEST_REF}`);

describe('spec.cache.pinned', () => {
  it('adds the list ConfigMap and a warm container running mirror-synth warm through the front', () => {
    const objs = synth(PINNED);
    const list = find(objs, 'ConfigMap', 'registry-mirror-hub-pinned');
    expect(JSON.parse(list!.data!['pinned.json'])).toEqual({
      images: ['library/nginx:1.27', DIGEST_REF],
      refreshInterval: '1h',
    });
    const pod = podOf(objs);
    const warm = pod.spec.containers.find((c: any) => c.name === 'warm');
    expect(warm.image).toBe(IMAGE);
    expect(warm.args).toEqual([
      'warm',
      '--pinned',
      '/etc/mirror-synth/pinned/pinned.json',
      '--registry',
      'http://127.0.0.1:5000',
      '--pinned-digests',
      '/var/lib/registry/mirror-synth/pinned.json',
      '--listen',
      ':9103',
    ]);
    expect(warm.readinessProbe).toBeUndefined();
    expect(pod.spec.volumes).toContainEqual({ name: 'pinned-list', configMap: { name: 'registry-mirror-hub-pinned' } });
    // the port: scraped by monitoring, and read by the API server's pod proxy (which comes from a node address)
    const np = find(objs, 'NetworkPolicy', 'registry-mirror-hub')!;
    const ports = (i: number) => np.spec.ingress[i].ports.map((p: any) => p.port);
    expect(ports(0)).toEqual([5000, 9103]);
    expect(ports(1)).toContain(9103);
  });

  it('a change of the list changes the ConfigMap only: the cache pods do not roll', () => {
    const before = synth(PINNED);
    const after = synth(pinned(`library/nginx:1.28, ${DIGEST_REF}`, ', pinnedRefreshInterval: 30m'));
    expect(podOf(after)).toEqual(podOf(before));
    expect(find(after, 'ConfigMap', 'registry-mirror-hub-pinned')!.data).not.toEqual(
      find(before, 'ConfigMap', 'registry-mirror-hub-pinned')!.data,
    );
  });

  it('without pinned images, no warm container, ConfigMap or port', () => {
    const objs = synth(pinned(''));
    expect(find(objs, 'ConfigMap', 'registry-mirror-hub-pinned')).toBeUndefined();
    expect(podOf(objs).spec.containers.map((c: any) => c.name)).not.toContain('warm');
    expect(JSON.stringify(objs)).not.toContain('9103');
  });

  it('without the mirror-synth image, the mirror is refused naming the file, the mirror and the field', () => {
    expect(() => synth(PINNED, null)).toThrow(SpecError);
    expect(() => synth(PINNED, null)).toThrow(
      /mirrors\/hub\.yaml: mirror 'hub': spec\.cache\.pinned is set, which runs `mirror-synth warm` from the mirror-synth image, and no image is set for it/,
    );
  });
});
