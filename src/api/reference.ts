/**
 * The RegistryMirror field reference (docs/reference.md), written from the schema itself so that
 * it cannot drift from what the CLI, the controller and the API server accept. `npm run docs`
 * writes it; a test fails when the file is not what this renders.
 */
import { API_GROUP, API_VERSION, KIND } from './names.js';
import { MAX_NAME_LENGTH, MirrorSpecSchema, plainSchema } from './schema.js';

/** The parts of a JSON Schema node the reference reads. */
interface Node {
  readonly type?: string;
  readonly description?: string;
  readonly const?: string | number | boolean;
  readonly anyOf?: Node[];
  readonly items?: Node;
  readonly properties?: Record<string, Node>;
  readonly required?: string[];
  readonly minItems?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
}

/** One row of the field table. */
interface Row {
  readonly path: string;
  readonly type: string;
  readonly required: boolean;
  readonly description: string;
}

/** A short, human name for a schema node's type. */
function typeOf(node: Node): string {
  if (node.anyOf) {
    const literals = node.anyOf.map((n) => n.const).filter((c) => c !== undefined);
    if (literals.length === node.anyOf.length) return literals.map((c) => `\`${String(c)}\``).join(' or ');
    return node.anyOf.map(typeOf).join(' or ');
  }
  const bounds = (min?: number, max?: number): string =>
    min !== undefined && max !== undefined ? ` ${min}–${max}` : '';
  switch (node.type) {
    case 'array': {
      const items = node.items ?? {};
      const min = node.minItems ? `, at least ${node.minItems}` : '';
      return `list of ${items.type === 'object' ? 'objects' : typeOf(items)}${min}`;
    }
    case 'object':
      return node.properties ? 'object' : 'map of string';
    case 'integer':
      return `integer${bounds(node.minimum, node.maximum)}`;
    case 'boolean':
      return 'boolean';
    case 'string':
      return node.maxLength !== undefined ? `string (≤ ${node.maxLength})` : 'string';
    default:
      return node.type ?? 'any';
  }
}

/** Markdown table cells hold no pipes or line breaks. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

function walk(node: Node, path: string, required: boolean, rows: Row[]): void {
  rows.push({ path, type: typeOf(node), required, description: node.description ?? '' });
  const needed = new Set(node.required ?? []);
  for (const [key, child] of Object.entries(node.properties ?? {}))
    walk(child, `${path}.${key}`, needed.has(key), rows);
  const items = node.items;
  if (items?.properties) {
    const itemNeeded = new Set(items.required ?? []);
    for (const [key, child] of Object.entries(items.properties)) {
      walk(child, `${path}[].${key}`, itemNeeded.has(key), rows);
    }
  }
}

/** The whole of docs/reference.md. */
export function specReference(): string {
  const rows: Row[] = [];
  const schema = plainSchema(MirrorSpecSchema) as Node;
  walk(schema, 'spec', true, rows);
  const table = [
    '| field | type | required | meaning |',
    '| --- | --- | --- | --- |',
    `| \`metadata.name\` | DNS label (≤ ${MAX_NAME_LENGTH}) | yes | The mirror's name; its children are named \`registry-mirror-<name>\`. |`,
    ...rows
      .slice(1)
      .map((r) => `| \`${r.path}\` | ${cell(r.type)} | ${r.required ? 'yes' : ''} | ${cell(r.description)} |`),
  ];
  return [
    '# RegistryMirror reference',
    '',
    '<!-- Written by `npm run docs` from src/api/schema.ts; do not edit by hand. -->',
    '',
    `\`apiVersion: ${API_GROUP}/${API_VERSION}\`, \`kind: ${KIND}\`, cluster-scoped. The same schema`,
    "validates `mirrors/*.yaml` in `mirror-synth synth` and is the CRD's `openAPIV3Schema`, so the",
    'CLI and the API server refuse the same mistakes. Unknown fields are errors. What each field',
    'does in practice, with examples: [Describing a mirror](mirrors.md).',
    '',
    cell(schema.description ?? ''),
    '',
    ...table,
    '',
  ].join('\n');
}
