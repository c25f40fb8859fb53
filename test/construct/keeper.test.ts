import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { SpecError } from '../../src/api/errors.js';
import type { KubeObject } from '../../src/api/kube-object.js';
import type { MirrorSpec } from '../../src/api/schema.js';
import { synthesizeMirror } from '../../src/synth/chart.js';

type Obj = KubeObject & { spec?: any; data?: Record<string, string> };
const IMAGE = 'registry.example.com/platform/mirror-synth:0.1.0';

/** `null`: synthesized with no mirror-synth image. */
function synth(spec: MirrorSpec, fillImage: string | null = IMAGE): Obj[] {
  return synthesizeMirror({ name: 'quay', spec, source: 'mirrors/quay.yaml' }, fillImage ? { fillImage } : {});
}
function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
}
const sts = (objs: Obj[]) => find(objs, 'StatefulSet', 'registry-mirror-quay');
const keeper = (objs: Obj[]) =>
  sts(objs).spec.template.spec.containers.find((c: { name: string }) => c.name === 'keeper') as
    { image: string; args: string[]; ports: unknown[]; volumeMounts: unknown[]; readinessProbe?: unknown } | undefined;
const config = (objs: Obj[], key: string) => find(objs, 'ConfigMap', 'registry-mirror-quay-config').data![key];

describe('the size bound (spec.cache.maxSize) and its keeper', () => {
  it('runs mirror-synth keeper from the mirror-synth image, bounded at 75% of the volume by default', () => {
    const objs = synth({ upstreamUrl: 'quay.io' });
    const k = keeper(objs)!;
    expect(k.image).toBe(IMAGE);
    // 20Gi volume: 15Gi
    expect(k.args).toEqual([
      'keeper',
      '--store',
      '/var/lib/registry',
      '--max-size',
      String(15 * 2 ** 30),
      '--log-listen',
      '127.0.0.1:5515',
      '--metrics-listen',
      ':9102',
    ]);
    expect(k.ports).toEqual([{ name: 'keeper-metrics', containerPort: 9102 }]);
    expect(k.volumeMounts).toEqual([{ name: 'cache', mountPath: '/var/lib/registry' }]);
    // a failing keeper must not take the cache out of the Service
    expect(k.readinessProbe).toBeUndefined();
    // the front tells it what it served; Distribution keeps no in-memory list of blobs it may delete
    expect(config(objs, 'nginx.conf')).toContain(
      'access_log syslog:server=127.0.0.1:5515,tag=keeper,nohostname keeper;',
    );
    expect(parseYaml(config(objs, 'config.yml')).storage.cache).toBeUndefined();
    // the front's share is of the bound: a quarter of 15Gi
    expect(config(objs, 'nginx.conf')).toContain('max_size=3840m');
    // scraped, and admitted from the monitoring pods
    expect(
      find(objs, 'Service', 'registry-mirror-quay-headless').spec.ports.map((p: { name: string }) => p.name),
    ).toContain('keeper-metrics');
    const policy = find(objs, 'NetworkPolicy', 'registry-mirror-quay');
    expect(policy.spec.ingress[1].ports.map((p: { port: number }) => p.port)).toContain(9102);
  });

  it('takes spec.cache.maxSize as given, and the front a quarter of it', () => {
    const objs = synth({
      upstreamUrl: 'quay.io',
      volumeClaimTemplate: { spec: { resources: { requests: { storage: '1Gi' } } } },
      cache: { maxSize: '64Mi' },
    });
    expect(keeper(objs)!.args.slice(3, 5)).toEqual(['--max-size', String(64 * 2 ** 20)]);
    expect(config(objs, 'nginx.conf')).toContain('max_size=16m');
  });

  it('with objectStorage: bounds the volume (front and spool), and says so to the keeper', () => {
    const objs = synth({
      upstreamUrl: 'quay.io',
      objectStorage: { s3: { bucket: 'cache', region: 'us-east-1' } },
      cache: { maxSize: '10Gi' },
    });
    expect(keeper(objs)!.args).toContain('--object-storage');
    // the front may fill the bound but for the free space it keeps
    expect(config(objs, 'nginx.conf')).toContain(`max_size=${Math.floor(10 * 1024 * 0.85)}m`);
  });

  it("without a mirror-synth image: no keeper and today's TTL-only store; a bound set is refused naming file, mirror and field", () => {
    const objs = synth({ upstreamUrl: 'quay.io' }, null);
    expect(keeper(objs)).toBeUndefined();
    expect(config(objs, 'nginx.conf')).not.toContain('5515');
    expect(parseYaml(config(objs, 'config.yml')).storage.cache).toEqual({ blobdescriptor: 'inmemory' });
    let err: unknown;
    try {
      synth({ upstreamUrl: 'quay.io', cache: { maxSize: '10Gi' } }, null);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as Error).message).toMatch(
      /^mirrors\/quay\.yaml: mirror 'quay': spec\.cache\.maxSize is kept by `mirror-synth keeper` from the mirror-synth image, and no image is set for it: .*--fill-image, FILL_IMAGE or fillImage in cdk8s\.yaml/,
    );
  });
});
