/** Worker thread for render-parallel.ts: renders its share of mirrors and posts the files back. */
import { parentPort, workerData } from 'node:worker_threads';
import { renderMirrorFile, type SynthOptions } from './app.js';
import type { MirrorInput } from './spec.js';

const { mirrors, opts } = workerData as { mirrors: MirrorInput[]; opts: SynthOptions };
parentPort!.postMessage(mirrors.map((m) => renderMirrorFile(m, opts)));
