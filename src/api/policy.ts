/**
 * The platform team's allowlist: what a RegistryMirror may name. Writing a RegistryMirror decides
 * what every node's runtime asks for a registry host (`masqueradeUrl`, `upstreamUrl`), which images
 * the cache pods run and how they are pulled (`imageRegistry`, `imageDigests`, `imagePullSecrets`)
 * and how they are scheduled (`priorityClassName`), so a cluster where others may write
 * RegistryMirrors sets these lists. The node agent, which runs as root on every node, takes its
 * image from the platform alone (`--node-agent-image`), never from a spec.
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
 * (`sha256:<64 hex>`), pull Secret and priority class names match themselves. Values are compared
 * as written (Docker Hub's spellings, `docker.io` and `index.docker.io`, are two entries).
 */
import { SpecError, type SpecProblem } from './errors.js';
import { ALLOWLIST_KEYS, type AllowlistName, type ImageRole, IMAGES } from './names.js';
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
} as const satisfies Record<AllowlistName, string>;

/** Every list, in the order of messages and flags. */
export const ALLOWLISTS = Object.keys(ALLOWLIST_KEYS) as AllowlistName[];

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

/** The value of a pinned image, `<tag>@sha256:...`: its digest. */
function pinnedDigest(pin: string): string {
  return pin.slice(pin.indexOf('@') + 1);
}

const WHAT: Record<(typeof ALLOWLIST_ENTRIES)[AllowlistName], string> = {
  host: 'a host',
  registry: 'a registry',
  digest: 'a digest',
  name: 'a name',
};

/** The message for a value the allowlist `list` does not admit (the admission policy says the same). */
export function notAllowedMessage(
  field: string,
  list: AllowlistName,
  entries: readonly string[],
  value: string,
): string {
  const shown = entries.length === 0 ? 'none' : entries.join(',');
  return `${field} must be ${WHAT[ALLOWLIST_ENTRIES[list]]} the allowlist ${ALLOWLIST_KEYS[list]} admits (${shown}), got '${value}'`;
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
  }
}

function allowed(list: AllowlistName, value: string, entries: readonly string[]): boolean {
  switch (ALLOWLIST_ENTRIES[list]) {
    case 'host':
      return hostAllowed(value, entries);
    case 'registry':
      return registryAllowed(value, entries);
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

/** Whether any list is set. */
export function policySet(policy: MirrorPolicy | undefined): boolean {
  return ALLOWLISTS.some((list) => policy?.[list] !== undefined);
}

/**
 * The same rule as CEL, for a ValidatingAdmissionPolicy whose params are the allowlist ConfigMap
 * (`params.data`, keys ALLOWLIST_KEYS): a key that is absent allows any value. Each expression
 * tests one field.
 */
export function allowlistValidations(): { expression: string; messageExpression: string; reason: string }[] {
  const key = (list: AllowlistName) => ALLOWLIST_KEYS[list];
  const entries = (list: AllowlistName) => `params.data.${key(list)}.split(',')`;
  const unset = (list: AllowlistName) => `!has(params.data) || !('${key(list)}' in params.data)`;
  const shown = (list: AllowlistName) =>
    `(${entries(list)}.exists(e, e.trim() != '') ? params.data.${key(list)} : 'none')`;
  /** The CEL of notAllowedMessage, for the field path `field` and the CEL expression `value`. */
  const message = (field: string, list: AllowlistName, value: string) =>
    `'${field} must be ${WHAT[ALLOWLIST_ENTRIES[list]]} the allowlist ${key(list)} admits (' + ${shown(list)} + '), got \\'' + ${value} + '\\''`;
  /** Whether CEL `value` is admitted by list `list`. */
  const admits = (list: AllowlistName, value: string) => {
    switch (ALLOWLIST_ENTRIES[list]) {
      case 'host':
        return `${entries(list)}.exists(e, e.trim() == ${value} || (e.trim().startsWith('*.') && ${value}.endsWith(e.trim().substring(1))))`;
      case 'registry':
        return `${entries(list)}.exists(e, e.trim() != '' && (e.trim().endsWith('/*') ? ${value}.startsWith(e.trim().substring(0, size(e.trim()) - 1)) : ${value} == e.trim()))`;
      default:
        return `${entries(list)}.exists(e, e.trim() != '' && e.trim() == ${value})`;
    }
  };
  const one = (list: AllowlistName, field: string, value: string, present?: string) => ({
    expression: `${present ? `!${present} || ` : ''}${unset(list)} || ${admits(list, value)}`,
    messageExpression: message(field, list, value),
    reason: 'Forbidden',
  });
  const digestOf = (role: string) =>
    `object.spec.imageDigests.${role}.substring(object.spec.imageDigests.${role}.indexOf('@') + 1)`;
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
        `object.spec.imagePullSecrets.all(s, ${admits('imagePullSecrets', 's.name')})`,
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
  ];
}
