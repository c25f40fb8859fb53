import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { dashboard, DASHBOARD_PANELS } from '../../src/construct/dashboard.js';
import {
  CACHE_JOB,
  CONTROLLER_ALERTS,
  FILL_JOB,
  FRONT_JOB,
  KEEPER_JOB,
  MIRROR_ALERTS,
  VOLUME_JOB,
  WARM_JOB,
} from '../../src/construct/monitoring-rules.js';
import {
  controllerMonitoringObjects,
  controllerObjects,
  monitoringObjects,
  synthesizeMirror,
} from '../../src/synth/chart.js';

const find = (objects: KubeObject[], kind: string, name: string): Record<string, any> => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name}`);
  return o;
};

describe('monitoring objects', () => {
  const mirror = synthesizeMirror({ name: 'quay', spec: { upstreamUrl: 'quay.io' }, source: 'test' });
  const monitoring = monitoringObjects(['quay'], { namespace: 'kube-extra' });

  it("a mirror's PodMonitor selects its cache pods and scrapes Distribution, the front's metrics, the volume exporter, the streaming fill and the warm container, each as its own job", () => {
    const pm = find(monitoring, 'PodMonitor', 'registry-mirror-quay');
    const sts = find(mirror, 'StatefulSet', 'registry-mirror-quay');
    const streaming = find(
      synthesizeMirror(
        {
          name: 'quay',
          spec: { upstreamUrl: 'quay.io', fill: 'streaming', cache: { pinned: ['library/nginx:1.27'] } },
          source: 'test',
        },
        { fillImage: 'example.com/mirror-synth:1' },
      ),
      'StatefulSet',
      'registry-mirror-quay',
    );
    const podLabels = sts.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) expect(podLabels[k]).toBe(v);
    const portsOf = (s: any): string[] =>
      s.spec.template.spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => p.name));
    const jobs = pm.spec.podMetricsEndpoints.map((e: any) => {
      // the fill's port only on a streaming mirror's pods, the warm port only on one pinning images,
      // the keeper's only with a mirror-synth image (`mirror` is synthesized without one): on the
      // others the endpoint has no target
      if (['fill-metrics', 'keeper-metrics', 'warm'].includes(e.port)) expect(portsOf(sts)).not.toContain(e.port);
      else expect(portsOf(sts)).toContain(e.port);
      expect(portsOf(streaming)).toContain(e.port);
      return [e.port, e.relabelings.find((r: any) => r.targetLabel === 'job').replacement];
    });
    // up{job="registry-mirror"} is Distribution's alone, so "mirror down" sees it stop
    expect(jobs).toEqual([
      ['metrics', CACHE_JOB],
      ['front-metrics', FRONT_JOB],
      ['volume-metrics', VOLUME_JOB],
      ['fill-metrics', FILL_JOB],
      ['keeper-metrics', KEEPER_JOB],
      ['warm', WARM_JOB],
    ]);
    expect(pm.spec.podTargetLabels).toEqual(['mirror']);
    expect(pm.metadata.namespace).toBe('kube-extra');
  });

  it("the controller's PodMonitor selects its pods and scrapes their metrics port", () => {
    const objs = controllerMonitoringObjects('kube-extra');
    const pm = find(objs, 'PodMonitor', 'mirror-synth-controller');
    const deploy = find(
      controllerObjects({ namespace: 'kube-extra', image: 'x' }),
      'Deployment',
      'mirror-synth-controller',
    );
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) {
      expect(deploy.spec.template.metadata.labels[k]).toBe(v);
    }
    const ports = deploy.spec.template.spec.containers.flatMap((c: any) => c.ports.map((p: any) => p.name));
    expect(ports).toContain(pm.spec.podMetricsEndpoints[0].port);
    expect(find(objs, 'PrometheusRule', 'mirror-synth-controller').spec.groups[0].rules).toHaveLength(
      CONTROLLER_ALERTS.length,
    );
  });

  it('every alert has a for, a severity, and a description naming the mirror (or controller) and a next step', () => {
    const rules = find(monitoring, 'PrometheusRule', 'registry-mirror').spec.groups[0].rules;
    expect(rules.map((r: any) => r.alert)).toEqual(MIRROR_ALERTS.map((r) => r.alert));
    for (const r of [
      ...rules,
      ...CONTROLLER_ALERTS.map((a) => ({ ...a, labels: { severity: a.severity }, annotations: a })),
    ]) {
      expect(r.for, r.alert).toMatch(/^\d+m$/);
      expect(['critical', 'warning']).toContain(r.labels.severity);
      expect(r.annotations.description, r.alert).toMatch(/Next:/);
      if (r.alert !== 'MirrorSynthControllerDown' && r.alert !== 'MirrorSynthReconcileErrors') {
        expect(r.annotations.description, r.alert).toContain('{{ $labels.mirror }}');
      }
    }
  });

  it("the dashboard ConfigMap is labelled for Grafana's sidecar and every panel uses the datasource variable it defines", () => {
    const cm = find(monitoring, 'ConfigMap', 'registry-mirror-dashboard');
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    const model = JSON.parse(Object.values(cm.data as Record<string, string>)[0]);
    expect(model).toEqual(JSON.parse(JSON.stringify(dashboard())));
    const ds = model.templating.list.find((v: any) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(model.panels).toHaveLength(DASHBOARD_PANELS.length);
    for (const p of model.panels) {
      expect(p.datasource.uid, p.title).toBe('${datasource}');
      for (const t of p.targets) expect(t.datasource.uid, p.title).toBe('${datasource}');
    }
    for (const v of model.templating.list.filter((x: any) => x.type === 'query')) {
      expect(v.datasource.uid).toBe('${datasource}');
    }
  });
});

describe('controller-manifests --monitoring', () => {
  it("adds the controller's PodMonitor and PrometheusRule after its own objects, and only when asked", async () => {
    const { controllerManifests } = await import('../../src/cli/controller-manifests.js');
    const kinds = (text: string) => [...text.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);
    const plain = controllerManifests({ image: 'x', namespace: 'kube-extra', log: () => undefined });
    const withMonitoring = controllerManifests({
      image: 'x',
      namespace: 'kube-extra',
      monitoring: true,
      log: () => undefined,
    });
    expect(kinds(plain)).not.toContain('PodMonitor');
    expect(kinds(withMonitoring)).toEqual([...kinds(plain), 'PodMonitor', 'PrometheusRule']);
  });
});
