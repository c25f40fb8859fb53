// The README's two set-up commands on a fresh clone, in either order, as a new user types them:
// a copy of the work tree without node_modules or lib, run with an npm cache of its own (npx
// keeps its installs there, so one run's leftovers cannot hide another's). Typed before
// `npm ci`, `npx mirror-synth` says in one line what to run and leaves nothing that breaks the
// next command; after `npm ci` it works, whichever came first.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, sep } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const LEFT_OUT = new Set(['node_modules', 'lib', '.git']);
const made: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A user's shell: no npm_* variables or node_modules/.bin from the `npm test` running us. */
function userEnv(cache: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && !k.startsWith('VITEST') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((p) => !p.split(sep).includes('node_modules'))
    .join(delimiter);
  env.npm_config_cache = cache;
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  return env;
}

async function run(cwd: string, cache: string, file: string, args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(file, args, { cwd, env: userEnv(cache), maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A fresh clone: the work tree without node_modules or lib, and an empty npx cache. */
async function freshClone(): Promise<{ dir: string; cache: string }> {
  const base = await mkdtemp(join(tmpdir(), 'mirror-synth-clone-'));
  made.push(base);
  const dir = join(base, 'mirror-synth');
  // what a clone holds: the tracked files, and new ones not yet committed (no ignored build output)
  const { stdout: files } = await exec('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    maxBuffer: 16 << 20,
  });
  for (const file of files.split('\0')) {
    if (file === '' || file.split('/').some((part) => LEFT_OUT.has(part))) continue;
    await cp(join(ROOT, file), join(dir, file), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // deleted in the work tree, not yet committed
    });
  }
  // The package tarballs come from this machine's npm cache (hard links, so `npm ci` needs no
  // network); its _npx directory, where npx installs, is left behind.
  const cache = join(base, 'npm-cache');
  const { stdout } = await exec('npm', ['config', 'get', 'cache'], { env: userEnv(join(base, 'unused')) });
  const shared = join(stdout.trim(), '_cacache');
  await exec('cp', ['-al', shared, join(cache, '_cacache')]).catch(async () => {
    await exec('mkdir', ['-p', cache]);
    await exec('cp', ['-a', shared, join(cache, '_cacache')]).catch(() => undefined);
  });
  return { dir, cache };
}

const npmCi = ['ci', '--prefer-offline'];

afterAll(async () => {
  await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
});

describe("a fresh clone and the README's two set-up commands", () => {
  it('npx mirror-synth before npm ci: one line saying to run npm ci; then npm ci, and it works', async () => {
    const { dir, cache } = await freshClone();
    const first = await run(dir, cache, 'npx', ['mirror-synth', '--help']);
    expect(first.code, first.stderr).toBe(1);
    expect(first.stdout).toBe('');
    const lines = first.stderr.trim().split('\n');
    expect(lines, first.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^mirror-synth: not built yet .*run "npm ci"/);

    const ci = await run(dir, cache, 'npm', npmCi);
    expect(ci.code, ci.stderr).toBe(0);

    const help = await run(dir, cache, 'npx', ['mirror-synth', '--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: mirror-synth/);

    // the main job: the committed dist/ is what mirrors/ synthesizes
    const before = await readFile(join(dir, 'dist', 'kustomization.yaml'), 'utf8');
    const synth = await run(dir, cache, 'npx', ['mirror-synth']);
    expect(synth.code, synth.stderr).toBe(0);
    expect(synth.stdout + synth.stderr).toMatch(/no changes/);
    expect(await readFile(join(dir, 'dist', 'kustomization.yaml'), 'utf8')).toBe(before);
  });

  it('npm ci first, then npx mirror-synth works on its first run', async () => {
    const { dir, cache } = await freshClone();
    const ci = await run(dir, cache, 'npm', npmCi);
    expect(ci.code, ci.stderr).toBe(0);
    const help = await run(dir, cache, 'npx', ['mirror-synth', '--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: mirror-synth/);
  });
});
