/**
 * Parsing and validating RegistryMirror specs, from file text or from cluster objects.
 * One validator, compiled from the schema in schema.ts, serves both sources.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { closest, distance } from 'fastest-levenshtein';
import { parseAllDocuments } from 'yaml';

import { mirrorChildren } from './children.js';
import { SpecError, type SpecProblem } from './errors.js';
import { findHostConflicts } from './hosts.js';
import { DEFAULT_STORAGE, KIND } from './names.js';
import { bytesMessage, bytesProblem, maxSizeProblem, quantityMessage } from './quantity.js';
import {
  isReservedLabel,
  type MirrorSpec,
  NAME_MESSAGE,
  nameLengthMessage,
  plainSchema,
  portMessage,
  RegistryMirrorSchema,
  reservedLabelMessage,
  RULES_KEYWORD,
  sameHostMessage,
  type StringRule,
} from './schema.js';
import { holdsClaims } from './seniority.js';

/** A validated mirror: its name, its spec and where it came from. */
export interface MirrorInput {
  readonly name: string;
  readonly spec: MirrorSpec;
  /** File path, or `cluster:registrymirror/<name>`. */
  readonly source: string;
  /** metadata.generation, uid and creationTimestamp, for objects read from a cluster. */
  readonly generation?: number;
  readonly uid?: string;
  readonly creationTimestamp?: string;
  /** Whether its status shows it holds its node hosts and children's names (api/seniority.ts), for objects read from a cluster. */
  readonly holdsClaims?: boolean;
}

// strictTypes off: quantities carry `pattern` beside an integer|string anyOf, as Kubernetes writes them.
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false });
ajv.addFormat('date-time', true);
// Annotations for the CRD generator: the rules are checked below (firstBrokenRule) and by the API server as CEL.
ajv.addKeyword({ keyword: RULES_KEYWORD, schemaType: 'array' });
ajv.addKeyword({ keyword: 'x-kubernetes-validations', schemaType: 'array' });
const validateDocument = ajv.compile(plainSchema(RegistryMirrorSchema));

function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (child !== undefined) parts.push(child);
  return parts.reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
}

function show(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  return JSON.stringify(value) ?? String(value);
}

function describeType(schema: unknown): string {
  const s = schema as { type?: string; anyOf?: { type?: string; const?: unknown }[] };
  if (s.anyOf) return s.anyOf.map((b) => (b.const !== undefined ? show(b.const) : b.type)).join(' or ');
  return s.type === 'object' ? 'a mapping' : s.type === 'array' ? 'a list' : `${s.type ?? 'valid'}`;
}

/** The first of a field's StringRules that `value` breaks (the API server's CEL reports the same one). */
export function firstBrokenRule(rules: readonly StringRule[], value: string): StringRule | undefined {
  return rules.find((r) => new RegExp(r.regex).test(value) !== r.match);
}

function patternMessage(field: string, value: unknown, schema: unknown): string {
  const v = String(value);
  const rules = (schema as Record<string, unknown> | undefined)?.[RULES_KEYWORD] as StringRule[] | undefined;
  const broken = rules && firstBrokenRule(rules, v);
  if (broken) return `${broken.message}, got ${show(v)}`;
  if (field === 'spec.imageRegistry') {
    const what = 'a registry host[:port][/path]';
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return `${field} must be ${what} without a scheme, got ${show(v)}`;
    if (v !== v.toLowerCase()) return `${field} must be lower-case, got ${show(v)}`;
    return `${field} must be ${what} such as quay.io or registry.example.com:5000, got ${show(v)}`;
  }
  if (field === 'metadata.name') return `${NAME_MESSAGE}, got ${show(v)}`;
  if (field.endsWith('.storage') || field === 'spec.cache.maxSize') return bytesMessage(field, v);
  if (field.startsWith('spec.resources')) return quantityMessage(field, v);
  if (field.startsWith('spec.labels') || field.startsWith('spec.nodeSelector')) {
    return `${field} must be a valid label value (at most 63 of A-Z a-z 0-9 - _ .), got ${show(v)}`;
  }
  return `${field} must be a DNS name (lower-case letters, digits, '-' and '.'), got ${show(v)}`;
}

/** Turn Ajv's errors into one message per field, in words a user can act on. */
function toProblems(errors: ErrorObject[], source: string, mirror: string | undefined): SpecProblem[] {
  const byField = new Map<string, string>();
  const add = (field: string, message: string) => {
    if (!byField.has(field)) byField.set(field, message);
  };
  // Most specific first: a missing or unknown field explains the rest of its object.
  const rank = (e: ErrorObject) =>
    ['required', 'additionalProperties', 'propertyNames', 'const', 'pattern', 'anyOf'].indexOf(e.keyword) + 1 || 9;
  for (const e of [...errors].sort((a, b) => rank(a) - rank(b))) {
    const field = fieldPath(e.instancePath);
    switch (e.keyword) {
      case 'required': {
        const child = fieldPath(e.instancePath, (e.params as { missingProperty: string }).missingProperty);
        add(child, `${child} is required`);
        break;
      }
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        const child = fieldPath(e.instancePath, extra);
        const known = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
        const guess = known.length > 0 ? closest(extra, known) : undefined;
        const hint =
          guess !== undefined && (guess.toLowerCase() === extra.toLowerCase() || distance(guess, extra) <= 2)
            ? ` (did you mean ${guess}?)`
            : known.length > 0
              ? ` (known fields: ${known.join(', ')})`
              : '';
        add(child, `${child} is not a known field${hint}`);
        break;
      }
      case 'const':
        if (field === 'apiVersion' || field === 'kind') {
          add(field, `${field} must be ${show(e.schema)}, got ${show(e.data)}`);
        }
        break;
      case 'pattern':
        add(field, patternMessage(field, e.data, e.parentSchema));
        break;
      case 'anyOf':
        add(field, `${field} must be ${describeType(e.parentSchema)}, got ${show(e.data)}`);
        break;
      case 'type':
        add(field, `${field} must be ${describeType(e.parentSchema)}, got ${show(e.data)}`);
        break;
      case 'maxLength':
        add(
          field,
          field === 'metadata.name'
            ? nameLengthMessage(String(e.data))
            : `${field} must be at most ${(e.params as { limit: number }).limit} characters`,
        );
        break;
      default:
        add(
          field,
          `${field} ${e.message ?? 'is invalid'}${e.data !== undefined && typeof e.data !== 'object' ? `, got ${show(e.data)}` : ''}`,
        );
    }
  }
  return [...byField].map(([field, message]) => ({ source, mirror, field, message }));
}

function nameOf(doc: unknown): string | undefined {
  const name = (doc as { metadata?: { name?: unknown } } | null)?.metadata?.name;
  return typeof name === 'string' ? name : undefined;
}

/** Checks JSON Schema cannot express. */
function semanticProblems(spec: MirrorSpec, source: string, mirror: string): SpecProblem[] {
  const problems: SpecProblem[] = [];
  for (const key of Object.keys(spec.labels ?? {})) {
    if (isReservedLabel(key)) {
      problems.push({ source, mirror, field: `spec.labels.${key}`, message: reservedLabelMessage(key) });
    }
  }
  for (const [field, host] of [
    ['spec.upstreamUrl', spec.upstreamUrl],
    ['spec.masqueradeUrl', spec.masqueradeUrl],
  ] as const) {
    const port = host === undefined ? undefined : /:(\d+)$/.exec(host)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
      problems.push({ source, mirror, field, message: portMessage(field, port) });
    }
  }
  const storage = spec.volumeClaimTemplate?.spec.resources?.requests.storage;
  if (storage !== undefined) {
    const field = 'spec.volumeClaimTemplate.spec.resources.requests.storage';
    const message = bytesProblem(field, storage);
    if (message !== undefined) problems.push({ source, mirror, field, message });
  }
  const maxSize = spec.cache?.maxSize;
  if (maxSize !== undefined) {
    const field = 'spec.cache.maxSize';
    const message = bytesProblem(field, maxSize) ?? maxSizeProblem(field, maxSize, storage ?? DEFAULT_STORAGE);
    if (message !== undefined) problems.push({ source, mirror, field, message });
  }
  if (spec.masqueradeUrl !== undefined && spec.masqueradeUrl === spec.upstreamUrl) {
    problems.push({ source, mirror, field: 'spec.masqueradeUrl', message: sameHostMessage(spec.upstreamUrl) });
  }
  return problems;
}

/** Validate one RegistryMirror object. Throws SpecError naming the source, the mirror and each bad field. */
export function parseMirrorResource(doc: unknown, source: string): MirrorInput {
  const mirror = nameOf(doc);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new SpecError([{ source, mirror, message: `expected a ${KIND} object, got ${show(doc)}` }]);
  }
  if (!validateDocument(doc)) {
    throw new SpecError(toProblems(validateDocument.errors ?? [], source, mirror));
  }
  const obj = doc as {
    metadata: { name: string; generation?: unknown; uid?: unknown; creationTimestamp?: unknown };
    spec: MirrorSpec;
    status?: unknown;
  };
  const problems = semanticProblems(obj.spec, source, obj.metadata.name);
  if (problems.length > 0) throw new SpecError(problems);
  return {
    name: obj.metadata.name,
    spec: obj.spec,
    source,
    ...(typeof obj.metadata.generation === 'number' ? { generation: obj.metadata.generation } : {}),
    ...(typeof obj.metadata.uid === 'string' ? { uid: obj.metadata.uid } : {}),
    ...(typeof obj.metadata.creationTimestamp === 'string'
      ? { creationTimestamp: obj.metadata.creationTimestamp }
      : {}),
    ...(holdsClaims(obj.status) ? { holdsClaims: true } : {}),
  };
}

/** Parse one file's text: one or more YAML documents, each a RegistryMirror. */
export function parseMirrorFile(text: string, source: string): MirrorInput[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: SpecProblem[] = [];
  const mirrors: MirrorInput[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      const err = doc.errors[0];
      const pos = err.linePos?.[0];
      const at = pos ? `line ${pos.line}, column ${pos.col}: ` : '';
      const reason = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      problems.push({ source, message: `${at}not valid YAML: ${reason}` });
      continue;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue; // empty document, e.g. a trailing '---'
    try {
      mirrors.push(parseMirrorResource(value, source));
    } catch (e) {
      if (e instanceof SpecError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (problems.length > 0) throw new SpecError(problems);
  return mirrors;
}

/** Two specs may not share a name: their children would collide. */
export function checkUniqueNames(mirrors: readonly MirrorInput[]): void {
  const seen = new Map<string, MirrorInput>();
  const problems: SpecProblem[] = [];
  for (const m of mirrors) {
    const first = seen.get(m.name);
    if (first) {
      problems.push({
        source: m.source,
        mirror: m.name,
        field: 'metadata.name',
        message: `metadata.name '${m.name}' is already used by ${first.source}; mirror names must be unique`,
      });
    } else {
      seen.set(m.name, m);
    }
  }
  if (problems.length > 0) throw new SpecError(problems);
}

/** Two mirrors may not configure the same registry host on the nodes: their node agents would fight over its files. */
export function checkHostConflicts(mirrors: readonly MirrorInput[]): void {
  const conflicts = findHostConflicts(mirrors);
  if (conflicts.length > 0) throw new SpecError(conflicts);
}

/** A later mirror that would create an object an earlier mirror creates. */
export interface NameCollision extends SpecProblem {
  readonly mirror: string;
  readonly field: 'metadata.name';
  /** The mirror that creates the object first. */
  readonly other: string;
  /** The object both would create, as `Kind/name`. */
  readonly object: string;
}

/**
 * Mirrors whose children would share a kind and name (`a`'s headless Service and `a-headless`'s
 * Service are both `registry-mirror-a-headless`): each would overwrite the other's. The first in
 * the given order keeps its children (pass mirrors oldest first); each later mirror colliding
 * with it is reported once, naming the first object they share.
 */
export function findNameCollisions(mirrors: readonly { name: string; source: string }[]): NameCollision[] {
  const owner = new Map<string, { mirror: { name: string; source: string }; role: string }>();
  const collisions: NameCollision[] = [];
  for (const m of mirrors) {
    const reported = new Set<string>();
    for (const child of mirrorChildren(m.name)) {
      const object = `${child.kind}/${child.name}`;
      const first = owner.get(object);
      if (first === undefined) {
        owner.set(object, { mirror: m, role: child.role });
      } else if (first.mirror.name !== m.name && !reported.has(first.mirror.name)) {
        reported.add(first.mirror.name);
        collisions.push({
          source: m.source,
          mirror: m.name,
          field: 'metadata.name',
          other: first.mirror.name,
          object,
          message:
            `metadata.name '${m.name}' gives its ${child.role} the name ${child.name}, which is the ` +
            `${first.role} of mirror '${first.mirror.name}' (${first.mirror.source}); two mirrors may not create the same object: rename one of them`,
        });
      }
    }
  }
  return collisions;
}

/** Two mirrors may not create objects of the same kind and name: each would overwrite the other's. */
export function checkNameCollisions(mirrors: readonly { name: string; source: string }[]): void {
  const collisions = findNameCollisions(mirrors);
  if (collisions.length > 0) throw new SpecError(collisions);
}

/** Checks across a set of mirrors: unique names, no two creating the same object, and one mirror per node host. */
export function checkMirrorSet(mirrors: readonly MirrorInput[]): void {
  checkUniqueNames(mirrors);
  checkNameCollisions(mirrors);
  checkHostConflicts(mirrors);
}
