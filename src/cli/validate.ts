import { checkPolicy } from '../api/policy.js';
import { specWarnings } from '../api/warnings.js';
import { checkFillImage } from '../construct/images.js';
import { loadMirrorDir } from '../sources/files.js';
import { type PolicyFlags, resolveFillImage, resolveMirrorsDir, resolvePolicy } from './options.js';

export interface ValidateCommandOptions extends PolicyFlags {
  readonly mirrors?: string;
  /** The image of the streaming fill, as for synth: a mirror with `spec.fill: streaming` needs one. */
  readonly fillImage?: string;
  readonly quiet?: boolean;
  readonly log?: (line: string) => void;
  /** Where warnings about valid but risky specs go (even with `quiet`). @default stderr */
  readonly warn?: (line: string) => void;
}

/** Validate every mirror spec; throws SpecError listing every problem. */
export async function validate(opts: ValidateCommandOptions = {}): Promise<string[]> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const dir = resolveMirrorsDir(opts.mirrors);
  const policy = resolvePolicy(opts);
  const fillImage = resolveFillImage(opts.fillImage);
  const mirrors = await loadMirrorDir(dir);
  checkPolicy(mirrors, policy);
  checkFillImage(mirrors, fillImage);
  // Not synth.js's warnAbout: validate never loads cdk8s.
  for (const w of specWarnings(mirrors)) (opts.warn ?? ((line: string) => console.error(line)))(`warning: ${w}`);
  if (!opts.quiet)
    log(`${mirrors.length} mirror spec(s) in ${dir}/ are valid: ${mirrors.map((m) => m.name).join(', ') || 'none'}.`);
  return mirrors.map((m) => m.name);
}
