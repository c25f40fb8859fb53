/**
 * The files of dist/: the CRD, the namespaces (output and node agent), one file per mirror and a kustomization.yaml
 * listing them, so Argo CD and Flux can point at the directory. dist/monitoring/ holds the
 * PodMonitors, alerts and dashboard with a kustomization of its own: it needs the Prometheus
 * Operator's CRDs, so dist/'s kustomization leaves it out and `kubectl apply -k dist/` works
 * on any cluster; `kubectl apply -k dist/monitoring/` adds it where the operator runs.
 */
import { basename } from 'node:path';

import { registryMirrorCrd } from '../api/crd.js';
import { compareStrings } from '../api/kube-object.js';
import type { MirrorInput } from '../api/validate.js';
import { monitoringObjects, namespaceObjects, synthesizeMirror, type SynthOptions } from './chart.js';
import { GENERATED_HEADER, toYaml, valueToYaml } from './yaml.js';

/** One mirror's file in dist/: its path and its YAML. */
export function renderMirrorFile(mirror: MirrorInput, opts: SynthOptions = {}): [string, string] {
  return [
    `mirrors/${mirror.name}.yaml`,
    toYaml(
      synthesizeMirror(mirror, opts),
      `${GENERATED_HEADER}\n# Mirror ${mirror.name} from ${basename(mirror.source)}.`,
    ),
  ];
}

/**
 * dist/ by relative path, from the mirrors' files (rendered by render-pool.ts, in order) and
 * the files every output has.
 */
export function assembleDist(mirrorFiles: Iterable<[string, string]>, opts: SynthOptions = {}): Map<string, string> {
  const files = new Map<string, string>();
  files.set('crd.yaml', toYaml([registryMirrorCrd()]));
  files.set('namespace.yaml', toYaml(namespaceObjects(opts)));
  for (const [path, text] of mirrorFiles) files.set(path, text);
  const resources = [...files.keys()].sort(
    (a, b) => (a.startsWith('mirrors/') ? 1 : 0) - (b.startsWith('mirrors/') ? 1 : 0) || compareStrings(a, b),
  );
  files.set('kustomization.yaml', kustomization(resources));
  // the mirrors' names, from their files (mirrors/<name>.yaml, as renderMirrorFile writes them)
  const names = resources
    .filter((p) => p.startsWith('mirrors/'))
    .map((p) => p.slice('mirrors/'.length, -'.yaml'.length));
  const monitoring = monitoringObjects(names, opts);
  const byKind = (kind: string) => monitoring.filter((o) => o.kind === kind);
  files.set('monitoring/podmonitors.yaml', toYaml(byKind('PodMonitor')));
  files.set('monitoring/prometheusrule.yaml', toYaml(byKind('PrometheusRule')));
  files.set('monitoring/dashboard.yaml', toYaml(byKind('ConfigMap')));
  files.set(
    'monitoring/kustomization.yaml',
    kustomization(['dashboard.yaml', 'podmonitors.yaml', 'prometheusrule.yaml']),
  );
  return new Map([...files].sort(([a], [b]) => compareStrings(a, b)));
}

/** dist/ for a set of mirrors, rendered on this thread. */
export function renderDist(mirrors: readonly MirrorInput[], opts: SynthOptions = {}): Map<string, string> {
  return assembleDist(
    mirrors.map((m) => renderMirrorFile(m, opts)),
    opts,
  );
}

function kustomization(resources: string[]): string {
  return valueToYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources });
}
