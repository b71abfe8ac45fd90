/**
 * Wait for something a test cannot await directly (a close recorded after
 * the consumer saw its end, a process gone, a counter reached): check `done`
 * every `intervalMs`, at most timeoutMs / intervalMs times. Counted in
 * checks, not by the clock, so a stalled machine gets more time, not less.
 * Resolves with the last check; assert on the state afterwards for a clear
 * message.
 */
export async function pollUntil(done: () => boolean, timeoutMs: number, intervalMs = 10): Promise<boolean> {
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs); i++) {
    if (done()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return done();
}
