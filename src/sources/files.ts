/**
 * Mirror specs from files: every *.yaml / *.yml in a directory (mirrors/ by default).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { SpecError, type SpecProblem, UsageError } from '../api/errors.js';
import { checkMirrorSet, type MirrorInput, parseMirrorFile } from '../api/validate.js';
import { IO_CONCURRENCY, mapLimit } from '../util/parallel.js';

/** Read every *.yaml / *.yml file in a directory (sorted by name), validating all of them. */
export async function loadMirrorDir(dir: string): Promise<MirrorInput[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`mirrors directory ${dir} does not exist (use --mirrors DIR)`);
    if (code === 'ENOTDIR') throw new UsageError(`${dir} is not a directory (use --mirrors DIR)`);
    throw e;
  }
  const files = entries.filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.')).sort();
  const texts = await mapLimit(files, IO_CONCURRENCY, (file) => readFile(join(dir, file), 'utf8'));
  const problems: SpecProblem[] = [];
  const mirrors: MirrorInput[] = [];
  files.forEach((file, i) => {
    try {
      mirrors.push(...parseMirrorFile(texts[i], join(dir, file)));
    } catch (e) {
      if (e instanceof SpecError) problems.push(...e.problems);
      else throw e;
    }
  });
  if (problems.length > 0) throw new SpecError(problems);
  checkMirrorSet(mirrors);
  return mirrors;
}
