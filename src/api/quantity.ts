/**
 * Kubernetes quantities: one grammar each for what the schema checks (the validator's pattern,
 * the CRD's pattern and CEL rule) and what the constructs read. Each parser reads its own
 * pattern, so a string the schema lets through is a string the construct can read, and the
 * fuzz test in test/api/quantity.test.ts holds the two to each other. RE2 and JavaScript read
 * the patterns alike (the API server runs them as Go regexps).
 *
 * The grammar is Kubernetes' own (resource.ParseQuantity in k8s.io/apimachinery): a decimal
 * number, then a binary suffix (Ki..Ei), a decimal SI suffix (n, u, m, k..E) or a decimal
 * exponent. The exponent is an integer: `1e1.5` is refused by Kubernetes' parser, though the
 * pattern controller-gen writes lets it by.
 */

/** A decimal number: `20`, `1.5`, `1.`, `.5`. Capturing: the parsers read it. */
const NUMBER = '([0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)';

/** Any resource quantity (CPU, memory): `100m`, `512Mi`, `1e9`, `-1`. */
export const QUANTITY_PATTERN = `^([+-]?)${NUMBER}(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?[0-9]+))?$`;

/**
 * A size in bytes (the cache volume): a quantity without a minus sign, without the sub-unit
 * suffixes (`500m` is half a byte) and without a negative exponent.
 */
export const BYTES_PATTERN = `^(\\+?)${NUMBER}(?:([KMGTPE]i|[kMGTPE])|[eE](\\+?[0-9]+))?$`;

/** A size in bytes is more than 0 and less than 8Ei (2^63, past Kubernetes' int64). */
export const MAX_BYTES = 2 ** 63;

const MULTIPLIERS: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const quantityRegExp = new RegExp(QUANTITY_PATTERN);
const bytesRegExp = new RegExp(BYTES_PATTERN);

function read(re: RegExp, q: string): number | undefined {
  const m = re.exec(q);
  if (!m) return undefined;
  const [, sign, number, suffix, exponent] = m;
  const value = Number(`${number}${exponent === undefined ? '' : `e${exponent}`}`) * MULTIPLIERS[suffix ?? ''];
  return sign === '-' ? -value : value;
}

/** The value of a quantity (cores, bytes: the unit is the resource's), or undefined when `q` is not one. */
export function parseQuantity(q: string | number): number | undefined {
  return typeof q === 'number' ? q : read(quantityRegExp, q);
}

/**
 * Bytes of a size (`20Gi`, `500M`, `1e9`, 1073741824), rounded up to a whole byte as
 * Kubernetes' Quantity.Value() does; undefined when `q` is not a size in bytes. The result may
 * be 0 or beyond MAX_BYTES: bytesProblem says so.
 */
export function parseBytes(q: string | number): number | undefined {
  const value = typeof q === 'number' ? q : read(bytesRegExp, q);
  return value === undefined ? undefined : Math.ceil(value);
}

export function quantityMessage(field: string, value: string): string {
  return `${field} must be a Kubernetes quantity such as 500m, 512Mi or 20Gi, got '${value}'`;
}

export function bytesMessage(field: string, value: string): string {
  return `${field} must be a size in bytes such as 20Gi, 500M or 1e9 (suffixes k M G T P E or Ki Mi Gi Ti Pi Ei), got '${value}'`;
}

/** What is wrong with a size in bytes, or undefined: not one, 0 bytes, or 8Ei or more. */
export function bytesProblem(field: string, q: string | number): string | undefined {
  const bytes = parseBytes(q);
  if (bytes === undefined) return bytesMessage(field, String(q));
  if (!(bytes > 0 && bytes < MAX_BYTES)) return `${field} must be more than 0 bytes and less than 8Ei, got '${q}'`;
  return undefined;
}

/**
 * `spec.cache.maxSize` larger than the volume it bounds (a volume that is not a valid size is
 * reported on its own field).
 */
export function maxSizeProblem(field: string, q: string | number, volume: string | number): string | undefined {
  const bytes = parseBytes(q);
  const volumeBytes = parseBytes(volume);
  if (bytes === undefined || volumeBytes === undefined || bytes <= volumeBytes) return undefined;
  return `${field} must be at most the cache volume's size (spec.volumeClaimTemplate.spec.resources.requests.storage, ${volume}), got '${q}'`;
}
