/** `mirror-synth synth` (the default command): mirrors/ (or the cluster) in, dist/ out. */
import type { MirrorInput } from '../api/validate.js';
import type { SynthOptions } from '../synth/chart.js';
import { assembleDist } from '../synth/dist.js';
import { writeTree } from '../synth/output.js';
import { renderMirrorFiles } from '../synth/render-pool.js';
import { loadMirrorDir } from '../sources/files.js';
import {
  resolveClusterDomain,
  resolveMirrorsDir,
  resolveNamespace,
  resolveNodeRuntime,
  resolveOutDir,
  resolveWorkers,
} from './options.js';

export interface SynthCommandOptions {
  readonly mirrors?: string;
  readonly out?: string;
  readonly namespace?: string;
  readonly clusterDomain?: string;
  /** containerd, k3s, rke2 or cri-o. @default NODE_RUNTIME, then cdk8s.yaml `nodeRuntime`, else 'containerd' */
  readonly nodeRuntime?: string;
  /** Read RegistryMirrors from the cluster instead of --mirrors. */
  readonly fromCluster?: boolean;
  readonly kubeconfig?: string;
  readonly json?: boolean;
  readonly quiet?: boolean;
  /** Where the summary goes. */
  readonly log?: (line: string) => void;
}

export interface SynthSummary {
  readonly out: string;
  readonly namespace: string;
  readonly mirrors: string[];
  readonly files: string[];
  readonly changed: string[];
  readonly removed: string[];
}

/** The synthesis options shared by synth and check. */
export function synthOptions(opts: {
  namespace?: string;
  clusterDomain?: string;
  nodeRuntime?: string;
}): Required<SynthOptions> {
  return {
    namespace: resolveNamespace(opts.namespace),
    clusterDomain: resolveClusterDomain(opts.clusterDomain),
    nodeRuntime: resolveNodeRuntime(opts.nodeRuntime),
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
  const mirrors = await loadInputs(opts);
  const result = await writeTree(out, await distFiles(mirrors, options));
  const summary: SynthSummary = {
    out,
    namespace: options.namespace,
    mirrors: mirrors.map((m) => m.name),
    files: result.written,
    changed: result.changed,
    removed: result.removed,
  };
  if (opts.json) log(JSON.stringify(summary, null, 2));
  else if (!opts.quiet) {
    const changes = summary.changed.length + summary.removed.length;
    log(
      `Synthesized ${mirrors.length} mirror${mirrors.length === 1 ? '' : 's'} (${summary.mirrors.join(', ') || 'none'}) into ${out}/ for namespace ${options.namespace}: ` +
        (changes === 0
          ? 'no changes.'
          : `${summary.changed.length} file(s) written, ${summary.removed.length} removed.`),
    );
  }
  return summary;
}
