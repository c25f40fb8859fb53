// The mirror-synth command line, two ways: main() in this process with its output captured
// (fast: cdk8s loads once per worker), or the real binary in a process of its own, for what
// only a process shows (exit codes through bin/, the working directory's files, worker threads).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { vi } from 'vitest';

import { main } from '../../../src/cli/main.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const root = new URL('../../../', import.meta.url).pathname;
export const bin = join(root, 'bin', 'mirror-synth.js');
/** A spawned node process loads cdk8s from disk: seconds on a busy 2-core machine. Not a speed target. */
export const SPAWN_TIMEOUT = 60_000;

/** The real binary, as `npx mirror-synth` runs it (compiled lib/, built by `npm test`). */
export async function spawnCli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)('node', [bin, ...args], {
      cwd,
      env: { ...process.env, NAMESPACE: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** The CLI in this process: main() with stdout and stderr captured. */
export async function cli(...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => {
    stdout += `${parts.join(' ')}\n`;
  });
  const errWrite = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'mirror-synth', ...args], (line) => (stderr += `${line}\n`));
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    log.mockRestore();
    errWrite.mockRestore();
  }
}
