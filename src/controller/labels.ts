/** Labels and names the controller relies on to find and own a mirror's children. */
import { MANAGED_BY, MANAGED_BY_LABEL as CORE_MANAGED_BY_LABEL, MIRROR_LABEL } from '../mirror.js';
import { API_GROUP, API_VERSION, KIND, PLURAL } from '../schema.js';

export const MIRROR_LABEL_KEY = MIRROR_LABEL;
export const MANAGED_BY_LABEL = CORE_MANAGED_BY_LABEL;
export const MANAGED_BY_VALUE = MANAGED_BY;
/** Field manager for server-side apply. */
export const FIELD_MANAGER = 'mirror-synth';
/** Label selector of every object the controller may own. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export const MIRROR_GROUP = API_GROUP;
export const MIRROR_VERSION = API_VERSION;
export const MIRROR_API_VERSION = `${API_GROUP}/${API_VERSION}`;
export const MIRROR_KIND = KIND;
export const MIRROR_PLURAL = PLURAL;
