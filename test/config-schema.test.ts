/**
 * The configuration validator: normalized values, and one precise message
 * per problem with the key's path and line.
 */
import test from 'ava';
import { parseConfig } from '../src/config/load.js';
import { createServer } from '../src/index.js';
import { makeKey } from './helpers/tunnel.js';

const ok = (text: string) => parseConfig(text, 'j.yaml');
const problems = (text: string): string[] => {
  try {
    parseConfig(text, 'j.yaml');
  } catch (err) {
    if ((err as { code?: string }).code !== 'JUMPER_ERR_CONFIG') throw err;
    return (err as Error).message.split('\n').slice(1);
  }
  throw new Error('expected the configuration to be refused');
};

test('YAML and JSON give the same normalized spec', (t) => {
  const yaml = ok(`
admin: 127.0.0.1:9100
user: 65534
drain-timeout: 2m
links:
  - name: a
    role: server
    listen: /run/a.sock
    connect: 127.0.0.1:80
    key: [k1, k2]
    connect-timeout: 250ms
    handshake-timeout: 3
    listen-mode: "0660"
    proxy-protocol: v2
    start: { command: "sleep 1", idle-stop: 1m }
`);
  const json = ok(
    JSON.stringify({
      admin: '127.0.0.1:9100',
      user: 65534,
      'drain-timeout': '2m',
      links: [
        {
          name: 'a',
          role: 'server',
          listen: '/run/a.sock',
          connect: '127.0.0.1:80',
          key: ['k1', 'k2'],
          'connect-timeout': '250ms',
          'handshake-timeout': 3,
          'listen-mode': '0660',
          'proxy-protocol': 'v2',
          start: { command: 'sleep 1', 'idle-stop': '1m' },
        },
      ],
    }),
  );
  t.deepEqual(yaml, json);
  t.is(yaml.user, '65534');
  t.is(yaml.drainTimeoutMs, 120_000);
  const link = yaml.links[0]!;
  t.is(link['connect-timeout'], 250);
  t.is(link['handshake-timeout'], 3000);
  t.is(link['listen-mode'], 0o660);
  t.deepEqual(link.start, { command: 'sleep 1', idleStopMs: 60_000 });
});

test('each problem names its key path and line', (t) => {
  t.deepEqual(
    problems(`links:
  - name: c
    role: client
    listen: 127.0.0.1:1
    connect: 127.0.0.1:2
    key: [a, b]
    proxy-protocol: v2
  - name: c
    role: forward
    listen: 127.0.0.1:3
`),
    [
      'j.yaml:7: links[0].proxy-protocol: does not apply to role client (only server, forward)',
      'j.yaml:6: links[0].key: a client takes exactly one key',
      'j.yaml:8: links[1].connect: required (or discover)', // a missing key: the line where its link starts
      'j.yaml:8: links[1].name: "c" is already the name of links[0]',
    ],
  );
});

test('top-level mistakes, types and YAML syntax errors', (t) => {
  t.deepEqual(problems('link: []\n'), ['j.yaml:1: link: unknown key (did you mean "links"?)', 'j.yaml:1: links: required']);
  t.deepEqual(problems('links: {}\n'), ['j.yaml:1: links: expected a list of links, got a mapping']);
  t.deepEqual(problems('links:\n  - name: x\n    role: forward\n    listen: 127.0.0.1:0\n    connect: 127.0.0.1:1\n    maxConnections: 5\n'), [
    'j.yaml:6: links[0].maxConnections: unknown key (did you mean "max-connections"?)',
  ]);
  t.deepEqual(problems('links:\n  - name: x\n    role: forward\n    listen: 127.0.0.1:0\n    connect: 127.0.0.1:1\n    keepalive: "yes"\n'), [
    'j.yaml:6: links[0].keepalive: expected true or false, got string "yes"',
  ]);
  t.regex(problems('links: [\n')[0]!, /^j\.yaml:\d+: /);
  t.regex(problems('a: 1\na: 2\nlinks: []\n')[0]!, /^j\.yaml:2: .*[Mm]ap keys must be unique/);
});

test('an empty link list is valid (an idle process with only the admin endpoint)', (t) => {
  t.deepEqual(ok('links: []\n').links, []);
});

test('register: advertise is required, the registration keys need register, the TTL has a floor', (t) => {
  const spec = ok(`
links:
  - { name: s, role: server, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, key: k, register: etcd://127.0.0.1:2379/jumper/db, advertise: 10.0.0.5:7000, weight: 2, lease-ttl: 5s }
`);
  t.like(spec.links[0], { register: 'etcd://127.0.0.1:2379/jumper/db', advertise: '10.0.0.5:7000', weight: 2, 'lease-ttl': 5000 });
  const bad = problems(`
links:
  - { name: a, role: server, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, key: k, register: etcd://127.0.0.1:2379/x, lease-ttl: 1s }
  - { name: b, role: server, listen: 127.0.0.1:7001, connect: 127.0.0.1:80, key: k, weight: 3 }
`);
  t.true(bad.some((l) => l.includes('links[0].advertise: required with register')), bad.join('\n'));
  t.true(bad.some((l) => l.includes('links[0].lease-ttl: expected at least 2s')), bad.join('\n'));
  t.true(bad.some((l) => l.includes('links[1].weight: only applies with register')), bad.join('\n'));
});

test('register: a weight above 1000 is refused by the schema, and a weight or advertise address balancers would ignore is refused before registering', async (t) => {
  const bad = problems(`
links:
  - { name: s, role: server, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, key: k, register: etcd://127.0.0.1:2379/x, advertise: 10.0.0.5:7000, weight: 5000 }
`);
  t.true(bad.some((l) => l.includes('links[0].weight: expected an integer from 1 to 1000, got number 5000')), bad.join('\n'));
  const key = await makeKey();
  const server = (register: { advertise: string; weight?: number }) => () =>
    createServer({ listen: '127.0.0.1:0', connect: '127.0.0.1:9', key, register: { url: 'etcd://127.0.0.1:1/x', ...register } });
  t.throws(server({ advertise: '127.0.0.1:7000', weight: 5000 }), { code: 'JUMPER_ERR_INVALID_ARG', message: /weight must be an integer from 1 to 1000/ } as never);
  t.throws(server({ advertise: 'nohost' }), { code: 'JUMPER_ERR_BAD_ADDRESS' } as never);
});

test('a duration beyond what a timer holds (.inf, 3000000 s) is refused, not turned into an immediate timeout', (t) => {
  const bad = problems(`
drain-timeout: .inf
links:
  - { name: f, role: forward, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, connect-timeout: 3000000 }
`);
  t.true(bad.some((l) => l.includes('drain-timeout: expected at most 2147483647 ms (about 24 days), got number Infinity')), bad.join('\n'));
  t.true(bad.some((l) => l.includes('links[0].connect-timeout: expected at most 2147483647 ms')), bad.join('\n'));
  t.is(ok('drain-timeout: 2147483s\nlinks: []\n').drainTimeoutMs, 2_147_483_000);
});

test('max-handshakes applies to a client of either protocol, and to a server of the jumper protocol', (t) => {
  const link = (role: string, protocol: string) =>
    `links:\n  - { name: x, role: ${role}, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, key: k, protocol: ${protocol}, max-handshakes: 64 }\n`;
  t.is(parseConfig(link('client', 'jumper'), 'j.yaml').links[0]!['max-handshakes'], 64);
  t.is(parseConfig(link('client', 'spiped'), 'j.yaml').links[0]!['max-handshakes'], 64);
  t.is(parseConfig(link('server', 'jumper'), 'j.yaml').links[0]!['max-handshakes'], 64);
  t.deepEqual(problems(link('server', 'spiped')), ['j.yaml:2: links[0].max-handshakes: applies to the jumper protocol only (a spiped handshake holds a max-connections slot)']);
  t.regex(problems(link('forward', 'jumper')).join('\n'), /max-handshakes/);
});

test('preconnect takes auto or a whole number', (t) => {
  const link = (value: string) => `links:\n  - { name: c, role: client, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, key: k, preconnect: ${value} }\n`;
  t.is(ok(link('auto')).links[0]!.preconnect, 'auto');
  t.is(ok(link('0')).links[0]!.preconnect, 0);
  t.is(ok(link('3')).links[0]!.preconnect, 3);
  t.deepEqual(problems(link('-1')), ['j.yaml:2: links[0].preconnect: expected auto or an integer from 0 to 1000, got number -1']);
  t.deepEqual(problems(link('1001')), ['j.yaml:2: links[0].preconnect: expected auto or an integer from 0 to 1000, got number 1001']);
  t.deepEqual(problems(link('always')), ['j.yaml:2: links[0].preconnect: expected auto or an integer from 0 to 1000, got string "always"']);
});

test('keys that would be ignored where they stand, and zero timeouts, are refused; deregister-delay is a key', (t) => {
  const bad = problems(`
group: nogroup
links:
  - { name: a, role: forward, listen: 127.0.0.1:7000, connect: 127.0.0.1:80, strategy: random, eject-after: 2 }
  - { name: b, role: forward, listen: 127.0.0.1:7001, connect: [127.0.0.1:80, 127.0.0.1:81], health-interval: 10ms, connect-timeout: 0 }
  - { name: c, role: server, listen: 127.0.0.1:7002, connect: 127.0.0.1:80, key: k, protocol: spiped, max-handshakes: 10, handshake-timeout: 0 }
  - { name: d, role: client, listen: 127.0.0.1:7003, connect: 127.0.0.1:80, key: k, preconnect: 0, preconnect-idle: 1s }
  - { name: e, role: forward, listen: 127.0.0.1:7004, connect: 127.0.0.1:80, deregister-delay: 1s, start: { command: "true", start-timeout: 0 } }
  - { name: f, role: forward, listen: 127.0.0.1:7005, connect: "exec:cat", connect-timeout: 2s, etcd-ca: /ca.pem }
  - { name: g, role: forward, listen: 127.0.0.1:7006, connect: "handoff:/run/h.sock", connect-timeout: 2s }
`);
  const expected = [
    'group: only applies with user',
    'links[0].strategy: only applies when balancing',
    'links[0].eject-after: only applies when balancing',
    'links[1].health-interval: expected at least 100ms',
    'links[1].connect-timeout: expected at least 1ms',
    'links[2].max-handshakes: applies to the jumper protocol only',
    'links[2].handshake-timeout: expected at least 1ms',
    'links[3].preconnect-idle: only applies with preconnect',
    'links[4].deregister-delay: only applies with register',
    'links[4].start.start-timeout: expected at least 1ms',
    'links[5].connect-timeout: exec: and handoff: targets are not dialled',
    'links[5].etcd-ca: only applies with discover or register',
    'links[6].connect-timeout: exec: and handoff: targets are not dialled',
  ];
  for (const e of expected) t.true(bad.some((l) => l.includes(e)), `${e}\n${bad.join('\n')}`);
  t.is(bad.length, expected.length, bad.join('\n'));
  const spec = ok(`
links:
  - { name: s, role: server, listen: 127.0.0.1:7000, connect: [127.0.0.1:80, 127.0.0.1:81], key: k, strategy: random, register: etcd://127.0.0.1:2379/x, advertise: 10.0.0.5:7000, deregister-delay: 250ms }
`);
  t.like(spec.links[0], { strategy: 'random', 'deregister-delay': 250 });
});
