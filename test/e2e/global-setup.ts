// e2e prerequisites, once per run: the Debian packages in scripts/test-deps.txt (installed by
// scripts/install-test-deps.sh when a binary is missing; CI runs as root) and the Distribution
// binary (built and cached by tools/build.sh through ensureTool). Tests get its path by inject().
import { execFile, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { TestProject } from 'vitest/node';

import { ensureTool } from '../support/primitives/tools.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the CNCF Distribution `registry` binary. */
    registryBinary: string;
  }
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Binary -> Debian package providing it. */
const needed: Record<string, string> = {
  containerd: 'containerd',
  ctr: 'containerd',
  openssl: 'openssl',
  htpasswd: 'apache2-utils',
  umoci: 'umoci',
  strip: 'binutils',
  runc: 'runc',
  nginx: 'nginx',
  skopeo: 'skopeo',
  socat: 'socat',
  conntrack: 'conntrack',
  iptables: 'iptables',
  ip: 'iproute2',
  curl: 'curl',
};

async function missingBinaries(): Promise<string[]> {
  const missing: string[] = [];
  for (const bin of Object.keys(needed)) {
    try {
      await promisify(execFile)('sh', ['-c', `command -v ${bin}`]);
    } catch {
      missing.push(bin);
    }
  }
  return missing;
}

function runInstaller(): Promise<void> {
  const script = join(repoRoot, 'scripts', 'install-test-deps.sh');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('sh', [script], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolvePromise() : reject(new Error(`sh scripts/install-test-deps.sh exited ${code}`)),
    );
  });
}

export default async function setup({ provide }: TestProject): Promise<void> {
  let missing = await missingBinaries();
  if (missing.length > 0) {
    process.stderr.write(`[e2e] missing ${missing.join(', ')}: running scripts/install-test-deps.sh\n`);
    try {
      await runInstaller();
    } catch (err) {
      throw new Error(
        `e2e tests need ${missing.map((b) => `${b} (Debian package ${needed[b]})`).join(', ')}; ` +
          `installing them failed: ${(err as Error).message}. Run as root: sh scripts/install-test-deps.sh`,
      );
    }
    missing = await missingBinaries();
    if (missing.length > 0) {
      throw new Error(`e2e tests need ${missing.join(', ')} on PATH even after scripts/install-test-deps.sh ran`);
    }
  }
  if (process.getuid?.() !== 0) {
    throw new Error('e2e tests start a real containerd, which needs root: run them as root (CI does)');
  }

  let registryBinary: string;
  try {
    registryBinary = await ensureTool('registry');
  } catch (err) {
    throw new Error(
      `e2e tests need the CNCF Distribution registry binary (tools/build.sh registry, or MIRROR_SYNTH_REGISTRY=<path>): ${(err as Error).message}`,
    );
  }
  provide('registryBinary', registryBinary);
}
