/**
 * The platform team's allowlist: which upstream hosts, masquerade hosts and image registries a
 * RegistryMirror may name. Writing a RegistryMirror decides what every node's runtime asks for a
 * registry host (`masqueradeUrl`, `upstreamUrl`) and which image the root, hostPath node agent runs
 * (`imageRegistry`), so a cluster where others may write RegistryMirrors sets these lists.
 *
 * One rule, in three places that must agree: synth and validate (SpecError), the controller
 * (a Stalled mirror) and the ValidatingAdmissionPolicy of controller-manifests (the same test as
 * CEL, see allowlistValidations). A list left unset allows any value (today's behaviour); a list
 * set to nothing allows none.
 *
 * Entries: a host (`quay.io`, `registry.example.com:5443`) matches itself; `*.example.com` matches
 * every host under example.com (not example.com itself, and no port); for image registries an entry
 * (`harbor.example.com`, `harbor.example.com/hub`) matches itself and every path under it. Values are
 * compared as written (Docker Hub's spellings, `docker.io` and `index.docker.io`, are two entries).
 */
import { SpecError, type SpecProblem } from './errors.js';
import { ALLOWLIST_KEYS } from './names.js';
import type { MirrorInput } from './validate.js';

/** The lists; `undefined` allows any value. */
export interface MirrorPolicy {
  readonly upstreams?: readonly string[];
  readonly masquerades?: readonly string[];
  readonly imageRegistries?: readonly string[];
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

/** Whether an image registry (`host[:port][/path]`) is one of `entries` or under one. */
export function registryAllowed(registry: string, entries: readonly string[]): boolean {
  return entries.some((e) => registry === e || registry.startsWith(`${e}/`));
}

/** The message for a value the allowlist `key` does not admit (the admission policy says the same). */
export function notAllowedMessage(field: string, key: string, entries: readonly string[], value: string): string {
  const list = entries.length === 0 ? 'none' : entries.join(',');
  return `${field} must be ${key === ALLOWLIST_KEYS.imageRegistries ? 'a registry' : 'a host'} the allowlist ${key} admits (${list}), got '${value}'`;
}

/** Every field of a mirror the policy refuses. */
export function policyProblems(mirror: MirrorInput, policy: MirrorPolicy | undefined): SpecProblem[] {
  if (!policy) return [];
  const { spec, source, name } = mirror;
  const problems: SpecProblem[] = [];
  const refuse = (field: string, key: string, entries: readonly string[], value: string) =>
    problems.push({ source, mirror: name, field, message: notAllowedMessage(field, key, entries, value) });
  if (policy.upstreams && !hostAllowed(spec.upstreamUrl, policy.upstreams)) {
    refuse('spec.upstreamUrl', ALLOWLIST_KEYS.upstreams, policy.upstreams, spec.upstreamUrl);
  }
  if (spec.masqueradeUrl !== undefined && policy.masquerades && !hostAllowed(spec.masqueradeUrl, policy.masquerades)) {
    refuse('spec.masqueradeUrl', ALLOWLIST_KEYS.masquerades, policy.masquerades, spec.masqueradeUrl);
  }
  if (
    spec.imageRegistry !== undefined &&
    policy.imageRegistries &&
    !registryAllowed(spec.imageRegistry, policy.imageRegistries)
  ) {
    refuse('spec.imageRegistry', ALLOWLIST_KEYS.imageRegistries, policy.imageRegistries, spec.imageRegistry);
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
  return Boolean(policy && (policy.upstreams || policy.masquerades || policy.imageRegistries));
}

/**
 * The same rule as CEL, for a ValidatingAdmissionPolicy whose params are the allowlist ConfigMap
 * (`params.data`, keys ALLOWLIST_KEYS): a key that is absent allows any value.
 */
export function allowlistValidations(): { expression: string; messageExpression: string; reason: string }[] {
  const list = (key: string) => `params.data.${key}.split(',')`;
  const unset = (key: string) => `!has(params.data) || !('${key}' in params.data)`;
  const shown = (key: string) => `(${list(key)}.exists(e, e.trim() != '') ? params.data.${key} : 'none')`;
  const message = (field: string, key: string, what: string, value: string) =>
    `'${field} must be ${what} the allowlist ${key} admits (' + ${shown(key)} + '), got \\'' + ${value} + '\\''`;
  const host = (key: string, value: string) =>
    `${list(key)}.exists(e, e.trim() == ${value} || (e.trim().startsWith('*.') && ${value}.endsWith(e.trim().substring(1))))`;
  const { upstreams, masquerades, imageRegistries } = ALLOWLIST_KEYS;
  return [
    {
      expression: `${unset(upstreams)} || ${host(upstreams, 'object.spec.upstreamUrl')}`,
      messageExpression: message('spec.upstreamUrl', upstreams, 'a host', 'object.spec.upstreamUrl'),
      reason: 'Forbidden',
    },
    {
      expression: `!has(object.spec.masqueradeUrl) || ${unset(masquerades)} || ${host(masquerades, 'object.spec.masqueradeUrl')}`,
      messageExpression: message('spec.masqueradeUrl', masquerades, 'a host', 'object.spec.masqueradeUrl'),
      reason: 'Forbidden',
    },
    {
      expression:
        `!has(object.spec.imageRegistry) || ${unset(imageRegistries)} || ` +
        `${list(imageRegistries)}.exists(e, e.trim() != '' && (object.spec.imageRegistry == e.trim() || object.spec.imageRegistry.startsWith(e.trim() + '/')))`,
      messageExpression: message('spec.imageRegistry', imageRegistries, 'a registry', 'object.spec.imageRegistry'),
      reason: 'Forbidden',
    },
  ];
}
