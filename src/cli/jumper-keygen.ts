#!/usr/bin/env node
/**
 * `jumper-keygen FILE`: write a new 32-byte random key (libsodium CSPRNG),
 * mode 0600, and print its non-secret fingerprint. `-` writes the key to
 * stdout (the fingerprint then goes to stderr). The file also works as a
 * spiped key file.
 */
import { Command } from 'commander';
import { generateKey, writeNewKeyFile } from '../keys/key-file.js';
import { wipe } from '../crypto/sodium.js';
import { die } from './fail.js';

const PROGRAM = 'jumper-keygen';

const program = new Command(PROGRAM)
  .description('create a new pre-shared key file for jumper (and spiped)')
  .argument('<file>', 'where to write the key (mode 0600), or - for stdout')
  .option('-f, --force', 'overwrite an existing file')
  .addHelpText(
    'after',
    `
Examples:
  jumper-keygen /etc/jumper/db.key        # prints: fingerprint 3f9a-01c2-77de-b410
  jumper-keygen - | ssh other-host 'umask 077; cat > /etc/jumper/db.key'

Copy the same file to both ends. The fingerprint is safe to share and log;
compare it on both hosts (jumper logs it at start-up). Never share the file.`,
  )
  .action(async (file: string, flags: { force?: boolean }) => {
    if (file === '-') {
      const { secret, key } = await generateKey();
      process.stdout.write(Buffer.from(secret));
      wipe(secret);
      process.stderr.write(`fingerprint ${key.fingerprint}\n`);
      return;
    }
    const key = await writeNewKeyFile(file, { force: flags.force ?? false });
    process.stdout.write(`wrote ${file} (32 bytes, mode 0600)\nfingerprint ${key.fingerprint}\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => die(PROGRAM, err));
