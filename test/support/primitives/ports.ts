// TCP ports for the servers tests start, chosen without races.
//
// Binding port 0, reading the port and closing races with every other process that binds
// port 0 in between (two test files starting registries at once did collide). Instead ports
// come from 20000-32767, below Linux's ephemeral range (32768-60999 by default), so the
// kernel never hands them out to a connect() or a bind(0); and each one is reserved across
// processes with an exclusive lock file naming its owner's pid, freed when the owner exits.
// A port some other program listens on is skipped after a bind check.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FIRST = 20_000;
const LAST = 32_767;
const lockDir = join(tmpdir(), 'mirror-synth-ports');
const mine = new Set<number>();
let hooked = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock file of a port, clearing it first if its owner is gone. */
function lock(port: number): boolean {
  const path = join(lockDir, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
      rmSync(path, { force: true });
    }
  }
  return false;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` distinct 127.0.0.1 ports reserved for this process until it exits (or `releasePorts`). */
export async function reservePorts(count: number): Promise<number[]> {
  mkdirSync(lockDir, { recursive: true });
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const port of mine) rmSync(join(lockDir, String(port)), { force: true });
    });
  }
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 10_000) throw new Error(`could not reserve ${count} free ports in ${FIRST}-${LAST}`);
    const port = FIRST + Math.floor(Math.random() * (LAST - FIRST + 1));
    if (mine.has(port) || !lock(port)) continue;
    if (!(await bindable(port))) {
      rmSync(join(lockDir, String(port)), { force: true });
      continue;
    }
    mine.add(port);
    ports.push(port);
  }
  return ports;
}

/** One reserved port. */
export async function reservePort(): Promise<number> {
  return (await reservePorts(1))[0];
}

/** Give ports back before the process exits (a long benchmark starting many servers). */
export function releasePorts(ports: readonly number[]): void {
  for (const port of ports) {
    if (mine.delete(port)) rmSync(join(lockDir, String(port)), { force: true });
  }
}
