/** Noise §12.3 ChaChaPoly nonce: 32 bits of zeros, then the 64-bit counter little-endian. */
export const NONCE_LEN = 12;

export function chachaNonce(counter: number, out: Uint8Array = new Uint8Array(NONCE_LEN)): Uint8Array {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(0, 0);
  view.setBigUint64(4, BigInt(counter), true);
  return out;
}
