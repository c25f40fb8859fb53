/** Worker thread for render-pool.ts: renders its share of mirrors and posts the files back. */
import { parentPort, workerData } from 'node:worker_threads';

import type { MirrorInput } from '../api/validate.js';
import type { SynthOptions } from './chart.js';
import { renderMirrorFile } from './dist.js';

const { mirrors, opts } = workerData as { mirrors: MirrorInput[]; opts: SynthOptions };
parentPort!.postMessage(mirrors.map((m) => renderMirrorFile(m, opts)));
