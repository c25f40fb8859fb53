// Long-running helper processes (etcd, kube-apiserver, registries, containerd, the node agent)
// for tests and benchmarks: one tracker for all of them. A tracked process is SIGKILLed when
// the test process exits without stopping it, and, through a detached watchdog shell, even
// when the test process itself is killed without running exit handlers: no orphans.
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let watchdog: ChildProcess | undefined;
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    watchdog?.kill('SIGKILL');
    for (const child of live) child.kill('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
  // The watchdog reads "add <pid>" / "del <pid>" lines; when its stdin closes (this process
  // died, however) it kills every pid still listed.
  watchdog = spawn(
    'sh',
    [
      '-c',
      'pids=" "; while read -r cmd pid; do case $cmd in add) pids="$pids$pid ";; del) pids=$(echo "$pids" | sed "s/ $pid / /");; esac; done; kill -9 $pids 2>/dev/null',
    ],
    { detached: true, stdio: ['pipe', 'ignore', 'ignore'] },
  );
  watchdog.on('error', () => (watchdog = undefined));
  watchdog.unref();
  (watchdog.stdin as unknown as { unref(): void }).unref();
}

function tell(command: 'add' | 'del', pid: number | undefined): void {
  if (pid !== undefined && watchdog?.stdin?.writable) watchdog.stdin.write(`${command} ${pid}\n`);
}

/** Spawn a long-running process that is killed if the test process exits (or dies) first. */
export function spawnTracked(...args: Parameters<typeof spawn>): ChildProcess {
  install();
  const child = spawn(...args);
  live.add(child);
  tell('add', child.pid);
  child.once('exit', () => {
    live.delete(child);
    tell('del', child.pid);
  });
  return child;
}

/** Remove this directory when the test process exits, unless forgotten first. */
export function removeOnExit(dir: string): void {
  install();
  tempDirs.add(dir);
}
export function forgetOnExit(dir: string): void {
  tempDirs.delete(dir);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function terminate(child: ChildProcess | undefined, graceMs = 15_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    process.stderr.write(`${child.spawnfile} did not exit ${graceMs / 1000} s after SIGTERM: killing it\n`);
    child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Whether a process has exited. */
export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** The last lines of a log file, for error messages. */
export async function tail(file: string, lines = 40): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n');
}
