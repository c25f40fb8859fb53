#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../lib/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  // a clone used before `npm ci`, or after `npm run build` failed: say what to run, not a stack
  const root = fileURLToPath(new URL('..', import.meta.url));
  console.error(`mirror-synth: not built yet (no lib/ in ${root}): run "npm ci" there first`);
  process.exit(1);
}
process.exitCode = await (await import(main.href)).main(process.argv);
