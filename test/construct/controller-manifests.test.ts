import { readFileSync } from 'node:fs';

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
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'Role',
      'Role',
      'RoleBinding',
      'RoleBinding',
      'RoleBinding',
      'ConfigMap',
      'Deployment',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
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
    // The output and node agent namespaces only, read only.
    expect(rules.find((r) => r.resources.includes('namespaces'))).toMatchObject({
      resourceNames: ['kube-extra', 'kube-extra-node'],
      verbs: ['get'],
    });
    expect(rules.some((r) => r.verbs.includes('*') || r.resources.includes('*'))).toBe(false);
  });

  it('puts the node agents in a privileged namespace of their own and the controller in a restricted one', () => {
    const podSecurity = (ns: string) =>
      Object.fromEntries(
        Object.entries(find('Namespace', ns).metadata.labels ?? {}).filter(([k]) => k.startsWith('pod-security.')),
      );
    expect(podSecurity('kube-extra')).toEqual({
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
    expect(podSecurity('kube-extra-node')).toEqual({ 'pod-security.kubernetes.io/enforce': 'privileged' });
    expect(find('Deployment', 'mirror-synth-controller', 'kube-extra').metadata.namespace).toBe('kube-extra');
    const env = (
      find('Deployment', 'mirror-synth-controller').spec as {
        template: { spec: { containers: { env: { name: string; value?: string }[] }[] } };
      }
    ).template.spec.containers[0].env;
    expect(env).toContainEqual({ name: 'NODE_AGENT_NAMESPACE', value: 'kube-extra-node' });
    // In the node agent namespace: the node agents' kinds, nothing else (no Secrets, no Lease).
    const rules = find('Role', 'mirror-synth-controller', 'kube-extra-node').rules as Rule[];
    expect(rules.map((r) => [r.resources, r.verbs.includes('delete')])).toEqual([
      [['configmaps'], true],
      [['daemonsets'], true],
      [['pods'], false],
    ]);
    expect(find('RoleBinding', 'mirror-synth-controller', 'kube-extra-node').subjects).toEqual([
      { kind: 'ServiceAccount', name: 'mirror-synth-controller', namespace: 'kube-extra' },
    ]);
  });

  it('enforces only "privileged" in the output namespace while taking over from mirror-operator (its pods do not meet "restricted")', () => {
    const taking = controllerObjects({
      namespace: 'kube-extra',
      image: 'example.com/mirror-synth:1.2.3',
      takeover: true,
    });
    expect(taking.find((o) => o.kind === 'Namespace' && o.metadata.name === 'kube-extra')!.metadata.labels).toEqual({
      'app.kubernetes.io/managed-by': 'mirror-synth',
      'pod-security.kubernetes.io/enforce': 'privileged',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
  });

  it('keeps one privileged namespace when the node agent namespace is the output namespace', () => {
    const one = controllerObjects({
      namespace: 'kube-extra',
      nodeAgentNamespace: 'kube-extra',
      image: 'example.com/mirror-synth:1.2.3',
    });
    const namespaces = one.filter((o) => o.kind === 'Namespace');
    expect(namespaces.map((n) => n.metadata.labels?.['pod-security.kubernetes.io/enforce'])).toEqual(['privileged']);
    expect(one.filter((o) => o.kind === 'Role' && o.metadata.namespace === 'kube-extra')).toHaveLength(1);
  });

  it('scopes child, Secret and Lease access to the output namespace', () => {
    const role = find('Role', 'mirror-synth-controller', 'kube-extra');
    const rules = role.rules as Rule[];
    const resources = rules.flatMap((r) => r.resources);
    expect(resources).toEqual(
      expect.arrayContaining([
        'configmaps',
        'services',
        'statefulsets',
        'daemonsets',
        'networkpolicies',
        'secrets',
        'leases',
      ]),
    );
    const leaseUpdate = rules.find((r) => r.resources.includes('leases') && r.verbs.includes('update'))!;
    expect(leaseUpdate.resourceNames).toEqual(['mirror-synth-controller']);
    const events = find('Role', 'mirror-synth-controller-events', 'default').rules as Rule[];
    expect(events).toEqual([{ apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] }]);
  });

  it('grants pod and claim delete only with the takeover, and then runs the controller with --takeover', () => {
    const podRules = (objs: KubeObject[]) =>
      (objs.find((o) => o.kind === 'Role' && o.metadata.name === 'mirror-synth-controller')!.rules as Rule[]).filter(
        (r) => r.resources.includes('pods') || r.resources.includes('persistentvolumeclaims'),
      );
    const args = (objs: KubeObject[]) =>
      (objs.find((o) => o.kind === 'Deployment')!.spec as any).template.spec.containers[0].args;
    expect(podRules(objects)).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }]);
    expect(args(objects)).toEqual(['controller']);
    const takeover = controllerObjects({
      namespace: 'kube-extra',
      image: 'example.com/mirror-synth:1.2.3',
      takeover: true,
    });
    expect(podRules(takeover)).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'delete'] },
      { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['list', 'delete'] },
    ]);
    expect(args(takeover)).toEqual(['controller', '--takeover']);
  });

  it('writes the allowlist into its ConfigMap and has the policy and the controller read it from there (no variables)', () => {
    // Unset lists are left out of the ConfigMap (anything); an empty list is an empty value (nothing).
    expect(find('ConfigMap', 'mirror-synth-allowlist', 'kube-extra').data).toEqual({});
    const tight = controllerObjects({
      namespace: 'kube-extra',
      image: 'example.com/mirror-synth:1.2.3',
      policy: { upstreams: ['quay.io', '*.example.com'], masquerades: [] },
    });
    expect(tight.find((o) => o.kind === 'ConfigMap')!.data).toEqual({
      allowedUpstreams: 'quay.io,*.example.com',
      allowedMasquerades: '',
    });
    const policy = find('ValidatingAdmissionPolicy', 'mirror-synth-allowlist').spec as any;
    expect(policy.failurePolicy).toBe('Fail');
    expect(policy.paramKind).toEqual({ apiVersion: 'v1', kind: 'ConfigMap' });
    expect(policy.matchConstraints.resourceRules).toEqual([
      {
        apiGroups: ['k8s.osp.tech'],
        apiVersions: ['v1'],
        operations: ['CREATE', 'UPDATE'],
        resources: ['registrymirrors'],
      },
    ]);
    // Each field's message, or (a key with a bad entry) the ConfigMap's key and entry.
    const field = (v: { messageExpression: string }) =>
      /\? \('(spec\.[A-Za-z0-9.]+) must/.exec(v.messageExpression)?.[1];
    expect(policy.validations.map(field)).toEqual([
      'spec.upstreamUrl',
      'spec.masqueradeUrl',
      'spec.imageRegistry',
      'spec.imageDigests.registry',
      'spec.imageDigests.front',
      'spec.imageDigests.frontMetrics',
      'spec.imageDigests.volumeExporter',
      'spec.imagePullSecrets',
      'spec.priorityClassName',
      'spec.objectStorage.s3.endpoint',
      'spec.objectStorage.s3.region',
    ]);
    for (const v of policy.validations)
      expect(v.messageExpression).toContain("'ConfigMap ' + params.metadata.namespace");
    // Deleting the ConfigMap refuses every RegistryMirror rather than allowing any.
    expect(find('ValidatingAdmissionPolicyBinding', 'mirror-synth-allowlist').spec).toEqual({
      policyName: 'mirror-synth-allowlist',
      validationActions: ['Deny'],
      paramRef: { name: 'mirror-synth-allowlist', namespace: 'kube-extra', parameterNotFoundAction: 'Deny' },
    });
    // The controller watches the ConfigMap: a variable would fix its list until a restart.
    const env = (find('Deployment', 'mirror-synth-controller').spec as any).template.spec.containers[0].env;
    expect(env.filter((v: { name: string }) => v.name.startsWith('ALLOWED_'))).toEqual([]);
  });

  it('grants on Secrets only the verbs the controller uses (no update), as docs/controller.md lists them', () => {
    const rules = find('Role', 'mirror-synth-controller', 'kube-extra').rules as Rule[];
    const secrets = rules.filter((r) => r.resources.includes('secrets'));
    expect(secrets).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    ]);
    const readme = readFileSync(new URL('../../docs/controller.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
    expect(readme).toContain(`Secrets (${secrets[0].verbs.map((v) => `\`${v}\``).join(', ')}:`);
  });

  it('runs the controller under Pod Security "restricted" with probes, NAMESPACE and its own image as FILL_IMAGE', () => {
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
    // mirrors with spec.fill: streaming run their fill from the controller's own image, not a default
    expect(c.env).toContainEqual({ name: 'FILL_IMAGE', value: 'example.com/mirror-synth:1.2.3' });
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(spec.template.metadata.labels[k]).toBe(v);
  });
});
