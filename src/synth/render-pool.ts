/**
 * Rendering many mirrors on every core. Each mirror's file is independent and the work is
 * CPU-bound (cdk8s synthesis, YAML), so large sets are split between this thread and worker
 * threads running render-worker.js. Output is identical to rendering in order on one thread.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import type { MirrorInput } from '../api/validate.js';
import type { SynthOptions } from './chart.js';
import { renderMirrorFile } from './dist.js';

/** Below this many mirrors a worker's start-up (loading cdk8s) costs more than it saves. */
export const PARALLEL_THRESHOLD = 200;

const WORKER = new URL('./render-worker.js', import.meta.url);

/**
 * Threads to use: `workers` if given (1 = this thread only), else one per core (at most 4)
 * for large sets.
 */
export function renderThreads(count: number, workers?: number): number {
  if (workers === undefined && count < PARALLEL_THRESHOLD) return 1;
  const wanted = workers ?? Math.min(availableParallelism(), 4);
  // Workers need the compiled worker file: run from sources (vitest), everything stays on this thread.
  if (!existsSync(fileURLToPath(WORKER))) return 1;
  return Math.min(wanted, count);
}

function renderInWorker(mirrors: readonly MirrorInput[], opts: SynthOptions): Promise<[string, string][]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: { mirrors, opts } });
    worker.once('message', (files: [string, string][]) => resolve(files));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`render worker exited with code ${code}`));
    });
  });
}

/** Every mirror's [path, YAML], in the order of `mirrors`. */
export async function renderMirrorFiles(
  mirrors: readonly MirrorInput[],
  opts: SynthOptions,
  workers?: number,
): Promise<[string, string][]> {
  const threads = renderThreads(mirrors.length, workers);
  if (threads <= 1) return mirrors.map((m) => renderMirrorFile(m, opts));
  const size = Math.ceil(mirrors.length / threads);
  const chunks = Array.from({ length: threads }, (_, i) => mirrors.slice(i * size, (i + 1) * size));
  const [own, ...others] = chunks;
  const pending = others.map((chunk) => renderInWorker(chunk, opts));
  const mine = own.map((m) => renderMirrorFile(m, opts));
  return [mine, ...(await Promise.all(pending))].flat();
}
