/**
 * The links of the project's Markdown files, read the way GitHub renders them: each heading's
 * anchor (its text lower-cased, punctuation dropped, spaces as hyphens, `-1`, `-2` ... for
 * repeats), and the relative links `[text](path#anchor)` outside code.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** Each line of the file, or undefined for the lines of fenced code blocks (their fences included). */
function outsideFences(markdown: string): Array<string | undefined> {
  let fenced = false;
  return markdown.split('\n').map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return undefined;
    }
    return fenced ? undefined : line;
  });
}

/** The text outside fenced code blocks and inline code. */
function prose(markdown: string): string[] {
  return outsideFences(markdown).map((line) => (line ?? '').replace(/`[^`]*`/g, (code) => ' '.repeat(code.length)));
}

/** GitHub's anchor for a heading's text. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a Markdown file defines. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of outsideFences(markdown)) {
    const m = line !== undefined && /^#{1,6}\s+(.*)$/.exec(line);
    if (!m) continue;
    const base = slug(m[1].replace(/`/g, ''));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

export interface Link {
  readonly file: string;
  readonly line: number;
  readonly target: string;
}

/** The relative links of a file (not http(s), mailto or absolute ones). */
export function relativeLinks(file: string): Link[] {
  const out: Link[] = [];
  prose(readFileSync(file, 'utf8')).forEach((text, i) => {
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('/')) continue;
      out.push({ file, line: i + 1, target });
    }
  });
  return out;
}

/** What is wrong with a link, or undefined when its file and anchor exist. */
export function brokenLink(link: Link, root: string): string | undefined {
  const [path, anchor] = link.target.split('#', 2) as [string, string | undefined];
  const file = path === '' ? link.file : join(dirname(link.file), decodeURIComponent(path));
  if (!existsSync(file)) return `${relative(root, file)} does not exist`;
  if (anchor === undefined || anchor === '' || statSync(file).isDirectory() || !file.endsWith('.md')) return undefined;
  return anchors(readFileSync(file, 'utf8')).has(anchor)
    ? undefined
    : `${relative(root, file)} has no heading #${anchor}`;
}
