/**
 * Errors a user can act on: what failed, a stable code, and the fix.
 * Printed as `ERROR: <message>. Fix: <hint>` by the CLI.
 *
 * Every code is listed once, in ERRORS below (as fastify's lib/errors.js
 * lists its codes): what it means and the usual fix. The README's "Error
 * codes" table is this table (test/unit/errors.test.ts keeps the two equal).
 * A throw site writes the specific message (the path, option or port) and
 * may give a fix more specific than the table's.
 */

interface ErrorSpec {
  /** What went wrong, in general (the message at the throw site says it for the case at hand). */
  meaning: string;
  /** The usual fix; also the hint when a throw site gives none. */
  fix: string;
}

export const ERRORS = {
  NODE_TOO_OLD: {
    meaning: 'the Node that runs mimo-proxy is older than the version it is tested on (see `engines` in package.json)',
    fix: 'run it with Node 24 or newer: in a checkout, `npx mimo-proxy` runs the Node that npm install put in node_modules',
  },
  BAD_ARGUMENT: {
    meaning: 'a command got a word it does not take, or no command to run',
    fix: 'run the command as its usage line (in the message, or mimo-proxy --help) shows',
  },
  BAD_OPTION: {
    meaning: 'an option (or its MIMO_PROXY_* variable) is unknown, has no value, or has a value that is not valid',
    fix: 'the message names the option; pass a value as mimo-proxy --help describes',
  },
  OPEN_PROXY: {
    meaning: 'a --host other than loopback without --auth would let other machines use the proxy',
    fix: 'keep the default --host 127.0.0.1, or add --auth USER:PASS',
  },
  PORT_IN_USE: {
    meaning: 'another process listens on the --host and --port the proxy was to listen on',
    fix: 'pass --port with a free port (0 picks one), or stop the process holding it (mimo-proxy status tells whether it is a mimo-proxy)',
  },
  PORT_DENIED: {
    meaning: 'this user may not listen on that port (ports below 1024 need privileges)',
    fix: 'pass --port 1024 or higher',
  },
  BAD_HOST: {
    meaning: '--host is not an address of this machine',
    fix: 'pass --host 127.0.0.1 (the default)',
  },
  LISTEN_FAILED: {
    meaning: 'listening failed for another reason (the message carries the system error)',
    fix: 'check --host and --port',
  },
  PORT_TAKEN: {
    meaning: '`env` or `run` found something on the port that is not a mimo-proxy this version can use',
    fix: 'pass --port with another port, or stop what holds it',
  },
  ENV_UNQUOTABLE: {
    meaning: '`env` cannot write a variable of this shell in the chosen shell\'s syntax',
    fix: 'use another shell, or unset that variable first',
  },
  CA_DOMAINS: {
    meaning: 'the domains to intercept are not DNS domains',
    fix: 'pass domains like xiaomimimo.com',
  },
  CA_NOT_COVERING: {
    meaning: 'the CA in the certs folder cannot vouch for every domain to intercept: it was made before a provider (--providers) or a domain (--hosts) was added, and a CA\'s name constraints are fixed when it is made',
    fix: 'make a new CA with mimo-proxy ca --renew and the same --providers, --hosts and --certs (the old CA files are moved aside, not deleted); then trust the new ca.pem again (mimo-proxy ca --install, a new eval of mimo-proxy env) and remove the old CA from every trust store you added it to by hand',
  },
  CA_CORRUPT: {
    meaning: 'the CA in the certs folder cannot be used: ca.pem or ca-key.pem is missing or unreadable, the key is not the certificate\'s, or it is not a CA',
    fix: 'move both files out of the way (a new CA is made; clients must then trust the new ca.pem), or pass --certs DIR with another folder',
  },
  CERTS_DIR_UNREADABLE: {
    meaning: 'a file of the CA in the certs folder cannot be read',
    fix: 'run as the user who made the CA, or pass --certs DIR with a directory you own',
  },
  CERTS_DIR_UNWRITABLE: {
    meaning: 'the CA or a leaf key cannot be written to the certs folder',
    fix: 'pass --certs DIR with a directory you own',
  },
  CA_HOSTNAME: {
    meaning: 'a leaf certificate was asked for a name that is neither a DNS name nor an IP address',
    fix: 'use a host name of letters, digits, dots and dashes, or an IP address',
  },
  CA_HOST_NOT_PERMITTED: {
    meaning: 'a leaf certificate was asked for a host outside the CA\'s permitted domains (clients would reject it)',
    fix: 'intercept only hosts under the configured domains (--hosts) and tunnel the rest',
  },
  DATA_DIR_UNWRITABLE: {
    meaning: 'the reasoning store in the data folder cannot be written',
    fix: 'pass --data DIR with a directory you own, or --no-persist',
  },
  STORE_LOCKED: {
    meaning: 'another process kept the reasoning store locked for the whole startup wait',
    fix: 'stop the other mimo-proxy that uses this data folder, or pass --data DIR with another folder, or --no-persist',
  },
  STORE_UNUSABLE: {
    meaning: 'the reasoning store cannot be opened',
    fix: 'pass --data DIR with a directory you own, or --no-persist',
  },
  REDIS_UNREACHABLE: {
    meaning: 'the Redis (or Valkey) server of --store does not answer; the running proxy serves from memory and reconnects',
    fix: 'start the server, or pass --store redis://HOST:PORT with the address where it listens',
  },
  REDIS_AUTH: {
    meaning: 'the Redis server of --store refused the credentials; the running proxy serves from memory and retries',
    fix: 'pass --store redis://USER:PASS@HOST:PORT with the password (requirepass) or ACL user the server expects',
  },
  REDIS_TLS: {
    meaning: 'the TLS connection to the Redis server of --store failed (a plain port, or a certificate this machine does not trust); the running proxy serves from memory and retries',
    fix: 'use rediss:// only for a TLS port, and trust its CA with --upstream-ca FILE or NODE_EXTRA_CA_CERTS',
  },
} as const satisfies Record<string, ErrorSpec>;

/** Every code a MimoProxyError can carry: the keys of ERRORS. */
export type ErrorCode = keyof typeof ERRORS;

export class MimoProxyError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;

  /** `hint` defaults to the code's fix in ERRORS. */
  constructor(code: ErrorCode, message: string, hint: string = ERRORS[code].fix, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MimoProxyError';
    this.code = code;
    this.hint = hint;
  }

  /** The one line the CLI prints. */
  format(): string {
    return `ERROR: ${this.message}. Fix: ${this.hint}`;
  }
}
