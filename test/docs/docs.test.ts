import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { specReference } from '../../src/api/reference.js';
import { brokenLink, relativeLinks } from '../support/primitives/markdown.js';

const root = join(import.meta.dirname, '..', '..');
const pages = [
  'README.md',
  'CONTRIBUTING.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

describe('the docs', () => {
  it('docs/reference.md is what the schema renders (npm run docs)', () => {
    expect(readFileSync(join(root, 'docs', 'reference.md'), 'utf8')).toBe(specReference());
  });

  it('every relative link and anchor resolves', () => {
    const broken = pages.flatMap((page) =>
      relativeLinks(join(root, page)).flatMap((link) => {
        const why = brokenLink(link, root);
        return why ? [`${page}:${link.line}: (${link.target}): ${why}`] : [];
      }),
    );
    expect(broken).toEqual([]);
  });

  it('every page is linked from the README', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const unlinked = pages.filter((p) => p !== 'README.md' && !readme.includes(`](${p}`));
    expect(unlinked).toEqual([]);
  });
});
