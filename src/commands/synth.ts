import { renderDist, type SynthOptions } from '../app.js';
import { StaleOutputError } from '../errors.js';
import { diffTree, readTree, writeTree } from '../output.js';
import { renderMirrorFiles } from '../render-parallel.js';
import { resolveClusterDomain, resolveMirrorsDir, resolveNamespace, resolveOutDir } from '../options.js';
import { loadMirrorDir, type MirrorInput } from '../spec.js';

export interface SynthCommandOptions {
  readonly mirrors?: string;
  readonly out?: string;
  readonly namespace?: string;
  readonly clusterDomain?: string;
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

async function loadInputs(opts: SynthCommandOptions): Promise<MirrorInput[]> {
  if (opts.fromCluster) {
    const { listClusterMirrors } = await import('../sources/cluster.js');
    return listClusterMirrors({ kubeconfig: opts.kubeconfig });
  }
  return loadMirrorDir(resolveMirrorsDir(opts.mirrors));
}

function synthOptions(opts: SynthCommandOptions): Required<SynthOptions> {
  return { namespace: resolveNamespace(opts.namespace), clusterDomain: resolveClusterDomain(opts.clusterDomain) };
}

/** mirrors/ (or the cluster) in, dist/ out. Nothing is written unless every spec is valid. */
export async function synth(opts: SynthCommandOptions = {}): Promise<SynthSummary> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const options = synthOptions(opts);
  const out = resolveOutDir(opts.out);
  const mirrors = await loadInputs(opts);
  const files = renderDist(mirrors, options, await renderMirrorFiles(mirrors, options));
  const result = await writeTree(out, files);
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

export type CheckCommandOptions = Omit<SynthCommandOptions, 'fromCluster' | 'kubeconfig'>;

/** Exit non-zero when dist/ is not what mirrors/ synthesizes to. Writes nothing. */
export async function check(opts: CheckCommandOptions = {}): Promise<void> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const options = synthOptions(opts);
  const out = resolveOutDir(opts.out);
  const mirrors = await loadMirrorDir(resolveMirrorsDir(opts.mirrors));
  const expected = renderDist(mirrors, options, await renderMirrorFiles(mirrors, options));
  const diff = diffTree(expected, await readTree(out));
  const lines = [
    ...diff.missing.map((p) => `  missing:  ${out}/${p}`),
    ...diff.changed.map((p) => `  stale:    ${out}/${p}`),
    ...diff.extra.map((p) => `  unwanted: ${out}/${p}`),
  ];
  if (lines.length > 0) {
    throw new StaleOutputError(
      `${out}/ is stale: ${lines.length} file(s) differ from what the mirrors synthesize to.\n${lines.join('\n')}\nRun \`npx mirror-synth\` and commit ${out}/.`,
    );
  }
  if (!opts.quiet) log(`${out}/ is up to date (${expected.size} files).`);
}
