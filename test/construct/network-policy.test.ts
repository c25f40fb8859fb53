// The cache pods' NetworkPolicy: port 5000 (the front) from the nodes' address ranges only, the
// metrics ports from the monitoring pods only; out, DNS, the other replicas and every address but
// link-local and the denied ranges. Read from the synthesized objects as an API server would apply them. No CNI here enforces NetworkPolicy: this checks what is written, not its effect.
import { describe, expect, it } from 'vitest';

import { SpecError } from '../../src/api/errors.js';
import type { KubeObject } from '../../src/api/kube-object.js';
import { parseMirrorFile } from '../../src/api/validate.js';
import { synthesizeMirror } from '../../src/synth/chart.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';

type Obj = KubeObject & { spec?: any };
interface Rule {
  from: Record<string, unknown>[];
  ports: { protocol: string; port: number }[];
}

function synth(spec: string): Obj[] {
  const [mirror] = parseMirrorFile(mirrorYaml('quay', spec), 'mirrors/quay.yaml');
  return synthesizeMirror(mirror, { namespace: 'kube-extra', fillImage: 'registry.example.com/mirror-synth:1.0.0' });
}
const find = (objs: Obj[], kind: string): Obj => objs.find((o) => o.kind === kind)!;
/** The container ports of the cache pod, by name. */
function cachePorts(objs: Obj[]): Record<string, number> {
  const containers = find(objs, 'StatefulSet').spec.template.spec.containers as {
    ports?: { name: string; containerPort: number }[];
  }[];
  return Object.fromEntries(containers.flatMap((c) => c.ports ?? []).map((p) => [p.name, p.containerPort]));
}
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('the NetworkPolicy of a mirror', () => {
  const objs = synth('{upstreamUrl: quay.io, credentialsSecret: quay-creds}');
  const policy = find(objs, 'NetworkPolicy');
  const [nodes, metrics] = policy.spec.ingress as Rule[];

  it('selects the cache pods and nothing else, and limits ingress and egress', () => {
    expect(policy.metadata).toMatchObject({ name: 'registry-mirror-quay', namespace: 'kube-extra' });
    const selector = policy.spec.podSelector.matchLabels as Record<string, string>;
    expect(matches(selector, find(objs, 'StatefulSet').spec.template.metadata.labels)).toBe(true);
    expect(matches(selector, find(objs, 'DaemonSet').spec.template.metadata.labels)).toBe(false);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.ingress).toHaveLength(2);
  });

  it("admits the front's port, the one the Service sends nodes to, from the default node ranges only", () => {
    const service = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'registry-mirror-quay')!;
    expect(service.spec.ports).toHaveLength(1);
    expect(nodes.ports).toEqual([{ protocol: 'TCP', port: cachePorts(objs)[service.spec.ports[0].targetPort] }]);
    expect(nodes.ports[0].port).toBe(5000);
    expect(nodes.from).toEqual([
      { ipBlock: { cidr: '10.0.0.0/8' } },
      { ipBlock: { cidr: '172.16.0.0/12' } },
      { ipBlock: { cidr: '192.168.0.0/16' } },
      { ipBlock: { cidr: '100.64.0.0/10' } },
    ]);
  });

  it("admits the metrics ports the PodMonitor scrapes from every pod of namespace 'monitoring' only", () => {
    const ports = cachePorts(objs);
    expect(metrics.ports.map((p) => p.port).sort()).toEqual(
      // keeper-metrics: synthesized with a mirror-synth image, so the pods run the size bound's keeper
      [ports.metrics, ports['front-metrics'], ports['volume-metrics'], ports['keeper-metrics']].sort(),
    );
    expect(metrics.ports.every((p) => p.protocol === 'TCP')).toBe(true);
    expect(metrics.from).toEqual([
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        podSelector: { matchLabels: {} },
      },
    ]);
    // No rule admits the front from the monitoring pods, nor metrics from the nodes.
    expect(nodes.ports.map((p) => p.port)).not.toContain(ports.metrics);
    expect(metrics.ports.map((p) => p.port)).not.toContain(5000);
  });

  it('takes the node ranges and the monitoring peer from spec.networkPolicy', () => {
    const custom = find(
      synth(
        '{upstreamUrl: quay.io, networkPolicy: {nodeCIDRs: [10.20.0.0/16, "fd00:10::/64"], monitoring: {namespaceSelector: {matchLabels: {team: obs}}, podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}}}',
      ),
      'NetworkPolicy',
    );
    const [n, m] = custom.spec.ingress as Rule[];
    expect(n.from).toEqual([{ ipBlock: { cidr: '10.20.0.0/16' } }, { ipBlock: { cidr: 'fd00:10::/64' } }]);
    expect(m.from).toEqual([
      {
        namespaceSelector: { matchLabels: { team: 'obs' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      },
    ]);
    // Without a namespaceSelector, the peer is the output namespace's pods (NetworkPolicy's meaning).
    const local = find(
      synth('{upstreamUrl: quay.io, networkPolicy: {monitoring: {podSelector: {matchLabels: {app: vmagent}}}}}'),
      'NetworkPolicy',
    );
    expect((local.spec.ingress as Rule[])[1].from).toEqual([{ podSelector: { matchLabels: { app: 'vmagent' } } }]);
    expect((local.spec.ingress as Rule[])[0].from).toHaveLength(4);
  });

  it('lets the cache pods reach DNS and every address but link-local (cloud metadata), by default', () => {
    expect(policy.spec.egress).toEqual([
      {
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
      {
        to: [
          { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.0.0/16'] } },
          { ipBlock: { cidr: '::/0', except: ['fe80::/10'] } },
        ],
      },
    ]);
  });

  it("spec.fill streaming: lets a replica reach the other replicas' fronts, whatever ranges are denied", () => {
    const streaming = find(
      synth('{upstreamUrl: quay.io, fill: streaming, networkPolicy: {egressDeniedCIDRs: [10.0.0.0/8]}}'),
      'NetworkPolicy',
    );
    expect(streaming.spec.egress[1]).toEqual({
      to: [{ podSelector: { matchLabels: streaming.spec.podSelector.matchLabels } }],
      ports: [{ protocol: 'TCP', port: 5000 }],
    });
  });

  it('denies egressDeniedCIDRs besides link-local, and admits egressAllowedCIDRs inside them again', () => {
    const custom = find(
      synth(
        '{upstreamUrl: quay.io, networkPolicy: {egressDeniedCIDRs: [10.0.0.0/8, "fd00::/8", 169.254.0.0/16], egressAllowedCIDRs: [10.96.12.34/32]}}',
      ),
      'NetworkPolicy',
    );
    expect(custom.spec.egress.slice(1)).toEqual([
      {
        to: [
          { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.0.0/16', '10.0.0.0/8'] } },
          { ipBlock: { cidr: '::/0', except: ['fe80::/10', 'fd00::/8'] } },
        ],
      },
      { to: [{ ipBlock: { cidr: '10.96.12.34/32' } }] },
    ]);
    // a /0 denies its whole family (an `except` the size of its `cidr` would be refused), and
    // never leaves an empty `to`, which would admit every destination
    const only = find(
      synth(
        '{upstreamUrl: quay.io, networkPolicy: {egressDeniedCIDRs: [0.0.0.0/0, "::/0"], egressAllowedCIDRs: [203.0.113.0/24]}}',
      ),
      'NetworkPolicy',
    );
    expect(only.spec.egress.slice(1)).toEqual([{ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }] }]);
  });

  it('refuses what is no address range, and an empty list (which would admit every source)', () => {
    const error = (spec: string) => {
      try {
        synth(spec);
      } catch (e) {
        if (e instanceof SpecError) return e.message;
        throw e;
      }
      return 'accepted';
    };
    expect(error('{upstreamUrl: quay.io, networkPolicy: {nodeCIDRs: [10.0.0.0]}}')).toContain(
      "mirrors/quay.yaml: mirror 'quay': spec.networkPolicy.nodeCIDRs must hold address ranges in CIDR notation such as 10.20.0.0/16 or fd00::/64, got '10.0.0.0'",
    );
    expect(error('{upstreamUrl: quay.io, networkPolicy: {nodeCIDRs: [10.0.0.256/8]}}')).toContain(
      "in CIDR notation such as 10.20.0.0/16 or fd00::/64, got '10.0.0.256/8'",
    );
    expect(error('{upstreamUrl: quay.io, networkPolicy: {nodeCIDRs: []}}')).toContain('spec.networkPolicy.nodeCIDRs');
    expect(error('{upstreamUrl: quay.io, networkPolicy: {nodeCidrs: [10.0.0.0/8]}}')).toContain('nodeCIDRs');
    for (const field of ['egressDeniedCIDRs', 'egressAllowedCIDRs'])
      expect(error(`{upstreamUrl: quay.io, networkPolicy: {${field}: [10.0.0.0/8, metadata.internal]}}`)).toContain(
        `mirrors/quay.yaml: mirror 'quay': spec.networkPolicy.${field} must hold address ranges in CIDR notation such as 10.20.0.0/16 or fd00::/64, got 'metadata.internal'`,
      );
  });
});
