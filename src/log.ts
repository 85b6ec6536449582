/**
 * A tiny levelled logger. One line per event: `LEVEL message key=value ...`.
 * Callers pass counts, codes, hosts and ids; never API keys, never message text.
 */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

export const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'info', 'debug'];

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  readonly level: LogLevel;
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
}

function formatFields(fields: LogFields | undefined): string {
  if (!fields) return '';
  let out = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = String(value);
    out += ` ${key}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
  }
  return out;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const rank = LOG_LEVELS.indexOf(level);
  const emit = (at: LogLevel, message: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(at) > rank) return;
    write(`${new Date().toISOString()} ${at.toUpperCase()} ${message}${formatFields(fields)}\n`);
  };
  return {
    level,
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
  };
}

export const silentLogger: Logger = createLogger('silent', () => undefined);
