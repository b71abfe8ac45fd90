/**
 * The value stored under PREFIX/ADDRESS for each registered backend
 * (docs/discovery.md). JSON, so operators can read and write it with etcdctl.
 */
import { checkWeight, type BackendSpec } from '../balance/backend.js';
import { parseAddress } from '../addr/address.js';

/** Format version of the record; readers skip records with a newer major version. */
export const RECORD_VERSION = 1;

export interface RegistrationRecord {
  /** Where balancers and clients connect: host:port, [v6]:port or /path.sock. */
  address: string;
  weight: number;
  version: number;
  /** Free-form, for humans: who registered it. */
  role?: string;
  /** Fingerprint of the (first) key the server accepts; never key bytes. */
  keyFingerprint?: string;
}

export function encodeRecord(record: RegistrationRecord): string {
  return JSON.stringify(record);
}

/** The backend a record names, or a reason why it is unusable. */
export function decodeRecord(text: string): BackendSpec | { invalid: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { invalid: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { invalid: 'not a JSON object' };
  const record = value as Partial<Record<keyof RegistrationRecord, unknown>>;
  if (typeof record.version !== 'number' || Math.floor(record.version) > RECORD_VERSION) {
    return { invalid: `unsupported record version ${String(record.version)}` };
  }
  if (typeof record.address !== 'string') return { invalid: 'no address' };
  try {
    parseAddress(record.address);
  } catch (err) {
    return { invalid: (err as Error).message };
  }
  const weight = record.weight === undefined ? 1 : record.weight;
  try {
    if (typeof weight !== 'number') throw new Error('weight is not a number');
    checkWeight(weight, 'record');
  } catch (err) {
    return { invalid: (err as Error).message };
  }
  return { address: record.address, weight: weight as number };
}
