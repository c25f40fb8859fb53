/**
 * The platform team's allowlist: what a RegistryMirror may name. Writing a RegistryMirror decides
 * what every node's runtime asks for a registry host (`masqueradeUrl`, `upstreamUrl`), which images
 * the cache pods run and how they are pulled (`imageRegistry`, `imageDigests`, `imagePullSecrets`),
 * how they are scheduled (`priorityClassName`) and where the cache, with its bucket key, is sent
 * (`objectStorage.s3.endpoint`), so a cluster where others may write RegistryMirrors sets these
 * lists. The node agent, which runs as root on every node, takes its image from the platform alone
 * (`--node-agent-image`), never from a spec.
 *
 * One rule, in three places that must agree: synth and validate (SpecError), the controller
 * (a Stalled mirror) and the ValidatingAdmissionPolicy of controller-manifests (the same test as
 * CEL, see allowlistValidations). A list left unset allows any value (today's behaviour); a list
 * set to nothing allows none.
 *
 * Entries match exactly. A host (`quay.io`, `registry.example.com:5443`) matches itself;
 * `*.example.com` matches every host under example.com (not example.com itself, and no port). An
 * image registry (`harbor.example.com/hub`) matches itself only; `harbor.example.com/*` matches
 * every path under harbor.example.com (not harbor.example.com itself). Image digests
 * (`sha256:<64 hex>`), pull Secret and priority class names match themselves. An object storage
 * endpoint entry `host[:port]` (or `https://host[:port]`) matches `https://host[:port]`, and AWS's
 * regional endpoint `s3.<region>.amazonaws.com` when the spec sets none; plain http is admitted
 * only by an entry written with its scheme, `http://host[:port]`. Values are compared as written
 * (Docker Hub's spellings, `docker.io` and `index.docker.io`, are two entries).
 *
 * An entry that is not of its list's kind (a typo) breaks its list: synth refuses to run, and the
 * controller and the admission policy refuse every mirror that list governs until it is fixed
 * (fail closed: a list meant to narrow must not, by a typo, open).
 */
import { SpecError, type SpecProblem } from './errors.js';
import { ALLOWLIST_KEYS, type AllowlistName, IMAGE_DIGEST_PATTERN, type ImageRole, IMAGES } from './names.js';
import type { MirrorSpec } from './schema.js';
import type { MirrorInput } from './validate.js';

/** The lists; `undefined` allows any value. */
export type MirrorPolicy = { readonly [K in AllowlistName]?: readonly string[] };

/** What each list holds: the kind of entry (its CLI check) and how its entries are described in messages. */
export const ALLOWLIST_ENTRIES = {
  upstreams: 'host',
  masquerades: 'host',
  imageRegistries: 'registry',
  imageDigests: 'digest',
  imagePullSecrets: 'name',
  priorityClasses: 'name',
  objectStorageEndpoints: 'endpoint',
} as const satisfies Record<AllowlistName, string>;

/** Every list, in the order of messages and flags. */
export const ALLOWLISTS = Object.keys(ALLOWLIST_KEYS) as AllowlistName[];

type EntryKind = (typeof ALLOWLIST_ENTRIES)[AllowlistName];

/** What an entry of each kind of list looks like (RE2 and JavaScript alike: the admission policy tests it too). */
const ENTRY_SYNTAX: Record<EntryKind, { readonly pattern: string; readonly what: string }> = {
  host: {
    pattern: '^(\\*\\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$',
    what: 'a host[:port] or *.domain (lowercase, no scheme)',
  },
  registry: {
    pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*(/\\*)?$',
    what: 'a registry host[:port][/path], or one ending in /* for every path under it (lowercase, no scheme)',
  },
  digest: { pattern: IMAGE_DIGEST_PATTERN, what: 'a digest sha256:<64 lower-case hex digits> (lowercase, no scheme)' },
  name: { pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$', what: 'a Kubernetes object name (lowercase, no scheme)' },
  endpoint: {
    pattern: '^(https?://)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$',
    what: 'an endpoint host[:port] (https), or http://host[:port] to admit plain http (lowercase, no path)',
  },
};

/** The pattern every entry of list `list` must match, and what it says in a message (the controller chart's schema uses it too). */
export function allowlistEntrySyntax(list: AllowlistName): { readonly pattern: string; readonly what: string } {
  return ENTRY_SYNTAX[ALLOWLIST_ENTRIES[list]];
}

/** The entries of `entries` that are not of list `list`'s kind (typos). */
export function badEntries(list: AllowlistName, entries: readonly string[]): string[] {
  const pattern = new RegExp(ENTRY_SYNTAX[ALLOWLIST_ENTRIES[list]].pattern);
  return entries.filter((e) => !pattern.test(e));
}

/** Why entries `bad` of list `list` are refused, after `where` they were read: `--allowed-upstreams: 'Quay.io' is not a host...`. */
export function badEntriesMessage(where: string, list: AllowlistName, bad: readonly string[]): string {
  const verb = bad.length === 1 ? 'is' : 'are';
  return `${where}: '${bad.join("', '")}' ${verb} not ${ENTRY_SYNTAX[ALLOWLIST_ENTRIES[list]].what}`;
}

/** A comma-separated list, blanks dropped. */
export function parseAllowlist(text: string): string[] {
  return text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

/** Whether `host` is one of `entries` (exact, or `*.suffix`). */
export function hostAllowed(host: string, entries: readonly string[]): boolean {
  return entries.some((e) => e === host || (e.startsWith('*.') && host.endsWith(e.slice(1))));
}

/** Whether an image registry (`host[:port][/path]`) is one of `entries`, or under an entry that ends in `/*`. */
export function registryAllowed(registry: string, entries: readonly string[]): boolean {
  return entries.some((e) => (e.endsWith('/*') ? registry.startsWith(e.slice(0, -1)) : registry === e));
}

/** `https://host` entries are `host`: https is what an entry without a scheme admits. */
function endpointEntry(entry: string): string {
  return entry.startsWith('https://') ? entry.slice('https://'.length) : entry;
}

/** Whether an object storage endpoint (objectStorageEndpointValue) is one of `entries`. */
export function endpointAllowed(endpoint: string, entries: readonly string[]): boolean {
  return entries.some((e) => e !== '' && endpointEntry(e) === endpoint);
}

/**
 * Where a mirror's bucket is, as its allowlist entries name it: `host[:port]` for https (AWS S3's
 * regional `s3.<region>.amazonaws.com` when the spec sets no endpoint), `http://host[:port]` for
 * plain http, so that only an entry written with `http://` admits it.
 */
export function objectStorageEndpointValue(s3: { readonly endpoint?: string; readonly region: string }): string {
  if (s3.endpoint === undefined) return `s3.${s3.region}.amazonaws.com`;
  const endpoint = s3.endpoint.endsWith('/') ? s3.endpoint.slice(0, -1) : s3.endpoint;
  return endpointEntry(endpoint);
}

/** The value of a pinned image, `<tag>@sha256:...`: its digest. */
function pinnedDigest(pin: string): string {
  return pin.slice(pin.indexOf('@') + 1);
}

const WHAT: Record<(typeof ALLOWLIST_ENTRIES)[AllowlistName], string> = {
  host: 'a host',
  registry: 'a registry',
  digest: 'a digest',
  name: 'a name',
  endpoint: 'an endpoint',
};

/** What the message of a refused plain-http endpoint adds (the admission policy says the same). */
const HTTP_HINT = ' (plain http is admitted only by an entry written http://host[:port])';

/** The message for a value the allowlist `list` does not admit (the admission policy says the same). */
export function notAllowedMessage(
  field: string,
  list: AllowlistName,
  entries: readonly string[],
  value: string,
): string {
  const shown = entries.length === 0 ? 'none' : entries.join(',');
  const hint = list === 'objectStorageEndpoints' && value.startsWith('http://') ? HTTP_HINT : '';
  return `${field} must be ${WHAT[ALLOWLIST_ENTRIES[list]]} the allowlist ${ALLOWLIST_KEYS[list]} admits (${shown}), got '${value}'${hint}`;
}

/** One value a spec names, for one list: the field's path and the value. */
interface Named {
  readonly field: string;
  readonly value: string;
}

/** The values of `spec` that list `list` governs. */
function namedBy(spec: MirrorSpec, list: AllowlistName): Named[] {
  switch (list) {
    case 'upstreams':
      return [{ field: 'spec.upstreamUrl', value: spec.upstreamUrl }];
    case 'masquerades':
      return spec.masqueradeUrl === undefined ? [] : [{ field: 'spec.masqueradeUrl', value: spec.masqueradeUrl }];
    case 'imageRegistries':
      return spec.imageRegistry === undefined ? [] : [{ field: 'spec.imageRegistry', value: spec.imageRegistry }];
    case 'imageDigests':
      return Object.entries(spec.imageDigests ?? {})
        .filter((e): e is [string, string] => typeof e[1] === 'string')
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([role, pin]) => ({ field: `spec.imageDigests.${role}`, value: pinnedDigest(pin) }));
    case 'imagePullSecrets':
      return (spec.imagePullSecrets ?? []).map((s) => ({ field: 'spec.imagePullSecrets', value: s.name }));
    case 'priorityClasses':
      return spec.priorityClassName === undefined
        ? []
        : [{ field: 'spec.priorityClassName', value: spec.priorityClassName }];
    case 'objectStorageEndpoints': {
      const s3 = spec.objectStorage?.s3;
      if (s3 === undefined) return [];
      // Without an endpoint the region decides where the bucket is: name the field that does.
      const field = s3.endpoint === undefined ? 'spec.objectStorage.s3.region' : 'spec.objectStorage.s3.endpoint';
      return [{ field, value: objectStorageEndpointValue(s3) }];
    }
  }
}

/** The first field of `spec` that list `list` governs, if any: a broken list refuses the mirror on it. */
export function governedField(spec: MirrorSpec, list: AllowlistName): string | undefined {
  return namedBy(spec, list)[0]?.field;
}

function allowed(list: AllowlistName, value: string, entries: readonly string[]): boolean {
  switch (ALLOWLIST_ENTRIES[list]) {
    case 'host':
      return hostAllowed(value, entries);
    case 'registry':
      return registryAllowed(value, entries);
    case 'endpoint':
      return endpointAllowed(value, entries);
    default:
      return entries.includes(value);
  }
}

/** Every field of a mirror the policy refuses. */
export function policyProblems(mirror: MirrorInput, policy: MirrorPolicy | undefined): SpecProblem[] {
  if (!policy) return [];
  const { spec, source, name } = mirror;
  const problems: SpecProblem[] = [];
  const refuse = (field: string, list: AllowlistName, entries: readonly string[], value: string) =>
    problems.push({ source, mirror: name, field, message: notAllowedMessage(field, list, entries, value) });
  for (const list of ALLOWLISTS) {
    const entries = policy[list];
    if (!entries) continue;
    const refused = namedBy(spec, list).filter(({ value }) => !allowed(list, value, entries));
    // The pull Secrets are one field to the admission policy (CEL cannot name the index): the same here.
    if (list === 'imagePullSecrets') {
      if (refused.length > 0) refuse('spec.imagePullSecrets', list, entries, refused.map((r) => r.value).join(','));
    } else for (const { field, value } of refused) refuse(field, list, entries, value);
  }
  return problems;
}

/** Throws one SpecError with every field of every mirror the policy refuses. */
export function checkPolicy(mirrors: readonly MirrorInput[], policy: MirrorPolicy | undefined): void {
  const problems = mirrors.flatMap((m) => policyProblems(m, policy));
  if (problems.length > 0) throw new SpecError(problems);
}

/** What follows a broken list's problem: the controller and the admission policy say the same. */
export const BROKEN_LIST_TAIL =
  '. Every RegistryMirror this list governs is refused until the platform team fixes the entry (a list with a typo fails closed).';

/** Lists that could not be read, each with why (badEntriesMessage): every mirror such a list governs is refused. */
export type BrokenLists = { readonly [K in AllowlistName]?: string };

/** The allowlist as the controller holds it: the lists it reads, and those it could not. */
export interface LivePolicy {
  readonly lists: MirrorPolicy;
  readonly broken: BrokenLists;
}

/**
 * The lists of the allowlist ConfigMap's `data` (keys ALLOWLIST_KEYS; a key left out is a list
 * left unset), read as the controller and the admission policy read them: a key with a typo is
 * broken, not dropped. `where` names the ConfigMap in messages.
 */
export function readAllowlistData(data: Readonly<Record<string, string>> | undefined, where: string): LivePolicy {
  const lists: { [K in AllowlistName]?: readonly string[] } = {};
  const broken: { [K in AllowlistName]?: string } = {};
  for (const list of ALLOWLISTS) {
    const text = data?.[ALLOWLIST_KEYS[list]];
    if (text === undefined) continue;
    const entries = parseAllowlist(text);
    const bad = badEntries(list, entries);
    if (bad.length > 0) broken[list] = badEntriesMessage(`${where}, key ${ALLOWLIST_KEYS[list]}`, list, bad);
    else lists[list] = entries;
  }
  return { lists, broken };
}

/** Whether any list is set. */
export function policySet(policy: MirrorPolicy | undefined): boolean {
  return ALLOWLISTS.some((list) => policy?.[list] !== undefined);
}

/**
 * The same rule as CEL, for a ValidatingAdmissionPolicy whose params are the allowlist ConfigMap
 * (`params.data`, keys ALLOWLIST_KEYS): a key that is absent allows any value; a key holding an
 * entry that is not of its kind refuses every field it governs, with a message naming the
 * ConfigMap, the key and the entry (fail closed, as the controller). Each expression tests one field.
 */
export function allowlistValidations(): { expression: string; messageExpression: string; reason: string }[] {
  const key = (list: AllowlistName) => ALLOWLIST_KEYS[list];
  const entries = (list: AllowlistName) => `params.data.${key(list)}.split(',')`;
  const unset = (list: AllowlistName) => `!has(params.data) || !('${key(list)}' in params.data)`;
  const shown = (list: AllowlistName) =>
    `(${entries(list)}.exists(e, e.trim() != '') ? params.data.${key(list)} : 'none')`;
  const cel = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const syntax = (list: AllowlistName) => ENTRY_SYNTAX[ALLOWLIST_ENTRIES[list]];
  /** Whether CEL string `e` (trimmed) is a typo in list `list`. */
  const isBad = (list: AllowlistName, e: string) => `(${e} != '' && !${e}.matches(${cel(syntax(list).pattern)}))`;
  const valid = (list: AllowlistName) => `!${entries(list)}.exists(e, ${isBad(list, 'e.trim()')})`;
  /** The CEL of badEntriesMessage for the ConfigMap's key, and what happens to the mirror. */
  const broken = (list: AllowlistName) => {
    const bad = `${entries(list)}.map(e, e.trim()).filter(e, ${isBad(list, 'e')})`;
    return (
      `'ConfigMap ' + params.metadata.namespace + '/' + params.metadata.name + ', key ${key(list)}: \\'' + ` +
      `${bad}.join('\\', \\'') + (size(${bad}) == 1 ? '\\' is' : '\\' are') + ${cel(` not ${syntax(list).what}`)} + ` +
      `${cel(BROKEN_LIST_TAIL)}`
    );
  };
  /** The CEL of notAllowedMessage, for the field path `field` and the CEL expression `value`. */
  const message = (field: string, list: AllowlistName, value: string) =>
    `${valid(list)} ? ('${field} must be ${WHAT[ALLOWLIST_ENTRIES[list]]} the allowlist ${key(list)} admits (' + ${shown(list)} + '), got \\'' + ${value} + '\\'' + ` +
    `${list === 'objectStorageEndpoints' ? `(${value}.startsWith('http://') ? ${cel(HTTP_HINT)} : '')` : "''"}) : ${broken(list)}`;
  /** Whether CEL `value` is admitted by list `list`. */
  const admits = (list: AllowlistName, value: string) => {
    const listed = (test: string) => `${valid(list)} && ${entries(list)}.exists(e, ${test})`;
    switch (ALLOWLIST_ENTRIES[list]) {
      case 'host':
        return listed(
          `e.trim() == ${value} || (e.trim().startsWith('*.') && ${value}.endsWith(e.trim().substring(1)))`,
        );
      case 'registry':
        return listed(
          `e.trim() != '' && (e.trim().endsWith('/*') ? ${value}.startsWith(e.trim().substring(0, size(e.trim()) - 1)) : ${value} == e.trim())`,
        );
      case 'endpoint':
        return listed(
          `e.trim() != '' && (e.trim().startsWith('https://') ? e.trim().substring(8) : e.trim()) == ${value}`,
        );
      default:
        return listed(`e.trim() != '' && e.trim() == ${value}`);
    }
  };
  const one = (list: AllowlistName, field: string, value: string, present?: string) => ({
    expression: `${present ? `!${present} || ` : ''}${unset(list)} || (${admits(list, value)})`,
    messageExpression: message(field, list, value),
    reason: 'Forbidden',
  });
  const digestOf = (role: string) =>
    `object.spec.imageDigests.${role}.substring(object.spec.imageDigests.${role}.indexOf('@') + 1)`;
  const s3 = 'object.spec.objectStorage.s3';
  // The CRD admits http(s)://host[:port][/] only: the third part of a split on '/' is host[:port].
  const endpoint = `((${s3}.endpoint.startsWith('http://') ? 'http://' : '') + ${s3}.endpoint.split('/')[2])`;
  return [
    one('upstreams', 'spec.upstreamUrl', 'object.spec.upstreamUrl'),
    one('masquerades', 'spec.masqueradeUrl', 'object.spec.masqueradeUrl', 'has(object.spec.masqueradeUrl)'),
    one('imageRegistries', 'spec.imageRegistry', 'object.spec.imageRegistry', 'has(object.spec.imageRegistry)'),
    ...(Object.keys(IMAGES) as ImageRole[]).map((role) =>
      one(
        'imageDigests',
        `spec.imageDigests.${role}`,
        digestOf(role),
        `(has(object.spec.imageDigests) && has(object.spec.imageDigests.${role}))`,
      ),
    ),
    {
      expression:
        `!has(object.spec.imagePullSecrets) || ${unset('imagePullSecrets')} || ` +
        `(${valid('imagePullSecrets')} && object.spec.imagePullSecrets.all(s, ${admits('imagePullSecrets', 's.name')}))`,
      messageExpression: message(
        'spec.imagePullSecrets',
        'imagePullSecrets',
        `object.spec.imagePullSecrets.map(s, s.name).filter(n, !(${admits('imagePullSecrets', 'n')})).join(',')`,
      ),
      reason: 'Forbidden',
    },
    one(
      'priorityClasses',
      'spec.priorityClassName',
      'object.spec.priorityClassName',
      'has(object.spec.priorityClassName)',
    ),
    one(
      'objectStorageEndpoints',
      'spec.objectStorage.s3.endpoint',
      endpoint,
      `(has(object.spec.objectStorage) && has(${s3}.endpoint))`,
    ),
    one(
      'objectStorageEndpoints',
      'spec.objectStorage.s3.region',
      `('s3.' + ${s3}.region + '.amazonaws.com')`,
      `(has(object.spec.objectStorage) && !has(${s3}.endpoint))`,
    ),
  ];
}
