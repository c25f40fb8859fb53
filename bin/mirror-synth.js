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
const code = await (await import(main.href)).main(process.argv);
process.exitCode = code;
// A command that failed has nothing left to do. A handle left open (the socket of a request that
// was cut off, a timer) must not keep the process running: a controller that lost its Lease has
// to be gone before a standby takes over. Exits at once when nothing is left; otherwise after 2 s.
if (code !== 0) setTimeout(() => process.exit(code), 2000).unref();
