/**
 * Scripts and programs shipped with the package (assets/) that the constructs put into ConfigMaps.
 * Each is read once, on first use, from the installed package: the constructs stay free of
 * I/O at import time, and the bytes depend only on the package version.
 */
import { readFileSync } from 'node:fs';

const cache = new Map<string, string>();

function asset(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    // src/construct/ and lib/construct/ are both two levels below the package root.
    text = readFileSync(new URL(`../../assets/${name}`, import.meta.url), 'utf8');
    cache.set(name, text);
  }
  return text;
}

/** The node agent's POSIX sh script (assets/node-agent.sh). */
export function nodeAgentScript(): string {
  return asset('node-agent.sh');
}

/** The mtail program that turns the front's access log into metrics (assets/front.mtail). */
export function frontMetricsProgram(): string {
  return asset('front.mtail');
}

/** Distribution's proxy.exec credential helper, a POSIX sh script (assets/credential-helper.sh). */
export function credentialHelperScript(): string {
  return asset('credential-helper.sh');
}
