#!/usr/bin/env node
// Writes docs/reference.md from the schema (npm run docs; run `npm run build` first).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { specReference } from '../lib/api/reference.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'reference.md');
writeFileSync(file, specReference());
console.log(`wrote ${file}`);
