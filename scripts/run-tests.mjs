#!/usr/bin/env node
// Run the ava suite and end with one plain line "tests: N passed, N failed, N skipped"
// (ava's own summary has no standard shape); exit non-zero on any failure.
import { spawn } from 'node:child_process';

const args = ['--no-install', 'ava', '--tap', ...process.argv.slice(2)];
const child = spawn('npx', args, { stdio: ['ignore', 'pipe', 'inherit'] });
let passed = 0, failed = 0, skipped = 0, buffer = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (/^not ok \d+/.test(line)) failed++;
    else if (/^ok \d+.*# SKIP/i.test(line)) skipped++;
    else if (/^ok \d+/.test(line)) passed++;
  }
});
child.on('close', (code, signal) => {
  console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  // ava can also fail the run without a failed test line (e.g. a worker's
  // late error): say how it ended, so a red run is never unexplained.
  if (code !== 0) console.log(`ava ended with ${signal ? `signal ${signal}` : `exit code ${code}`}`);
  process.exit(code === 0 && failed === 0 && passed > 0 ? 0 : 1);
});
