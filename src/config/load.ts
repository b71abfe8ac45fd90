/**
 * Read a `jumper run` configuration file (YAML, or JSON, which is YAML) and
 * validate it; every problem is reported with its key path and line.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';
import { formatPath, validateConfig, type ConfigIssue, type RunSpec } from './schema.js';

/** Largest config file read; a bigger file is a mistake (a log, a binary). */
const MAX_CONFIG_BYTES = 1 << 20;

/** Issues as lines: "FILE:LINE: links[3].connect-timeout: expected a duration ...". */
function describe(file: string, issues: ConfigIssue[], lineOf: (path: ConfigIssue['path']) => number | undefined): string {
  return issues
    .map((i) => {
      const line = lineOf(i.path);
      return `${file}${line ? `:${line}` : ''}: ${formatPath(i.path)}: ${i.message}`;
    })
    .join('\n');
}

/**
 * Parse and validate configuration text.
 * @throws ConfigError (JUMPER_ERR_CONFIG) listing every problem, one per line.
 */
export function parseConfig(text: string, file = 'config'): RunSpec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => `${file}:${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const { spec, issues } = validateConfig(doc.toJS());
  if (issues.length > 0) {
    const lineOf = (path: ConfigIssue['path']): number | undefined => {
      // The deepest node that exists: an unknown key's own line, a missing key's parent.
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
        if (node?.range) return lineCounter.linePos(node.range[0]).line;
      }
      return undefined;
    };
    throw new ConfigError(`invalid configuration (${issues.length} problem${issues.length > 1 ? 's' : ''}):\n${describe(file, issues, lineOf)}`);
  }
  return spec;
}

/**
 * Read and validate a configuration file.
 * @throws ConfigError (JUMPER_ERR_CONFIG) when it cannot be read or is invalid.
 */
export async function loadConfig(file: string): Promise<RunSpec> {
  let text: string;
  try {
    const data = await readFile(file);
    if (data.length > MAX_CONFIG_BYTES) throw new ConfigError(`${file}: larger than ${MAX_CONFIG_BYTES} bytes; is this the right file?`);
    text = data.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return parseConfig(text, file);
}
