// Shared by the bench runners: compile bench/*.ts (with the src/ and test/support/ they import)
// with the project's tsc into node_modules/.cache/mirror-synth-bench, and return its module URL.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..');
export const resultsDir = join(here, 'results');
const out = join(root, 'node_modules', '.cache', 'mirror-synth-bench');

/** Compile the benchmarks; `name` (e.g. 'datapath') picks the module whose URL is returned. */
export function compileBench(name) {
  execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(here, 'tsconfig.json')],
    {
      stdio: 'inherit',
    },
  );
  // Compiled files find repo files relative to themselves: src/construct/assets.ts reads ../../assets/node-agent.sh,
  // test/support/primitives/tools.ts reads tools/<module>/go.mod and runs tools/build.sh.
  mkdirSync(out, { recursive: true });
  for (const dir of ['assets', 'tools']) {
    if (!existsSync(join(out, dir))) symlinkSync(join(root, dir), join(out, dir));
  }
  return pathToFileURL(join(out, 'bench', `${name}.js`)).href;
}
