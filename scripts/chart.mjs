#!/usr/bin/env node
// Writes the controller's Helm chart to charts/mirror-synth/ (npm run chart; run `npm run build` first).
// Its version and appVersion are package.json's.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { registryMirrorCrd } from '../lib/api/crd.js';
import { CONTROLLER_CHART_DIR, controllerChartFiles } from '../lib/synth/controller-chart.js';
import { toYaml } from '../lib/synth/yaml.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dir = join(root, CONTROLLER_CHART_DIR);
rmSync(dir, { recursive: true, force: true });
for (const [path, text] of controllerChartFiles(version, toYaml([registryMirrorCrd()]))) {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), text);
}
console.log(`wrote ${CONTROLLER_CHART_DIR}/ (version ${version})`);
