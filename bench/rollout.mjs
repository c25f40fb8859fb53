#!/usr/bin/env node
// Runner for bench/rollout.ts: compiles it (bench/compile.mjs), then runs it.
//
//   node bench/rollout.mjs [--nodes 3] [--layer-mb 64] [--replicas 1] [--json]
//
// A DaemonSet of an upstream-only image on every node of a real cluster: straight from the
// upstream, then through a synthesized mirror cold and warm. --json prints, as the last line,
// {"nodes", "layerMiB", "replicas", "clusterStartSeconds", "rows": [{path, seconds,
// upstreamBytesRatio}]}. Needs root (the real-node cluster; CONTRIBUTING.md).
// Results: printed, and written as JSON to bench/results/.
import { parseArgs } from 'node:util';

import { compileBench, resultsDir } from './compile.mjs';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    'layer-mb': { type: 'string', default: '64' },
    replicas: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const nodes = Number(values.nodes);
const layerMiB = Number(values['layer-mb']);
const replicas = Number(values.replicas);
if (!(Number.isInteger(nodes) && nodes >= 1 && nodes <= 32))
  throw new Error(`bench/rollout: --nodes from 1 to 32, got ${values.nodes}`);
if (!(layerMiB > 0 && layerMiB <= 2000))
  throw new Error(`bench/rollout: --layer-mb out of range: ${values['layer-mb']}`);
if (!(Number.isInteger(replicas) && replicas >= 1 && replicas <= 4))
  throw new Error(`bench/rollout: --replicas from 1 to 4 (the cluster has 4 volumes), got ${values.replicas}`);
const { runRollout } = await import(compileBench('rollout'));
await runRollout({ nodes, layerMiB, replicas, json: values.json, resultsDir });
