// The controller command's listen flags, as controller-runtime names them, and a taken port as a
// usage error (exit 2, one line) instead of a stack trace and exit 70.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { main } from '../../src/cli/main.js';
import { parseBindAddress, resolveMetricsBind, resolveProbeBind } from '../../src/cli/options.js';

describe('bind addresses', () => {
  it('reads [host]:port, 0 for off, and keeps --metrics-port and --probe-port working', () => {
    expect(parseBindAddress('--metrics-bind-address', ':8080')).toEqual({ port: 8080, text: ':8080' });
    expect(parseBindAddress('--metrics-bind-address', '127.0.0.1:9090')).toMatchObject({
      host: '127.0.0.1',
      port: 9090,
    });
    expect(parseBindAddress('--metrics-bind-address', '[::1]:9090')).toMatchObject({ host: '::1', port: 9090 });
    expect(parseBindAddress('--metrics-bind-address', '0')).toBeUndefined();
    expect(() => parseBindAddress('--metrics-bind-address', '8080')).toThrow(/must be \[host\]:port/);
    expect(() => parseBindAddress('--metrics-bind-address', ':70000')).toThrow(/got ':70000'/);
    expect(resolveMetricsBind()).toEqual({ port: 8080, text: ':8080' });
    expect(resolveMetricsBind(undefined, 9000)).toEqual({ port: 9000, text: ':9000' });
    expect(resolveMetricsBind('127.0.0.1:1', 9000)).toMatchObject({ host: '127.0.0.1', port: 1 });
    expect(resolveProbeBind()).toBeUndefined();
    expect(resolveProbeBind(undefined, 8081)).toEqual({ port: 8081, text: ':8081' });
  });
});

describe('a taken port', () => {
  let server: Server;
  let port: number;
  let kubeconfig: string;
  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'flags-'));
    kubeconfig = join(dir, 'kubeconfig');
    // Never contacted: the controller listens before it talks to the API server.
    writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n' +
        'users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  // The command loads the controller (the Kubernetes client, the construct) on first use.
  beforeAll(async () => {
    await import('../../src/cli/controller.js');
  }, 120_000);

  it('is a usage error: exit 2 and one line naming the flag', async () => {
    for (const [flags, named] of [
      [['--metrics-bind-address', `127.0.0.1:${port}`], `--metrics-bind-address 127.0.0.1:${port}`],
      [
        ['--metrics-bind-address', '127.0.0.1:0', '--health-probe-bind-address', `127.0.0.1:${port}`],
        `--health-probe-bind-address 127.0.0.1:${port}`,
      ],
    ] as const) {
      const lines: string[] = [];
      const code = await main(['node', 'mirror-synth', 'controller', '--kubeconfig', kubeconfig, ...flags], (l) =>
        lines.push(l),
      );
      expect(code).toBe(2);
      expect(lines).toEqual([`error: ${named}: address already in use`]);
    }
  });
});

describe('leader-election and deadline flags', () => {
  beforeAll(async () => {
    await import('../../src/cli/controller.js');
  }, 120_000);

  it('refuses timings that could let two leaders overlap, before contacting anything', async () => {
    for (const [flags, problem] of [
      [['--lease-duration', '10'], 'the lease duration (10s) must be longer than the renew deadline (10s)'],
      [
        ['--renew-deadline', '3', '--retry-period', '3'],
        'the renew deadline (3s) must be longer than 1.2 × the retry period (3s)',
      ],
    ] as const) {
      const lines: string[] = [];
      const code = await main(['node', 'mirror-synth', 'controller', '--kubeconfig', '/nonexistent', ...flags], (l) =>
        lines.push(l),
      );
      expect(code).toBe(2);
      expect(lines).toEqual([`error: --lease-duration, --renew-deadline, --retry-period: ${problem}`]);
    }
  });

  it('takes whole seconds of 1 or more', async () => {
    for (const flag of ['--request-timeout', '--watch-idle-timeout', '--stall-timeout', '--lease-duration']) {
      const lines: string[] = [];
      const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
        lines.push(String(chunk));
        return true;
      });
      try {
        expect(await main(['node', 'mirror-synth', 'controller', flag, '0'])).toBe(2);
      } finally {
        err.mockRestore();
      }
      expect(lines.join('')).toContain(`option '${flag} <seconds>' argument '0' is invalid`);
    }
  });
});
