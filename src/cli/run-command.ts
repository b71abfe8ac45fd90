/**
 * `jumper run --config FILE`: every link of a configuration file in one
 * process; SIGHUP reloads the file, SIGTERM/SIGINT drain and exit.
 */
import { Command, Option } from 'commander';
import { die } from './fail.js';
import { LOG_LEVELS, type LogFormat } from './logger.js';
import { BUSY_POLL_HELP } from './operate-options.js';
import { parseBusyPoll, parseDuration } from './parse.js';

export interface RunFlags {
  config: string;
  check?: boolean;
  admin?: string;
  user?: string;
  group?: string;
  drainTimeout?: number;
  logLevel?: string;
  logFormat?: LogFormat;
  busyPoll?: number;
}

const HELP = `
The file (YAML or JSON) lists links; each is what one \`jumper client|server|forward|balance\`
command would run, with the long option names as keys:

  admin: 127.0.0.1:9100          # optional: /metrics, /healthz, /status
  user: jumper                   # optional: drop root once everything listens
  drain-timeout: 30s
  busy-poll: 50                  # optional: microseconds; see --busy-poll
  links:
    - name: db                   # label in logs, metrics and /status
      role: client
      listen: 127.0.0.1:5432
      connect: db-host:8025
      key: /etc/jumper/db.key
    - name: web
      role: server
      listen: 0.0.0.0:8443
      connect: 127.0.0.1:8080
      key: [/etc/jumper/web.key, /etc/jumper/web.old.key]
      proxy-protocol: v2
      allow: [10.0.0.0/8]

Every key is checked before anything starts; an error names the file, line and key path:
  jumper.yaml:12: links[1].connect-timeout: expected a duration such as 5s, 250ms or 2m

Signals:
  SIGHUP   re-read the file. Added links start, removed links stop accepting and drain,
           changed links drain while a new instance takes their address; other links and
           their streams are untouched (they pick up new key file contents). An invalid file,
           an unreadable key or a bad address refuses the whole reload: it is logged and the
           running configuration stays.
  SIGTERM  stop accepting, drain every link (drain-timeout), exit 0. A second signal exits at once.
           One during start-up is carried out once every link listens (keys and socket files go).

Exit status: 0 after a clean stop (or --check of a valid file), 1 runtime failure,
2 invalid configuration or usage.
Reference: docs/operations.md (every key, the metrics, systemd units, runbooks).`;

export function addRunCommand(program: Command): void {
  program
    .command('run')
    .description('run every link of a configuration file in one process (reload with SIGHUP)')
    .requiredOption('-f, --config <file>', 'configuration file, YAML or JSON')
    .option('--check', 'check the file as run would before listening (keys, addresses, key files, user and group, admin address) and exit')
    .option('--admin <addr>', 'admin endpoint host:port or /path.sock (overrides the file\'s "admin")')
    .option('--user <user>', 'drop root to this user once every link listens (overrides the file)')
    .option('--group <group>', 'with --user: the group (overrides the file)')
    .addOption(new Option('--drain-timeout <duration>', 'on SIGTERM, how long open streams may finish (overrides the file)').argParser(parseDuration))
    .option('--busy-poll <microseconds>', `${BUSY_POLL_HELP} (overrides the file)`, parseBusyPoll)
    .addOption(new Option('--log-level <level>', 'log level (default: the file\'s, else info)').choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'json, or pretty for humans (default: pretty on a terminal, else json)').choices(['json', 'pretty']))
    .addHelpText('after', HELP)
    .action(async (flags: RunFlags) => {
      // Loaded on use: other commands never load the YAML parser or prom-client.
      const { checkConfig, runConfig } = await import('./run-config.js');
      if (flags.check) await checkConfig(flags);
      else await runConfig(flags).catch((err: unknown) => die('jumper', err));
    });
}
