// Distribution's proxy.exec credential helper (assets/credential-helper.sh), run under the sh
// the registry image has (busybox on Debian here), as Distribution runs it: `<helper> get` with
// the upstream host on stdin, JSON on stdout.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { credentialHelperScript } from '../../src/construct/assets.js';

function runHelper(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'sh',
      ['-c', credentialHelperScript(), 'credential-helper.sh', 'get'],
      { env },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end('quay.io');
  });
}

describe('the credential helper', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ms-helper-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('without CREDENTIALS_DIR (a mirror without credentialsSecret) answers with no credentials: Distribution asks anonymously', async () => {
    const got = await runHelper({ PATH: process.env.PATH! });
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual({ Username: '', Secret: '' });
  });

  it("with CREDENTIALS_DIR prints the mounted Secret's username and password as JSON", async () => {
    await writeFile(join(dir, 'username'), 'mirror-bot\n');
    await writeFile(join(dir, 'password'), 'p"a\\ss');
    const got = await runHelper({ PATH: process.env.PATH!, CREDENTIALS_DIR: dir });
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual({ Username: 'mirror-bot', Secret: 'p"a\\ss' });
  });

  it('with CREDENTIALS_DIR but a key missing fails naming the key, never printing a value', async () => {
    const empty = await mkdtemp(join(dir, 'partial-'));
    await writeFile(join(empty, 'username'), 'only-the-user');
    const got = await runHelper({ PATH: process.env.PATH!, CREDENTIALS_DIR: empty });
    expect(got.code).not.toBe(0);
    expect(got.stderr).toMatch(/cannot read key 'password'/);
    expect(got.stdout + got.stderr).not.toContain('only-the-user');
  });
});
