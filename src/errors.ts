/**
 * Errors a user can act on: what failed, a stable code, and the fix.
 * Printed as `ERROR: <message>. Fix: <hint>` by the CLI.
 */
export class MimoProxyError extends Error {
  readonly code: string;
  readonly hint: string;

  constructor(code: string, message: string, hint: string, options?: { cause?: unknown }) {
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
