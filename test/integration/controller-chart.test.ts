// The controller chart (charts/mirror-synth/, `npm run chart`) under the real Helm (tools/helm):
// `helm lint --strict` is clean; with its defaults it renders exactly `controller-manifests`; every
// value, set with `--set`, has the effect it says and nothing else; values.schema.json refuses a
// bad value with a message naming it; and the API server accepts what a full set of values renders.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { KubeObject } from '../../src/api/kube-object.js';
import { DEFAULT_NODE_AGENT_IMAGE } from '../../src/api/names.js';
import { controllerManifests } from '../../src/cli/controller-manifests.js';
import { CONTROLLER_CHART_DIR } from '../../src/synth/controller-chart.js';
import { repoRoot } from '../support/primitives/repo-root.js';
import { ensureTool } from '../support/primitives/tools.js';

const exec = promisify(execFile);
const chart = join(repoRoot, CONTROLLER_CHART_DIR);
const REPO = 'registry.example.com/platform/mirror-synth';
const VERSION = '0.1.0';
let helm: string;
let home: string;

type Obj = KubeObject & { spec?: any; data?: Record<string, string> };
const objectsOf = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
const key = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

async function template(...args: string[]): Promise<Obj[]> {
  const { stdout } = await exec(helm, ['template', 'ms', chart, '--set', `image.repository=${REPO}`, ...args], {
    env: { ...process.env, HOME: home },
    maxBuffer: 64 * 1024 * 1024,
  });
  return objectsOf(stdout);
}
/** helm template's failure message (stderr), or undefined when it rendered. */
async function refused(...args: string[]): Promise<string | undefined> {
  try {
    await exec(helm, ['template', 'ms', chart, ...args], { env: { ...process.env, HOME: home } });
    return undefined;
  } catch (e) {
    return (e as { stderr: string }).stderr;
  }
}
const find = (objects: Obj[], kind: string, name: string, namespace?: string) =>
  objects.find(
    (o) =>
      o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace),
  );
const deployment = (objects: Obj[]) => find(objects, 'Deployment', 'mirror-synth-controller')!;
const pod = (objects: Obj[]) => deployment(objects).spec.template.spec;
const container = (objects: Obj[]) => pod(objects).containers[0];
const env = (objects: Obj[]) =>
  Object.fromEntries((container(objects).env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
/** The objects that differ from the default render, by key. */
const changed = (base: Obj[], other: Obj[]) => {
  const byKey = new Map(base.map((o) => [key(o), JSON.stringify(o)]));
  const otherKeys = new Set(other.map(key));
  return [
    ...other.filter((o) => byKey.get(key(o)) !== JSON.stringify(o)).map(key),
    ...base.filter((o) => !otherKeys.has(key(o))).map(key),
  ].sort();
};

let defaults: Obj[];
beforeAll(async () => {
  helm = await ensureTool('helm');
  home = await mkdtemp(join(tmpdir(), 'controller-chart-'));
  defaults = await template();
});
afterAll(() => rm(home, { recursive: true, force: true }));

describe('charts/mirror-synth under helm', () => {
  it('passes helm lint --strict', async () => {
    const { stdout } = await exec(helm, ['lint', '--strict', chart, '--set', `image.repository=${REPO}`], {
      env: { ...process.env, HOME: home },
    });
    expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  it('with its defaults renders exactly controller-manifests --image <repository>:<appVersion>, and the CRD from crds/', async () => {
    const expected = objectsOf(controllerManifests({ image: `${REPO}:${VERSION}`, log: () => undefined }));
    expect(defaults.map(key).sort()).toEqual(expected.map(key).sort());
    const byKey = new Map(defaults.map((o) => [key(o), o]));
    for (const o of expected) expect(byKey.get(key(o)), key(o)).toEqual(o);
    const crds = objectsOf(
      (
        await exec(helm, ['template', 'ms', chart, '--set', `image.repository=${REPO}`, '--include-crds'], {
          env: { ...process.env, HOME: home },
        })
      ).stdout,
    ).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((o) => o.metadata.name)).toEqual(['registrymirrors.k8s.osp.tech']);
  });

  it('with every switch that reshapes the manifests, renders what controller-manifests prints for the same flags', async () => {
    const cases: [string[], Parameters<typeof controllerManifests>[0]][] = [
      [['--set', 'takeover=true'], { image: `${REPO}:${VERSION}`, takeover: true }],
      [
        ['--set', 'namespace=mirrors', '--set', 'nodeAgent.namespace=mirrors'],
        { image: `${REPO}:${VERSION}`, namespace: 'mirrors', nodeAgentNamespace: 'mirrors' },
      ],
      [
        ['--set', 'namespace=mirrors', '--set', 'nodeAgent.namespace=mirrors', '--set', 'takeover=true'],
        { image: `${REPO}:${VERSION}`, namespace: 'mirrors', nodeAgentNamespace: 'mirrors', takeover: true },
      ],
      [
        ['--set', 'namespace=reg', '--set', 'nodeAgent.namespace=reg-agents', '--set', 'monitoring.podMonitor=true'],
        { image: `${REPO}:${VERSION}`, namespace: 'reg', nodeAgentNamespace: 'reg-agents', monitoring: true },
      ],
      [
        // --set x={} gives [""]: an empty list is --set-json
        [
          '--set',
          'allowlist.allowedUpstreams={quay.io,*.example.com}',
          '--set-json',
          'allowlist.allowedImageDigests=[]',
        ],
        { image: `${REPO}:${VERSION}`, allowedUpstreams: 'quay.io,*.example.com', allowedImageDigests: '' },
      ],
    ];
    for (const [args, opts] of cases) {
      const rendered = await template(...args);
      const expected = objectsOf(controllerManifests({ ...opts, log: () => undefined }));
      expect(rendered.map(key).sort(), args.join(' ')).toEqual(expected.map(key).sort());
      const byKey = new Map(rendered.map((o) => [key(o), o]));
      for (const o of expected) expect(byKey.get(key(o)), `${args.join(' ')}: ${key(o)}`).toEqual(o);
    }
  });

  // Every value: what `--set` changes, and that nothing else changed.
  const matrix: { set: string[]; changes: string[]; check: (o: Obj[]) => void }[] = [
    {
      set: ['image.tag=1.2.3'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => {
        expect(container(o).image).toBe(`${REPO}:1.2.3`);
        expect(env(o).FILL_IMAGE).toBe(`${REPO}:1.2.3`);
      },
    },
    {
      set: [`image.digest=sha256:${'a'.repeat(64)}`],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => {
        expect(container(o).image).toBe(`${REPO}@sha256:${'a'.repeat(64)}`);
        expect(env(o).FILL_IMAGE).toBe(`${REPO}@sha256:${'a'.repeat(64)}`);
      },
    },
    {
      set: ['image.pullPolicy=Always'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(container(o).imagePullPolicy).toBe('Always'),
    },
    {
      set: ['imagePullSecrets[0].name=regcred'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(pod(o).imagePullSecrets).toEqual([{ name: 'regcred' }]),
    },
    {
      set: ['nodeAgent.image=registry.example.com/busybox:1.37.0'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(env(o).NODE_AGENT_IMAGE).toBe('registry.example.com/busybox:1.37.0'),
    },
    {
      set: [`nodeAgent.image=${DEFAULT_NODE_AGENT_IMAGE}`],
      changes: [],
      check: (o) => expect(env(o).NODE_AGENT_IMAGE).toBeUndefined(),
    },
    {
      set: ['nodeRuntime=k3s'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(env(o).NODE_RUNTIME).toBe('k3s'),
    },
    {
      set: ['clusterDomain=corp.internal'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(env(o).CLUSTER_DOMAIN).toBe('corp.internal'),
    },
    {
      set: ['allowlist.allowedMasquerades={mirror.example.com}', 'allowlist.allowedPriorityClasses=[]'],
      changes: ['ConfigMap/kube-extra/mirror-synth-allowlist'],
      check: (o) =>
        expect(find(o, 'ConfigMap', 'mirror-synth-allowlist')!.data).toEqual({
          allowedMasquerades: 'mirror.example.com',
          allowedPriorityClasses: '',
        }),
    },
    {
      set: [
        'allowlist.allowedImageRegistries={harbor.example.com/*}',
        'allowlist.allowedImagePullSecrets={pull}',
        'allowlist.allowedObjectStorageEndpoints={s3.example.com}',
      ],
      changes: ['ConfigMap/kube-extra/mirror-synth-allowlist'],
      check: (o) =>
        expect(find(o, 'ConfigMap', 'mirror-synth-allowlist')!.data).toEqual({
          allowedImageRegistries: 'harbor.example.com/*',
          allowedImagePullSecrets: 'pull',
          allowedObjectStorageEndpoints: 's3.example.com',
        }),
    },
    {
      set: ['replicas=2'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(deployment(o).spec.replicas).toBe(2),
    },
    {
      set: ['leaderElection.enabled=false'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(container(o).args).toEqual(['controller', '--no-leader-election']),
    },
    {
      set: [
        'leaderElection.leaseDurationSeconds=30',
        'leaderElection.renewDeadlineSeconds=20',
        'leaderElection.retryPeriodSeconds=4',
      ],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) =>
        expect(container(o).args).toEqual([
          'controller',
          '--lease-duration=30',
          '--renew-deadline=20',
          '--retry-period=4',
        ]),
    },
    {
      set: ['resources.limits.memory=512Mi', 'resources.requests.cpu=100m'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) =>
        expect(container(o).resources).toEqual({
          requests: { cpu: '100m', memory: '96Mi' },
          limits: { memory: '512Mi' },
        }),
    },
    {
      set: ['nodeSelector.node-role\\.kubernetes\\.io/control-plane='],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(pod(o).nodeSelector).toEqual({ 'node-role.kubernetes.io/control-plane': '' }),
    },
    {
      set: ['tolerations[0].key=dedicated', 'tolerations[0].operator=Exists', 'tolerations[0].effect=NoSchedule'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) =>
        expect(pod(o).tolerations).toEqual([{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }]),
    },
    {
      set: [
        'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone',
        'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists',
      ],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) =>
        expect(pod(o).affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
          { matchExpressions: [{ key: 'zone', operator: 'Exists' }] },
        ]),
    },
    {
      set: ['priorityClassName=system-cluster-critical'],
      changes: ['Deployment/kube-extra/mirror-synth-controller'],
      check: (o) => expect(pod(o).priorityClassName).toBe('system-cluster-critical'),
    },
    {
      set: ['podDisruptionBudget.enabled=true'],
      changes: ['PodDisruptionBudget/kube-extra/mirror-synth-controller'],
      check: (o) =>
        expect(find(o, 'PodDisruptionBudget', 'mirror-synth-controller')!.spec).toEqual({
          selector: { matchLabels: deployment(o).spec.selector.matchLabels },
          maxUnavailable: 1,
        }),
    },
    {
      set: [
        'podDisruptionBudget.enabled=true',
        'podDisruptionBudget.minAvailable=1',
        'podDisruptionBudget.maxUnavailable=50%',
      ],
      changes: ['PodDisruptionBudget/kube-extra/mirror-synth-controller'],
      check: (o) => expect(find(o, 'PodDisruptionBudget', 'mirror-synth-controller')!.spec.minAvailable).toBe(1),
    },
    {
      set: ['monitoring.podMonitor=true'],
      changes: ['PodMonitor/kube-extra/mirror-synth-controller', 'PrometheusRule/kube-extra/mirror-synth-controller'],
      check: (o) => expect(find(o, 'PrometheusRule', 'mirror-synth-controller')!.spec.groups.length).toBeGreaterThan(0),
    },
    {
      set: ['monitoring.dashboard=true'],
      changes: ['ConfigMap/kube-extra/registry-mirror-dashboard'],
      check: (o) =>
        expect(find(o, 'ConfigMap', 'registry-mirror-dashboard')!.metadata.labels).toMatchObject({
          grafana_dashboard: '1',
        }),
    },
    {
      set: [
        'networkPolicy.enabled=true',
        'networkPolicy.apiServerCIDRs={10.0.0.1/32}',
        'networkPolicy.apiServerPorts={6443}',
        'networkPolicy.metricsCIDRs={10.42.0.0/16}',
      ],
      changes: ['NetworkPolicy/kube-extra/mirror-synth-controller'],
      check: (o) =>
        expect(find(o, 'NetworkPolicy', 'mirror-synth-controller')!.spec).toEqual({
          podSelector: { matchLabels: deployment(o).spec.selector.matchLabels },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [
            { ports: [{ port: 'http-metrics', protocol: 'TCP' }], from: [{ ipBlock: { cidr: '10.42.0.0/16' } }] },
          ],
          egress: [{ ports: [{ port: 6443, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.0.0.1/32' } }] }],
        }),
    },
    {
      set: ['networkPolicy.enabled=true', 'networkPolicy.apiServerCIDRs={10.0.0.1/32}'],
      changes: ['NetworkPolicy/kube-extra/mirror-synth-controller'],
      check: (o) => expect(find(o, 'NetworkPolicy', 'mirror-synth-controller')!.spec.ingress).toEqual([]),
    },
    {
      set: ['takeover=true'],
      changes: [
        'Deployment/kube-extra/mirror-synth-controller',
        'Namespace//kube-extra',
        'Role/kube-extra/mirror-synth-controller',
      ],
      check: (o) => expect(container(o).args).toEqual(['controller', '--takeover']),
    },
  ];
  for (const { set, changes, check } of matrix) {
    it(`--set ${set.join(' --set ')}`, async () => {
      const rendered = await template(...set.flatMap((s) => [s.endsWith('=[]') ? '--set-json' : '--set', s]));
      expect(changed(defaults, rendered)).toEqual(changes);
      check(rendered);
    });
  }

  it('--set namespace and nodeAgent.namespace move every namespaced object and the RBAC that names them', async () => {
    const rendered = await template('--set', 'namespace=platform-mirrors');
    const namespaces = new Set(rendered.map((o) => o.metadata.namespace).filter(Boolean));
    expect(namespaces).toEqual(new Set(['platform-mirrors', 'platform-mirrors-node', 'default']));
    expect(env(rendered)).toMatchObject({
      NAMESPACE: 'platform-mirrors',
      NODE_AGENT_NAMESPACE: 'platform-mirrors-node',
    });
    const agents = await template('--set', 'nodeAgent.namespace=node-agents');
    expect(find(agents, 'Role', 'mirror-synth-controller', 'node-agents')).toBeDefined();
    expect(env(agents).NODE_AGENT_NAMESPACE).toBe('node-agents');
  });

  it('refuses bad values, naming the value, before rendering anything', async () => {
    const cases: [string[], RegExp][] = [
      [[], /image\.repository: set it to where you pushed the controller image/],
      [['--set', `image.repository=${REPO}`, '--set', 'nodeRuntime=docker'], /\/nodeRuntime.*containerd/s],
      [['--set', `image.repository=${REPO}`, '--set', 'image.tag=a b'], /\/image\/tag/],
      [['--set', `image.repository=${REPO}`, '--set', 'image.digest=sha256:abc'], /\/image\/digest/],
      [['--set', 'image.repository=https://reg.example.com/x'], /\/image\/repository/],
      [['--set', `image.repository=${REPO}`, '--set', 'nodeAgent.image=busybox'], /\/nodeAgent\/image/],
      [['--set', `image.repository=${REPO}`, '--set', 'namespace=Kube_Extra'], /\/namespace/],
      [
        ['--set', `image.repository=${REPO}`, '--set', 'allowlist.allowedUpstreams={https://quay.io}'],
        /\/allowlist\/allowedUpstreams\/0/,
      ],
      [['--set', `image.repository=${REPO}`, '--set', 'replicas=0'], /\/replicas/],
      [['--set', `image.repository=${REPO}`, '--set', 'resourcez.x=1'], /resourcez/],
      [
        ['--set', `image.repository=${REPO}`, '--set', 'networkPolicy.apiServerCIDRs={10.0.0.0}'],
        /\/networkPolicy\/apiServerCIDRs\/0/,
      ],
      [
        ['--set', `image.repository=${REPO}`, '--set', 'replicas=2', '--set', 'leaderElection.enabled=false'],
        /more than one controller replica needs leaderElection\.enabled/,
      ],
      [
        ['--set', `image.repository=${REPO}`, '--set', 'leaderElection.renewDeadlineSeconds=20'],
        /leaseDurationSeconds must be longer than leaderElection\.renewDeadlineSeconds/,
      ],
      [
        ['--set', `image.repository=${REPO}`, '--set', 'networkPolicy.enabled=true'],
        /networkPolicy\.apiServerCIDRs: the controller must reach the API server/,
      ],
      [
        ['--set', `image.repository=${REPO}`, '--set', `namespace=${'n'.repeat(60)}`],
        /nodeAgent\.namespace: '.*' is longer than 63 characters/,
      ],
    ];
    for (const [args, message] of cases)
      expect((await refused(...args)) ?? 'rendered', args.join(' ')).toMatch(message);
  });

  it('the API server accepts what a full set of values renders (server-side apply, dry run)', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(inject('kubeconfig'));
    const api = KubernetesObjectApi.makeApiClient(kc);
    const rendered = await template(
      '--set',
      'namespace=chart-full',
      '--set',
      'takeover=true',
      '--set',
      'imagePullSecrets[0].name=regcred',
      '--set',
      'nodeSelector.zone=a',
      '--set',
      'tolerations[0].operator=Exists',
      '--set',
      'priorityClassName=system-cluster-critical',
      '--set',
      'podDisruptionBudget.enabled=true',
      '--set',
      'networkPolicy.enabled=true',
      '--set',
      'networkPolicy.apiServerCIDRs={10.0.0.1/32}',
      '--set',
      'networkPolicy.metricsCIDRs={10.42.0.0/16}',
      '--set',
      'monitoring.dashboard=true',
      '--set',
      'allowlist.allowedUpstreams={quay.io}',
      '--set',
      'leaderElection.enabled=false',
    );
    const objects = rendered.map((o) => loadYaml<KubernetesObject>(JSON.stringify(o)) as KubeObject);
    for (const o of objects.filter((x) => x.kind === 'Namespace')) {
      await api.patch(o, undefined, undefined, 'mirror-synth-chart-test', true, PatchStrategy.ServerSideApply);
    }
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
      await expect(
        api.patch(o, undefined, 'All', 'mirror-synth-chart-test', true, PatchStrategy.ServerSideApply),
        key(o),
      ).resolves.toBeDefined();
    }
  });
});
