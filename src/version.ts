/**
 * What this package is: its folder, its version and the oldest Node it runs
 * on. `mimo-proxy --version` and the Node check in cli/main.ts need only
 * this, so it imports nothing of the project.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package folder: this file is src/version.ts or dist/version.js, one level below it. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Read from package.json, so the two never disagree. */
export const VERSION: string = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * The oldest Node major mimo-proxy runs on: the one it is tested on (the
 * `node` devDependency), which package.json `engines` states too (a unit test
 * keeps them equal). The APIs alone would allow 22.15 (tls.getCACertificates,
 * https://nodejs.org/api/tls.html#tlsgetcacertificatestype; node:sqlite needs
 * no flag from 22.13), but nothing older than 24 is tested.
 */
export const MIN_NODE_MAJOR = 24;

/** Why this Node cannot run mimo-proxy (one sentence), or undefined when it can. */
export function nodeTooOld(nodeVersion: string = process.versions.node): string | undefined {
  const major = Number.parseInt(nodeVersion, 10);
  return major >= MIN_NODE_MAJOR ? undefined : `mimo-proxy needs Node ${MIN_NODE_MAJOR} or newer; this is Node ${nodeVersion}`;
}
