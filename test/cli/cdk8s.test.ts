// The real cdk8s-cli (a devDependency, as `cdk8s init` makes it) running this repository's
// cdk8s.yaml: `npx cdk8s synth` gives the committed dist/, and `--format helm` gives what
// `mirror-synth synth --format helm` writes. Needs lib/ built (npm test builds it).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readTree } from '../../src/synth/output.js';

const root = new URL('../../', import.meta.url).pathname;
const exec = promisify(execFile);
const cdk8s = join(root, 'node_modules', '.bin', 'cdk8s');
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'cdk8s-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('npx cdk8s synth', () => {
  it('writes the committed dist/', async () => {
    const out = join(tmp, 'plain');
    await exec(cdk8s, ['synth', '--no-check-upgrade', '-o', out], { cwd: root, timeout: 60_000 });
    expect(await readTree(out)).toEqual(await readTree(join(root, 'dist')));
  }, 90_000);

  it('--format helm writes the chart mirror-synth writes', async () => {
    const viaCdk8s = join(tmp, 'cdk8s-chart');
    const viaMirrorSynth = join(tmp, 'mirror-synth-chart');
    await exec(cdk8s, ['synth', '--no-check-upgrade', '--format', 'helm', '--chart-version', '0.1.0', '-o', viaCdk8s], {
      cwd: root,
      timeout: 60_000,
    });
    await exec(
      'node',
      [
        join(root, 'bin', 'mirror-synth.js'),
        'synth',
        '-q',
        '--format',
        'helm',
        '--chart-version',
        '0.1.0',
        '--out',
        viaMirrorSynth,
      ],
      { cwd: root, timeout: 60_000 },
    );
    const chart = await readTree(viaCdk8s);
    expect([...chart.keys()]).toContain('crds/crd.yaml');
    expect(chart).toEqual(await readTree(viaMirrorSynth));
  }, 90_000);
});
