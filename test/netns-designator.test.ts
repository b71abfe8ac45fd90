import test from 'ava';
import { resolveNetns, NETNS_RUN_DIR } from '../src/netns/designator.js';

const INVALID_ARG = { code: 'JUMPER_ERR_INVALID_ARG' };

test('a bare name is a namespace made by `ip netns add`', (t) => {
  t.is(NETNS_RUN_DIR, '/var/run/netns');
  t.is(resolveNetns('provider'), '/var/run/netns/provider');
  t.is(resolveNetns('jt-a1b2c3-consumer'), '/var/run/netns/jt-a1b2c3-consumer');
  t.is(resolveNetns('ns_1.2@x+y'), '/var/run/netns/ns_1.2@x+y');
});

test('an absolute path is used as is', (t) => {
  t.is(resolveNetns('/proc/1234/ns/net'), '/proc/1234/ns/net');
  t.is(resolveNetns('/run/netns/bound'), '/run/netns/bound');
  t.is(resolveNetns('/'), '/');
});

test('pid:N is the namespace of process N', (t) => {
  t.is(resolveNetns('pid:1'), '/proc/1/ns/net');
  t.is(resolveNetns('pid:4194304'), '/proc/4194304/ns/net');
});

test('malformed pid designators are rejected', (t) => {
  for (const bad of ['pid:', 'pid:0', 'pid:-1', 'pid:01', 'pid:12a', 'pid: 5', 'pid:4194305', 'pid:99999999999']) {
    const err = t.throws(() => resolveNetns(bad), INVALID_ARG, bad);
    t.regex(err?.message ?? '', /pid:N/, bad);
  }
});

test('relative paths and odd names are rejected', (t) => {
  for (const bad of ['', 'a/b', './ns', '../ns', '.', '..', '.hidden', '-n', 'with space', 'tab\there', 'x'.repeat(256), 'ns:foo']) {
    t.throws(() => resolveNetns(bad), INVALID_ARG, JSON.stringify(bad));
  }
  t.is(resolveNetns('x'.repeat(255)), `/var/run/netns/${'x'.repeat(255)}`);
});

test('NUL bytes and non-strings are rejected', (t) => {
  t.throws(() => resolveNetns('/proc/1/ns/net\0x'), INVALID_ARG);
  t.throws(() => resolveNetns('name\0'), INVALID_ARG);
  t.throws(() => resolveNetns(undefined as unknown as string), INVALID_ARG);
  t.throws(() => resolveNetns(42 as unknown as string), INVALID_ARG);
});
