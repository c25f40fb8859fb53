/** `mirror-synth synth` (the default command): mirrors/ (or the cluster) in, dist/ (or a Helm chart) out. */
import { dirname, join } from 'node:path';

import { checkPolicy } from '../api/policy.js';
import type { MirrorInput } from '../api/validate.js';
import { specWarnings } from '../api/warnings.js';
import { checkFillImage } from '../construct/images.js';
import { loadMirrorDir } from '../sources/files.js';
import type { SynthOptions } from '../synth/chart.js';
import { assembleDist } from '../synth/dist.js';
import { chartParts, helmChartFiles, isCdk8sHelmTemplatesDir } from '../synth/helm.js';
import { writeTree } from '../synth/output.js';
import { renderMirrorFiles } from '../synth/render-pool.js';
import {
  type PolicyFlags,
  resolveChartVersion,
  resolveClusterDomain,
  resolveFillImage,
  resolveFormat,
  resolveMirrorsDir,
  resolveNamespace,
  resolveNodeAgentImage,
  resolveNodeAgentNamespace,
  resolveNodeRuntime,
  resolveOutDir,
  resolvePolicy,
  resolveWorkers,
} from './options.js';

export interface SynthCommandOptions extends PolicyFlags {
  readonly mirrors?: string;
  readonly out?: string;
  readonly namespace?: string;
  /** @default NODE_AGENT_NAMESPACE, else `<namespace>-node` */
  readonly nodeAgentNamespace?: string;
  readonly clusterDomain?: string;
  /** containerd, k3s, rke2 or cri-o. @default NODE_RUNTIME, then cdk8s.yaml `nodeRuntime`, else 'containerd' */
  readonly nodeRuntime?: string;
  /** The node agent's image. @default NODE_AGENT_IMAGE, then cdk8s.yaml `nodeAgentImage`, else busybox pinned */
  readonly nodeAgentImage?: string;
  /** The image of the streaming fill. @default FILL_IMAGE, then cdk8s.yaml `fillImage`, else none */
  readonly fillImage?: string;
  /** Read RegistryMirrors from the cluster instead of --mirrors. */
  readonly fromCluster?: boolean;
  readonly kubeconfig?: string;
  readonly json?: boolean;
  readonly quiet?: boolean;
  /** `plain` (dist/ with kustomizations) or `helm` (a chart, as `cdk8s synth --format helm`). */
  readonly format?: string;
  /** The chart's version; needed with `--format helm`. */
  readonly chartVersion?: string;
  /** Where the summary goes. */
  readonly log?: (line: string) => void;
  /** Where warnings about valid but risky specs go (even with `quiet`). @default stderr */
  readonly warn?: (line: string) => void;
}

/** Print each warning about the specs (api/warnings.ts); returns them. */
export function warnAbout(mirrors: readonly MirrorInput[], warn?: (line: string) => void): string[] {
  const warnings = specWarnings(mirrors);
  for (const w of warnings) (warn ?? ((line: string) => console.error(line)))(`warning: ${w}`);
  return warnings;
}

export interface SynthSummary {
  readonly out: string;
  readonly namespace: string;
  readonly nodeAgentNamespace: string;
  readonly mirrors: string[];
  readonly files: string[];
  readonly changed: string[];
  readonly removed: string[];
  /** Valid but risky specs (api/warnings.ts). */
  readonly warnings: string[];
}

/** The synthesis options shared by synth and check. */
export function synthOptions(opts: {
  namespace?: string;
  nodeAgentNamespace?: string;
  clusterDomain?: string;
  nodeRuntime?: string;
  nodeAgentImage?: string;
  fillImage?: string;
}): Required<Omit<SynthOptions, 'fillImage'>> & Pick<SynthOptions, 'fillImage'> {
  const fillImage = resolveFillImage(opts.fillImage);
  const namespace = resolveNamespace(opts.namespace);
  return {
    namespace,
    nodeAgentNamespace: resolveNodeAgentNamespace(namespace, opts.nodeAgentNamespace),
    clusterDomain: resolveClusterDomain(opts.clusterDomain),
    nodeRuntime: resolveNodeRuntime(opts.nodeRuntime),
    nodeAgentImage: resolveNodeAgentImage(opts.nodeAgentImage),
    ...(fillImage !== undefined ? { fillImage } : {}),
  };
}

/** dist/'s files for these mirrors: mirrors rendered on every core for large sets, then assembled. */
export async function distFiles(mirrors: readonly MirrorInput[], options: SynthOptions): Promise<Map<string, string>> {
  return assembleDist(await renderMirrorFiles(mirrors, options, resolveWorkers()), options);
}

async function loadInputs(opts: SynthCommandOptions): Promise<MirrorInput[]> {
  if (opts.fromCluster) {
    const { listClusterMirrors } = await import('../sources/cluster.js');
    return listClusterMirrors({ kubeconfig: opts.kubeconfig });
  }
  return loadMirrorDir(resolveMirrorsDir(opts.mirrors));
}

/** Nothing is written unless every spec is valid. */
export async function synth(opts: SynthCommandOptions = {}): Promise<SynthSummary> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const options = synthOptions(opts);
  const out = resolveOutDir(opts.out);
  const format = resolveFormat(opts.format);
  const chartVersion = format === 'helm' ? resolveChartVersion(opts.chartVersion) : undefined;
  const policy = resolvePolicy(opts);
  const mirrors = await loadInputs(opts);
  checkPolicy(mirrors, policy);
  checkFillImage(mirrors, options.fillImage);
  const warnings = warnAbout(mirrors, opts.warn);
  const plain = await distFiles(mirrors, options);
  let result;
  if (isCdk8sHelmTemplatesDir(out)) {
    // `cdk8s synth --format helm` wrote Chart.yaml and README.md: add templates/ and crds/
    const parts = chartParts(plain);
    const under = (prefix: string) =>
      new Map([...parts].filter(([p]) => p.startsWith(prefix)).map(([p, t]) => [p.slice(prefix.length), t]));
    await writeTree(join(dirname(out), 'crds'), under('crds/'));
    result = await writeTree(out, under('templates/'));
  } else {
    result = await writeTree(out, chartVersion ? helmChartFiles(plain, { chartVersion }) : plain);
  }
  const summary: SynthSummary = {
    out,
    namespace: options.namespace,
    nodeAgentNamespace: options.nodeAgentNamespace,
    mirrors: mirrors.map((m) => m.name),
    files: result.written,
    changed: result.changed,
    removed: result.removed,
    warnings,
  };
  if (opts.json) log(JSON.stringify(summary, null, 2));
  else if (!opts.quiet) {
    const changes = summary.changed.length + summary.removed.length;
    log(
      `Synthesized ${mirrors.length} mirror${mirrors.length === 1 ? '' : 's'} (${summary.mirrors.join(', ') || 'none'}) into ${out}/ for namespace ${options.namespace}${options.nodeAgentNamespace === options.namespace ? '' : ` (node agents in ${options.nodeAgentNamespace})`}: ` +
        (changes === 0
          ? 'no changes.'
          : `${summary.changed.length} file(s) written, ${summary.removed.length} removed.`),
    );
  }
  return summary;
}
