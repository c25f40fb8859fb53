/**
 * The first stage of a reconcile: the mirror's spec as the CLI would read it, admitted by the
 * allowlists and the controller's settings, or the Stalled outcome saying why not.
 */
import { SpecError } from '../api/errors.js';
import { mirrorName } from '../api/kube-object.js';
import {
  ALLOWLIST_NAME,
  ALLOWLISTS,
  BROKEN_LIST_TAIL,
  governedField,
  type LivePolicy,
  policyProblems,
} from '../api/policy.js';
import { type MirrorInput, parseMirrorResource } from '../api/validate.js';
import { fillImageProblem } from '../construct/images.js';
import type { RegistryMirrorObject } from './kube.js';
import type { ReconcileOutcome } from './status.js';

/** A SpecError as one condition message: every problem, then what to do. */
export function specMessage(err: SpecError): string {
  return `${err.problems.map((p) => p.message).join('; ')}. Fix the RegistryMirror spec.`;
}

/** How the controller is told the fill image, for the NoFillImage message. */
const CONTROLLER_FILL_IMAGE_SETTINGS =
  "the controller's --fill-image or FILL_IMAGE, which `mirror-synth controller-manifests` sets to the controller's own image (apply its output again)";

export interface ReadOptions {
  readonly namespace: string;
  readonly fillImage?: string;
  /** The allowlists as they are now (read once the spec parses). @default - anything */
  readonly policy?: () => LivePolicy;
}

/** The mirror's validated spec, or the outcome that stalls it (InvalidSpec, InvalidAllowlist, NotAllowed, NoFillImage). */
export function readSpec(mirror: RegistryMirrorObject, opts: ReadOptions): MirrorInput | ReconcileOutcome {
  let input: MirrorInput;
  try {
    input = parseMirrorResource(mirror, `cluster:registrymirror/${mirrorName(mirror)}`);
  } catch (err) {
    if (err instanceof SpecError) return { type: 'Stalled', reason: 'InvalidSpec', message: specMessage(err) };
    throw err;
  }
  const policy = opts.policy?.();
  const broken = ALLOWLISTS.filter(
    (list) => policy?.broken[list] !== undefined && governedField(input.spec, list) !== undefined,
  );
  if (broken.length > 0) {
    // Fail closed: a list with a typo admits nothing it governs, so a typo never opens the gate.
    return {
      type: 'Stalled',
      reason: 'InvalidAllowlist',
      message: `${broken.map((list) => policy?.broken[list]).join('; ')}${BROKEN_LIST_TAIL}`,
    };
  }
  const refused = policyProblems(input, policy?.lists);
  if (refused.length > 0) {
    return {
      type: 'Stalled',
      reason: 'NotAllowed',
      message: `${refused.map((p) => p.message).join('; ')}. Change the RegistryMirror, or ask the platform team to extend the allowlist (ConfigMap ${opts.namespace}/${ALLOWLIST_NAME}).`,
    };
  }
  const noFillImage = fillImageProblem(input, opts.fillImage, CONTROLLER_FILL_IMAGE_SETTINGS);
  if (noFillImage) return { type: 'Stalled', reason: 'NoFillImage', message: noFillImage.message };
  return input;
}
