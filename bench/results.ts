// Shared by the benchmarks: write a run's options and result as JSON to bench/results/.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `{options, result}` to `<dir>/<name>-<ISO time>.json` and says where. */
export async function writeResults(
  dir: string,
  name: string,
  options: unknown,
  result: unknown,
  log: (line: string) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({ options, result }, null, 2) + '\n');
  log(`results: ${file}`);
}
