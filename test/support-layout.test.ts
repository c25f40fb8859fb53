// The test harness in floors (CONTRIBUTING.md, "The test harness"): every file of test/support/
// lives on one floor, imports only its own floor or lower ones, never a test file, and no
// import circle runs through it. A new helper that breaks the order fails here, naming the
// import, before it turns into a circle that loads half the harness to read one function.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/** Lowest first: a floor may import its own and the floors before it. */
const FLOORS = ['primitives', 'faults', 'components', 'fixtures', 'kube', 'suites'] as const;

const support = join(import.meta.dirname, 'support');

function supportFiles(): string[] {
  return readdirSync(support, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(support, join(e.parentPath, e.name)).split('\\').join('/'))
    .sort();
}

/** Relative imports of a file, resolved to paths relative to test/support/ (`../x` when outside it). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(support, file), 'utf8');
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) =>
      relative(support, resolve(dirname(join(support, file)), spec))
        .split('\\')
        .join('/')
        .replace(/\.js$/, '.ts'),
    );
}

const floorOf = (file: string): number => FLOORS.indexOf(file.split('/')[0] as (typeof FLOORS)[number]);

describe('test/support', () => {
  const files = supportFiles();
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('has every file on a floor', () => {
    const stray = files.filter((f) => !f.includes('/') || floorOf(f) < 0);
    expect(stray, `not in test/support/{${FLOORS.join(',')}}/`).toEqual([]);
  });

  it('imports only its own floor or lower ones, and no test file', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      for (const target of imports) {
        if (target.startsWith('../')) {
          // Outside the harness: the code under test (src/) is fine, a test file or test data is not.
          if (!target.startsWith('../../src/')) wrong.push(`${file} imports test/${target.slice(3)}`);
        } else if (floorOf(target) > floorOf(file)) {
          wrong.push(`${file} imports ${target}, a higher floor`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import circle', () => {
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        circles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(circles).toEqual([]);
  });
});
