import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { synthesizeMirror } from '../../src/synth/chart.js';
import { toYaml } from '../../src/synth/yaml.js';
import { parseMirrorFile } from '../../src/api/validate.js';

// Every spec in fixtures/mirrors/ synthesizes to exactly fixtures/expected/<file>.
// After an intended change: UPDATE_GOLDEN=1 npx vitest run test/synth/golden.test.ts, then review the diff.
// A spec without a golden file fails: its expectation is written only when asked for.
const fixtures = new URL('../fixtures', import.meta.url).pathname;

describe('golden output', () => {
  for (const file of readdirSync(join(fixtures, 'mirrors')).sort()) {
    it(file, () => {
      const mirrors = parseMirrorFile(readFileSync(join(fixtures, 'mirrors', file), 'utf8'), file);
      const actual = toYaml(mirrors.flatMap((m) => synthesizeMirror(m, { namespace: 'kube-extra' })));
      const goldenPath = join(fixtures, 'expected', file);
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(goldenPath, actual);
      if (!existsSync(goldenPath)) {
        throw new Error(
          `${goldenPath} is missing: run UPDATE_GOLDEN=1 npx vitest run test/synth/golden.test.ts and review it`,
        );
      }
      expect(actual).toBe(readFileSync(goldenPath, 'utf8'));
    });
  }
});
