#!/usr/bin/env node
// Compiles src/ to lib/ with the project's TypeScript. `npm run build` and `npm ci` (through
// `prepare`) run it.
//
// `--if-present` is for `prepare`: npm runs `prepare` in places where the devDependencies are
// not installed — `npx mirror-synth` typed in a fresh clone before `npm ci` installs the clone
// into npx's cache and runs it there. Failing then leaves npx a half-made cache entry that breaks
// every later `npx mirror-synth` in the clone, so without TypeScript this says what to run and
// succeeds, keeping any lib/ there is; bin/mirror-synth.js then refuses with the same advice.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ifPresent = process.argv.includes('--if-present');

let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  const line = `mirror-synth: TypeScript is not installed in ${root}, so src/ was not compiled: run "npm ci" there`;
  console.error(line);
  process.exit(ifPresent ? 0 : 1);
}

rmSync(join(root, 'lib'), { recursive: true, force: true });
const { status, signal } = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(status ?? (signal ? 1 : 0));
