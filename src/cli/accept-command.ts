/**
 * `jumper accept --from PATH --exec CMD`: receive handed-off connections and
 * run CMD for each with the connection as stdin/stdout (inetd style).
 */
import { Command, Option } from 'commander';
import { startAcceptor } from '../activation/acceptor.js';
import { createLogger, LOG_LEVELS, type LogFormat } from './logger.js';
import { holdHangupUntilReady } from './signals.js';
import { systemdNotifier } from '../activation/sd-notify.js';

export function addAcceptCommand(program: Command): void {
  program
    .command('accept')
    .description('receive connections handed off by a jumper (--connect handoff:PATH) and run a command per connection')
    .requiredOption('--from <path>', 'Unix socket to receive hand-offs on')
    .requiredOption('--exec <command>', 'shell command per connection; the connection is its stdin and stdout')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--log-format <format>', 'json or pretty').choices(['json', 'pretty']))
    .addHelpText(
      'after',
      '\nExample (the receiver in a namespace with no network, the socket in a shared directory):\n' +
        '  unshare -n jumper accept --from /shared/handoff.sock --exec "exec my-inetd-style-service"\n' +
        '  jumper forward --listen 0.0.0.0:8080 --connect handoff:/shared/handoff.sock',
    )
    .action(async (flags: { from: string; exec: string; logLevel: string; logFormat?: LogFormat }) => {
      // A SIGHUP while it starts must not kill it; accept has nothing to reload, so it is not replayed.
      holdHangupUntilReady();
      const logger = createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'jumper' });
      const acceptor = await startAcceptor({ from: flags.from, exec: flags.exec, logger });
      logger.info({ from: flags.from, exec: flags.exec }, 'accepting hand-offs');
      const notifier = systemdNotifier(logger);
      notifier.ready(`accepting hand-offs on ${flags.from}`);
      const stop = () => {
        notifier.stopping();
        void acceptor.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      // As for the other daemons: SIGHUP (a reload under systemd) must not kill it and leave --from behind.
      process.on('SIGHUP', () => {
        // Type=notify-reload waits for RELOADING=1 ... READY=1 even when there is nothing to do.
        notifier.reloading();
        logger.info('SIGHUP: nothing to reload for jumper accept');
        notifier.ready();
      });
    });
}
