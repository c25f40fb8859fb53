/**
 * The files of dist/: the CRD, the namespace, one file per mirror and a kustomization.yaml
 * listing them, so Argo CD and Flux can point at the directory.
 */
import { basename } from 'node:path';
import { compareStrings } from '../api/kube-object.js';
import { DEFAULT_NAMESPACE } from '../api/names.js';
import { registryMirrorCrd } from '../api/crd.js';
import type { MirrorInput } from '../api/validate.js';
import { namespaceObject, synthesizeMirror, type SynthOptions } from './chart.js';
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
  files.set('namespace.yaml', toYaml([namespaceObject(opts.namespace ?? DEFAULT_NAMESPACE)]));
  for (const [path, text] of mirrorFiles) files.set(path, text);
  const resources = [...files.keys()].sort(
    (a, b) => (a.startsWith('mirrors/') ? 1 : 0) - (b.startsWith('mirrors/') ? 1 : 0) || compareStrings(a, b),
  );
  files.set(
    'kustomization.yaml',
    valueToYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources }),
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
