import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { parseMirrorFile } from '../../src/api/validate.js';
import { DEFAULT_NODE_RUNTIME, NODE_RUNTIMES } from '../../src/construct/platform.js';
import { synthesizeMirror } from '../../src/synth/chart.js';
import { toYaml } from '../../src/synth/yaml.js';

// Every spec in fixtures/mirrors/ synthesizes to exactly fixtures/expected/<file>.
// After an intended change: UPDATE_GOLDEN=1 npx vitest run test/synth/golden.test.ts, then review the diff.
// A spec without a golden file fails: its expectation is written only when asked for.
const fixtures = new URL('../fixtures', import.meta.url).pathname;

function expectGolden(actual: string, goldenPath: string): void {
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(goldenPath, actual);
  if (!existsSync(goldenPath)) {
    throw new Error(
      `${goldenPath} is missing: run UPDATE_GOLDEN=1 npx vitest run test/synth/golden.test.ts and review it`,
    );
  }
  expect(actual).toBe(readFileSync(goldenPath, 'utf8'));
}

describe('golden output', () => {
  for (const file of readdirSync(join(fixtures, 'mirrors')).sort()) {
    it(file, () => {
      const mirrors = parseMirrorFile(readFileSync(join(fixtures, 'mirrors', file), 'utf8'), file);
      const actual = toYaml(mirrors.flatMap((m) => synthesizeMirror(m, { namespace: 'kube-extra' })));
      expectGolden(actual, join(fixtures, 'expected', file));
    });
  }
});

// Each other node runtime changes only the node agent: fixtures/mirrors/full.yaml (with a
// masqueradeUrl) synthesizes to fixtures/expected/node-runtime/<runtime>.yaml.
describe('golden output per node runtime', () => {
  for (const runtime of NODE_RUNTIMES.filter((r) => r !== DEFAULT_NODE_RUNTIME)) {
    it(runtime, () => {
      const mirrors = parseMirrorFile(readFileSync(join(fixtures, 'mirrors', 'full.yaml'), 'utf8'), 'full.yaml');
      const actual = toYaml(
        mirrors.flatMap((m) => synthesizeMirror(m, { namespace: 'kube-extra', nodeRuntime: runtime })),
      );
      expectGolden(actual, join(fixtures, 'expected', 'node-runtime', `${runtime}.yaml`));
    });
  }
});
