/**
 * Writing dist/ whole: files go to a temp directory next to the target, which is then
 * swapped in, so a failed or interrupted run never leaves half an output.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { UsageError } from '../api/errors.js';
import { IO_CONCURRENCY, mapLimit } from '../util/parallel.js';
import { HELM_README } from './helm.js';
import { GENERATED_HEADER } from './yaml.js';

/** Every file below dir, by path relative to dir, with '/' separators. Missing dir: empty map. */
export async function readTree(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(join(dir, rel), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && rel === '') return;
      throw e;
    }
    const subdirs: string[] = [];
    const paths: string[] = [];
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      (entry.isDirectory() ? subdirs : paths).push(path);
    }
    const texts = await mapLimit(paths, IO_CONCURRENCY, (path) => readFile(join(dir, path), 'utf8'));
    paths.forEach((path, i) => files.set(path, texts[i]));
    for (const sub of subdirs) await walk(sub);
  };
  await walk('');
  return files;
}

/** Refuse to replace a directory mirror-synth did not write (say `--out .` by mistake). */
async function assertReplaceable(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR')
      throw new UsageError(`output ${dir} is a file, not a directory`);
    throw e;
  }
  if (entries.length === 0) return;
  const kustomization = await readFile(join(dir, 'kustomization.yaml'), 'utf8').catch(() => '');
  // a chart (--format helm) has no kustomization: its README.md is the mark
  const readme = await readFile(join(dir, 'README.md'), 'utf8').catch(() => '');
  if (!kustomization.startsWith(GENERATED_HEADER) && readme !== HELM_README) {
    throw new UsageError(
      `refusing to replace ${dir}: it holds files mirror-synth did not write (no generated kustomization.yaml). Choose an empty or new --out directory.`,
    );
  }
}

export interface WriteResult {
  readonly written: string[];
  readonly changed: string[];
  readonly removed: string[];
}

/** Replace dir with exactly these files. */
export async function writeTree(dir: string, files: ReadonlyMap<string, string>): Promise<WriteResult> {
  const target = resolve(dir);
  await assertReplaceable(target);
  const before = await readTree(target);
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const tmp = await mkdtemp(join(parent, `.${basename(target)}.tmp-`));
  try {
    const dirs = new Set([...files.keys()].map((path) => dirname(join(tmp, path))));
    for (const d of [...dirs].sort()) await mkdir(d, { recursive: true });
    await mapLimit([...files], IO_CONCURRENCY, ([path, content]) => writeFile(join(tmp, path), content));
    const old = `${tmp}-old`;
    let moved = false;
    try {
      await rename(target, old);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    try {
      await rename(tmp, target);
    } catch (e) {
      if (moved) await rename(old, target);
      throw e;
    }
    if (moved) await rm(old, { recursive: true, force: true });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return {
    written: [...files.keys()],
    changed: [...files].filter(([p, c]) => before.get(p) !== c).map(([p]) => p),
    removed: [...before.keys()].filter((p) => !files.has(p)),
  };
}

export interface TreeDiff {
  readonly missing: string[];
  readonly changed: string[];
  readonly extra: string[];
}

export function diffTree(expected: ReadonlyMap<string, string>, actual: ReadonlyMap<string, string>): TreeDiff {
  return {
    missing: [...expected.keys()].filter((p) => !actual.has(p)),
    changed: [...expected].filter(([p, c]) => actual.has(p) && actual.get(p) !== c).map(([p]) => p),
    extra: [...actual.keys()].filter((p) => !expected.has(p)),
  };
}
