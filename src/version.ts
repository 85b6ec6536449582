/**
 * What this package is: its folder and its version. `mimo-proxy --version`
 * needs only this, so it imports nothing of the project.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package folder: this file is src/version.ts or dist/version.js, one level below it. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Read from package.json, so the two never disagree. */
export const VERSION: string = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
