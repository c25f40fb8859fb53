// One grammar for quantities: what the schema (and the CRD built from it) lets through is what
// the constructs can read, and nothing else. A seeded random generator (the seed is in the
// test name, so a failure reproduces) writes strings near the grammar: digits, dots, signs,
// exponents and every suffix, in any order, plus stray letters and spaces.
import { describe, expect, it } from 'vitest';

import { registryMirrorCrd } from '../../src/api/crd.js';
import { SpecError } from '../../src/api/errors.js';
import { BYTES_PATTERN, MAX_BYTES, parseBytes, parseQuantity, QUANTITY_PATTERN } from '../../src/api/quantity.js';
import { RegistryMirrorSchema } from '../../src/api/schema.js';
import { parseMirrorResource } from '../../src/api/validate.js';
import { synthesizeMirror } from '../../src/synth/chart.js';

const STORAGE = 'spec.volumeClaimTemplate.spec.resources.requests.storage';

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOKENS = [
  ...'0123456789'.split(''),
  '0',
  '1',
  '20',
  '512',
  '.',
  '+',
  '-',
  'e',
  'E',
  'i',
  ...['n', 'u', 'm', 'k', 'K', 'M', 'G', 'T', 'P', 'E'],
  ...['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'mi', 'ki'],
  ' ',
  'x',
  'B',
  '_',
];

function candidates(seed: number, count: number): string[] {
  const next = random(seed);
  const pick = () => TOKENS[Math.floor(next() * TOKENS.length)];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    // a number-like start half of the time, so that many candidates are (nearly) quantities
    let s = next() < 0.5 ? String(Math.floor(next() * 1000)) : '';
    const n = 1 + Math.floor(next() * 5);
    for (let j = 0; j < n; j++) s += pick();
    out.push(s);
  }
  return out;
}

const mirror = (storage: unknown, resources?: unknown) => ({
  apiVersion: 'k8s.osp.tech/v1',
  kind: 'RegistryMirror',
  metadata: { name: 'fuzz' },
  spec: {
    upstreamUrl: 'quay.io',
    volumeClaimTemplate: { spec: { resources: { requests: { storage } } } },
    ...(resources === undefined ? {} : { resources: { requests: { cpu: resources } } }),
  },
});

/** The validator's verdict on one field: undefined when valid, else that field's message. */
function problem(doc: unknown, field: string): string | undefined {
  try {
    parseMirrorResource(doc, 'fuzz.yaml');
    return undefined;
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    return e.problems.find((p) => p.field === field)?.message ?? `other problems: ${e.message}`;
  }
}

type Node = Record<string, any>;

describe('quantities: the schema and the parser read one grammar', () => {
  const schemaStorage = (RegistryMirrorSchema as Node).properties.spec.properties.volumeClaimTemplate.properties.spec
    .properties.resources.properties.requests.properties.storage as Node;
  const crdStorage = (registryMirrorCrd() as Node).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties
    .volumeClaimTemplate.properties.spec.properties.resources.properties.requests.properties.storage as Node;

  it('the schema and the CRD check sizes with BYTES_PATTERN, other quantities with QUANTITY_PATTERN', () => {
    expect(schemaStorage.pattern).toBe(BYTES_PATTERN);
    // the CRD says it in CEL (with the CLI's message) instead of a bare pattern
    expect(crdStorage['x-kubernetes-validations']).toEqual([
      expect.objectContaining({ rule: `type(self) == int || string(self).matches(${JSON.stringify(BYTES_PATTERN)})` }),
    ]);
    const requests = (RegistryMirrorSchema as Node).properties.spec.properties.resources.properties.requests as Node;
    const cpu = Object.values(requests.patternProperties as Node)[0] as Node;
    expect(cpu.pattern).toBe(QUANTITY_PATTERN);
  });

  it('reads sizes as Kubernetes does, and refuses what is not a size in bytes', () => {
    expect(parseBytes('20Gi')).toBe(20 * 2 ** 30);
    expect(parseBytes('500M')).toBe(500e6);
    expect(parseBytes('1e9')).toBe(1e9);
    expect(parseBytes('1E3')).toBe(1000);
    expect(parseBytes('.5Ki')).toBe(512);
    expect(parseBytes('1.Mi')).toBe(2 ** 20);
    expect(parseBytes('+1k')).toBe(1000);
    expect(parseBytes('1.5')).toBe(2); // rounded up, as Quantity.Value()
    expect(parseBytes(1024)).toBe(1024);
    for (const bad of ['500m', '1u', '-1Gi', '1e-3', '1e1.5', '20 gigs', '', '.', '1GiB', '1gi', ' 1Gi']) {
      expect(parseBytes(bad), bad).toBeUndefined();
    }
    expect(parseQuantity('100m')).toBeCloseTo(0.1);
    expect(parseQuantity('-1.5Ki')).toBe(-1536);
    expect(parseQuantity('1e1.5')).toBeUndefined();
  });

  it("refuses storage: 500m at validate time with the field's message, where synth used to fail inside", () => {
    expect(problem(mirror('500m'), STORAGE)).toBe(
      `${STORAGE} must be a size in bytes such as 20Gi, 500M or 1e9 (suffixes k M G T P E or Ki Mi Gi Ti Pi Ei), got '500m'`,
    );
    expect(problem(mirror('0'), STORAGE)).toBe(`${STORAGE} must be more than 0 bytes and less than 8Ei, got '0'`);
    expect(problem(mirror(0), STORAGE)).toBe(`${STORAGE} must be more than 0 bytes and less than 8Ei, got '0'`);
    expect(problem(mirror('8Ei'), STORAGE)).toBe(`${STORAGE} must be more than 0 bytes and less than 8Ei, got '8Ei'`);
    expect(problem(mirror('1e999'), STORAGE)).toContain('less than 8Ei');
    expect(problem(mirror('7Ei'), STORAGE)).toBeUndefined();
  });

  for (const seed of [15, 8, 2026]) {
    it(`seed ${seed}: a string passes the schema's pattern exactly when the parser reads it; every valid spec synthesizes`, () => {
      const storageRe = new RegExp(schemaStorage.pattern as string);
      const cpuRe = new RegExp(QUANTITY_PATTERN);
      let accepted = 0;
      let refused = 0;
      let synthesized = 0;
      for (const s of candidates(seed, 20_000)) {
        const bytes = parseBytes(s);
        expect(storageRe.test(s), `storage '${s}'`).toBe(bytes !== undefined);
        const value = parseQuantity(s);
        expect(cpuRe.test(s), `quantity '${s}'`).toBe(value !== undefined);
        if (value !== undefined) expect(Number.isNaN(value), `quantity '${s}'`).toBe(false);
        if (bytes === undefined) {
          refused++;
          continue;
        }
        accepted++;
        expect(Number.isNaN(bytes), `storage '${s}'`).toBe(false);
        // the validator agrees (a refusal is the range, with its own message), and what it
        // accepts synthesizes: the front is sized from the volume
        const message = problem(mirror(s), STORAGE);
        if (message !== undefined) {
          expect(message, `storage '${s}'`).toContain('must be more than 0 bytes and less than 8Ei');
          expect(bytes <= 0 || bytes >= MAX_BYTES, `storage '${s}'`).toBe(true);
        } else if (synthesized < 40) {
          synthesized++;
          const input = parseMirrorResource(mirror(s), 'fuzz.yaml');
          expect(() => synthesizeMirror(input), `storage '${s}'`).not.toThrow();
        }
      }
      // the generator reaches both sides of the grammar
      expect(accepted).toBeGreaterThan(1_000);
      expect(refused).toBeGreaterThan(1_000);
      expect(synthesized).toBe(40);
    });
  }
});
