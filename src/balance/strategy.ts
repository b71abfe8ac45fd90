/**
 * How the next backend is chosen among the eligible ones. Each strategy
 * honours weights; none allocates per pick.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Backend } from './backend.js';

export const STRATEGIES = ['round-robin', 'least-connections', 'random'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** Picks one of `candidates` (never empty). */
export type Strategy = (candidates: readonly Backend[]) => Backend;

export function parseStrategy(name: string): StrategyName {
  if ((STRATEGIES as readonly string[]).includes(name)) return name as StrategyName;
  throw new InvalidArgumentError(`unknown strategy "${name}" (expected ${STRATEGIES.join(', ')})`);
}

/**
 * Smooth weighted round-robin (as in nginx): exact shares over every cycle
 * of total-weight picks, and no bursts toward the heaviest backend.
 */
function roundRobin(candidates: readonly Backend[]): Backend {
  let total = 0;
  let best = candidates[0]!;
  for (const b of candidates) {
    b.current += b.weight;
    total += b.weight;
    if (b.current > best.current) best = b;
  }
  best.current -= total;
  return best;
}

/** Fewest open streams per unit of weight; ties rotate so idle backends share. */
function leastConnections(): Strategy {
  let turn = 0;
  return (candidates) => {
    const n = candidates.length;
    const start = turn++ % n;
    let best = candidates[start]!;
    for (let i = 1; i < n; i++) {
      const b = candidates[(start + i) % n]!;
      // Compare active/weight without division.
      if (b.active * best.weight < best.active * b.weight) best = b;
    }
    return best;
  };
}

function weightedRandom(random: () => number): Strategy {
  return (candidates) => {
    let total = 0;
    for (const b of candidates) total += b.weight;
    let point = random() * total;
    for (const b of candidates) {
      point -= b.weight;
      if (point < 0) return b;
    }
    return candidates[candidates.length - 1]!;
  };
}

export function createStrategy(name: StrategyName, random: () => number = Math.random): Strategy {
  switch (name) {
    case 'round-robin':
      return roundRobin;
    case 'least-connections':
      return leastConnections();
    case 'random':
      return weightedRandom(random);
  }
}
