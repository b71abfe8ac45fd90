/**
 * Turn any error into one clear line on stderr and a non-zero exit.
 */
import { JumperError } from '../errors.js';

/** Exit statuses: 1 runtime failure, 2 usage/configuration. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const USAGE_CODES = new Set([
  'JUMPER_ERR_INVALID_ARG',
  'JUMPER_ERR_BAD_ADDRESS',
  'JUMPER_ERR_KEY_FILE',
  'JUMPER_ERR_KEY_PERMISSIONS',
  'JUMPER_ERR_KEY_EXISTS',
  'JUMPER_ERR_CONFIG',
]);

export function errorLine(program: string, err: unknown): string {
  if (err instanceof JumperError) return `${program}: ${err.message} [${err.code}]`;
  if (err instanceof Error) return `${program}: ${err.message}`;
  return `${program}: ${String(err)}`;
}

export function exitCodeFor(err: unknown): number {
  return err instanceof JumperError && USAGE_CODES.has(err.code) ? EXIT_USAGE : EXIT_FAILURE;
}

/** Print the line and exit. */
export function die(program: string, err: unknown): never {
  process.stderr.write(`${errorLine(program, err)}\n`);
  process.exit(exitCodeFor(err));
}
