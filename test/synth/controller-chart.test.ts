// The committed controller chart (charts/mirror-synth/) is what `npm run chart` writes from today's
// constructs and package.json: a change to the controller's manifests that forgot the chart fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { registryMirrorCrd } from '../../src/api/crd.js';
import { CONTROLLER_CHART_DIR, controllerChartFiles } from '../../src/synth/controller-chart.js';
import { readTree } from '../../src/synth/output.js';
import { toYaml } from '../../src/synth/yaml.js';
import { repoRoot } from '../support/primitives/repo-root.js';

describe('charts/mirror-synth', () => {
  it('is current: npm run chart writes exactly the committed files', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const expected = controllerChartFiles(version, toYaml([registryMirrorCrd()]));
    const committed = await readTree(join(repoRoot, CONTROLLER_CHART_DIR));
    expect([...committed.keys()].sort(), 'run `npm run chart` and commit charts/').toEqual([...expected.keys()].sort());
    for (const [path, text] of expected) expect(committed.get(path), `${path}: run \`npm run chart\``).toBe(text);
  });

  it("takes version and appVersion from package.json, the release's one place", () => {
    const files = controllerChartFiles('9.8.7-rc.1', '');
    expect(files.get('Chart.yaml')).toMatch(/^version: 9\.8\.7-rc\.1$/m);
    expect(files.get('Chart.yaml')).toMatch(/^appVersion: 9\.8\.7-rc\.1$/m);
  });
});
