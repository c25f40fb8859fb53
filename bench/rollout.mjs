#!/usr/bin/env node
// Runner for bench/rollout.ts: compiles it (bench/compile.mjs), then runs it.
//
//   node bench/rollout.mjs [--nodes 3] [--sizes 10,100,1000] [--layers 1,4] [--scale 0.1]
//                          [--rate-mib 32] [--fills whole,streaming] [--replicas 1] [--json]
//
// spegel's method on a real cluster: for each size (MB, times --scale) and layer count, a v1 and
// a v2 image; a DaemonSet of v1 on every node at once ("create"), then rolled to v2 20 % at a time
// ("update"); the kubelet's pull times, direct and through a mirror with each fill, the upstream
// behind one --rate-mib cap shared by every node (0: none). The default --scale 0.1 (1, 10 and
// 100 MB) took 19 min on 2 cores shared with other test runs; --scale 1 is spegel's own sizes.
// --json prints, as the last line, {"nodes", "scale", "rateMiB", "replicas",
// "clusterStartSeconds", "seconds", "rows": [{image, phase, path, pulls: [{node, seconds}],
// medianSeconds, p90Seconds, ratioToDirect, upstreamBytes, uniqueBytes, upstreamRatio,
// slowest: {node, seconds}}]}. Needs root (the real-node cluster; CONTRIBUTING.md).
// Results: printed, and written as JSON to bench/results/.
import { parseArgs } from 'node:util';

import { compileBench, resultsDir } from './compile.mjs';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '10,100,1000' },
    layers: { type: 'string', default: '1,4' },
    scale: { type: 'string', default: '0.1' },
    'rate-mib': { type: 'string', default: '32' },
    fills: { type: 'string', default: 'whole,streaming' },
    replicas: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const list = (flag, value) => {
  const numbers = value.split(',').map(Number);
  if (numbers.some((n) => !(n > 0))) throw new Error(`bench/rollout: --${flag} takes positive numbers, got ${value}`);
  return numbers;
};
const nodes = Number(values.nodes);
const scale = Number(values.scale);
const rateMiB = Number(values['rate-mib']);
const replicas = Number(values.replicas);
const sizesMB = list('sizes', values.sizes);
const layers = list('layers', values.layers);
const fills = values.fills.split(',').filter(Boolean);
if (!(Number.isInteger(nodes) && nodes >= 1 && nodes <= 32))
  throw new Error(`bench/rollout: --nodes from 1 to 32, got ${values.nodes}`);
if (!(scale > 0 && scale <= 1)) throw new Error(`bench/rollout: --scale above 0 and at most 1, got ${values.scale}`);
if (!(rateMiB >= 0)) throw new Error(`bench/rollout: --rate-mib 0 or more, got ${values['rate-mib']}`);
if (layers.some((n) => !Number.isInteger(n) || n > 16))
  throw new Error(`bench/rollout: --layers are whole numbers up to 16, got ${values.layers}`);
if (fills.some((f) => f !== 'whole' && f !== 'streaming'))
  throw new Error(`bench/rollout: --fills is a list of whole and streaming, got ${values.fills}`);
if (!(Number.isInteger(replicas) && replicas >= 1 && replicas * fills.length <= 4))
  throw new Error(
    `bench/rollout: --replicas times the fills at most 4 (the cluster has 4 volumes), got ${values.replicas}`,
  );
const { runRollout } = await import(compileBench('rollout'));
await runRollout({ nodes, sizesMB, layers, scale, rateMiB, fills, replicas, json: values.json, resultsDir });
