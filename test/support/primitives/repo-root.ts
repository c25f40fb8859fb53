// The repository's root: the nearest folder above this file with a package.json. The same from
// test/support/ and from the benchmarks' compiled copy (node_modules/.cache/mirror-synth-bench/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const repoRoot = findRepoRoot(import.meta.dirname);
