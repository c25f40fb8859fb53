import { dumpYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { registryMirrorCrd } from '../../src/api/crd.js';
import type { KubeObject } from '../../src/api/kube-object.js';
import { toClientModel } from '../../src/controller/kube.js';

// dumpYaml serializes through client-node's typed models, as KubernetesObjectApi.patch does.
const roundTrip = (obj: KubeObject) => parse(dumpYaml(toClientModel(obj))) as unknown;

describe('objects sent to the API server', () => {
  it('keep the CRD schema keywords client-node names differently (x-kubernetes-*)', () => {
    expect(roundTrip(registryMirrorCrd())).toEqual(registryMirrorCrd());
  });

  it('keep fields such as an exec probe', () => {
    const deployment: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace: 'n' },
      spec: {
        selector: { matchLabels: { a: 'b' } },
        template: {
          metadata: { labels: { a: 'b' } },
          spec: { containers: [{ name: 'c', image: 'i', livenessProbe: { exec: { command: ['true'] } } }] },
        },
      },
    };
    expect(roundTrip(deployment)).toEqual(deployment);
  });
});
