/**
 * A synthesized mirror as a vitest file-scoped fixture: `synthesize(name, spec)` writes the spec
 * to `mirrors/<name>.yaml` in a directory of its own, runs `mirror-synth synth` on it as a user
 * does, and returns `dist/` and the objects `kubectl apply -k dist/` would send (kustomize's
 * build). Every directory it made is removed after the file's last test.
 *
 *     const test = synthTest();
 *     test('the cache pod runs the fill', async ({ synthesize }) => {
 *       const { objects } = await synthesize('quay', { upstreamUrl: 'quay.io', fill: 'streaming' });
 *       expect(objects.find((o) => o.kind === 'StatefulSet')).toBeDefined();
 *     });
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { KubernetesObject } from '@kubernetes/client-node';
import { test as base } from 'vitest';
import { stringify } from 'yaml';

import { synth, type SynthCommandOptions } from '../../../src/cli/synth.js';
import { objectsOf } from '../kube/node-workloads.js';
import { ensureTool } from '../primitives/tools.js';

const exec = promisify(execFile);

export interface Synthesized {
  /** The directory holding `mirrors/` and `dist/`. */
  readonly dir: string;
  readonly dist: string;
  /** `kustomize build dist/`: what `kubectl apply -k dist/` applies, in its order. */
  readonly objects: KubernetesObject[];
}

/** Options of `synth` beside where it reads and writes (`fillImage`, `namespace`, ...). */
export type SynthSettings = Omit<SynthCommandOptions, 'mirrors' | 'out' | 'quiet'>;

export type Synthesize = (
  name: string,
  spec: Record<string, unknown>,
  settings?: SynthSettings,
) => Promise<Synthesized>;

/** Synthesize one mirror into a new directory under `parent`. */
export async function synthesizeMirror(
  parent: string,
  name: string,
  spec: Record<string, unknown>,
  settings: SynthSettings = {},
): Promise<Synthesized> {
  const dir = await mkdtemp(join(parent, `${name}-`));
  await mkdir(join(dir, 'mirrors'));
  const doc = { apiVersion: 'k8s.osp.tech/v1', kind: 'RegistryMirror', metadata: { name }, spec };
  await writeFile(join(dir, 'mirrors', `${name}.yaml`), stringify(doc));
  const dist = join(dir, 'dist');
  await synth({ ...settings, mirrors: join(dir, 'mirrors'), out: dist, quiet: true });
  const kustomize = await ensureTool('kustomize');
  const { stdout } = await exec(kustomize, ['build', dist], { maxBuffer: 64 * 1024 * 1024 });
  return { dir, dist, objects: objectsOf(stdout) };
}

/** A `test` whose file-scoped fixture `synthesize` synthesizes a mirror (see the top of this file). */
export function synthTest() {
  // vitest reads a fixture's dependencies from its first parameter: it must be a destructuring pattern
  return base.extend('synthesize', { scope: 'file' }, async ({}, { onCleanup }): Promise<Synthesize> => {
    const parent = await mkdtemp(join(tmpdir(), 'ms-synth-'));
    onCleanup(() => rm(parent, { recursive: true, force: true }));
    return (name, spec, settings) => synthesizeMirror(parent, name, spec, settings);
  });
}
