import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { controllerObjects } from '../../src/synth/chart.js';

const objects = controllerObjects({ namespace: 'kube-extra', image: 'example.com/mirror-synth:1.2.3' });
const find = (kind: string, name: string, namespace?: string): KubeObject => {
  const o = objects.find(
    (x) =>
      x.kind === kind && x.metadata.name === name && (namespace === undefined || x.metadata.namespace === namespace),
  );
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

describe('controllerManifests', () => {
  it('gets defaults', () => {
    expect(objects).toMatchSnapshot();
  });

  it('is byte-stable and sorted', () => {
    expect(
      JSON.stringify(controllerObjects({ namespace: 'kube-extra', image: 'example.com/mirror-synth:1.2.3' })),
    ).toBe(JSON.stringify(objects));
    expect(objects.map((o) => o.kind)).toEqual([
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'Role',
      'RoleBinding',
      'RoleBinding',
      'Deployment',
    ]);
  });

  it('grants RegistryMirror access cluster-wide but never Secrets cluster-wide', () => {
    const rules = find('ClusterRole', 'mirror-synth-controller').rules as Rule[];
    expect(rules.flatMap((r) => r.resources).sort()).toEqual([
      'namespaces',
      'registrymirrors',
      'registrymirrors/status',
    ]);
    expect(rules.find((r) => r.resources.includes('registrymirrors'))!.verbs).toEqual([
      'get',
      'list',
      'watch',
      'patch',
    ]);
    // The output namespace only, read only.
    expect(rules.find((r) => r.resources.includes('namespaces'))).toMatchObject({
      resourceNames: ['kube-extra'],
      verbs: ['get'],
    });
    expect(rules.some((r) => r.verbs.includes('*') || r.resources.includes('*'))).toBe(false);
  });

  it('scopes child, Secret and Lease access to the output namespace', () => {
    const role = find('Role', 'mirror-synth-controller', 'kube-extra');
    const rules = role.rules as Rule[];
    const resources = rules.flatMap((r) => r.resources);
    expect(resources).toEqual(
      expect.arrayContaining(['configmaps', 'services', 'statefulsets', 'daemonsets', 'secrets', 'leases']),
    );
    const leaseUpdate = rules.find((r) => r.resources.includes('leases') && r.verbs.includes('update'))!;
    expect(leaseUpdate.resourceNames).toEqual(['mirror-synth-controller']);
    const events = find('Role', 'mirror-synth-controller-events', 'default').rules as Rule[];
    expect(events).toEqual([{ apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] }]);
  });

  it('runs the controller under Pod Security "restricted" with probes and NAMESPACE', () => {
    const spec = find('Deployment', 'mirror-synth-controller').spec as any;
    const pod = spec.template.spec;
    const c = pod.containers[0];
    expect(pod.serviceAccountName).toBe('mirror-synth-controller');
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    });
    expect(c.image).toBe('example.com/mirror-synth:1.2.3');
    expect(c.args).toEqual(['controller']);
    expect(c.env).toContainEqual({ name: 'NAMESPACE', value: 'kube-extra' });
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(spec.template.metadata.labels[k]).toBe(v);
  });
});
