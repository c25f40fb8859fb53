/** `mirror-synth check`: exit non-zero when dist/ is not what mirrors/ synthesizes to. Writes nothing. */
import { StaleOutputError } from '../api/errors.js';
import { checkPolicy } from '../api/policy.js';
import { checkFillImage } from '../construct/images.js';
import { loadMirrorDir } from '../sources/files.js';
import { diffTree, readTree } from '../synth/output.js';
import { resolveMirrorsDir, resolveOutDir, resolvePolicy } from './options.js';
import { distFiles, type SynthCommandOptions, synthOptions, warnAbout } from './synth.js';

export type CheckCommandOptions = Omit<SynthCommandOptions, 'fromCluster' | 'kubeconfig' | 'json'>;

export async function check(opts: CheckCommandOptions = {}): Promise<void> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const options = synthOptions(opts);
  const out = resolveOutDir(opts.out);
  const policy = resolvePolicy(opts);
  const mirrors = await loadMirrorDir(resolveMirrorsDir(opts.mirrors));
  checkPolicy(mirrors, policy);
  checkFillImage(mirrors, options.fillImage);
  warnAbout(mirrors, opts.warn);
  const expected = await distFiles(mirrors, options);
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
