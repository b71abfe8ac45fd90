/**
 * Options that only mean something next to another one. Many have a
 * default, so whether the user typed them is read from commander's value
 * source: typed without what they apply to, they are refused (exit 2)
 * instead of being silently ignored.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';

/** Whether the user gave the option (by its attribute name, e.g. 'leaseTtl') rather than taking its default. */
export function given(cmd: Command, key: string): boolean {
  const source = cmd.getOptionValueSource(key);
  return source === 'cli' || source === 'env';
}

/** The option's long flag, for messages: 'leaseTtl' → '--lease-ttl'. */
function flagOf(cmd: Command, key: string): string {
  return cmd.options.find((o) => o.attributeName() === key)?.long ?? key;
}

/**
 * Refuse options typed where they have no effect.
 * @param keys        attribute names of the dependent options
 * @param applies     whether what they depend on is there
 * @param requirement what they need, for the message ("--register")
 * @throws InvalidArgumentError naming the first offending flag
 */
export function refuseUnless(cmd: Command, keys: readonly string[], applies: boolean, requirement: string): void {
  if (applies) return;
  const typed = keys.find((k) => given(cmd, k));
  if (typed !== undefined) throw new InvalidArgumentError(`${flagOf(cmd, typed)} applies only with ${requirement}`);
}
