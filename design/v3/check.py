#!/usr/bin/env python3
"""Checks the protocol v3 scripts (the Lua in Sources/Kiln/Store) against a real redis-server
and measures their cost.

Usage: python3 design/v3/check.py   (starts its own redis-server on a free loopback port)
"""
import glob, os, re, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ['enqueue', 'fetch', 'finish', 'extend', 'release', 'cancel', 'reap', 'sweep', 'retry_dead', 'get']


class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.f = self.s.makefile('rb')

    def send(self, *cmds):
        out = bytearray()
        for args in cmds:
            out += b'*%d\r\n' % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b'$%d\r\n%s\r\n' % (len(a), a)
        self.s.sendall(out)
        return [self.read() for _ in cmds]

    def __call__(self, *args):
        r = self.send(args)[0]
        if isinstance(r, Exception):
            raise r
        return r

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t == b'+': return rest.decode()
        if t == b'-': return RuntimeError(rest.decode())
        if t == b':': return int(rest)
        if t == b'$':
            n = int(rest)
            if n < 0: return None
            data = self.f.read(n + 2)[:-2]
            return data.decode(errors='replace')
        if t == b'*':
            n = int(rest)
            if n < 0: return None
            return [self.read() for _ in range(n)]
        raise RuntimeError('bad reply %r' % line)


def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


SWIFT = os.path.join(HERE, '..', '..', 'Sources', 'Kiln', 'Store')


def lua_of(literal):
    """The text of a Swift multi-line string literal (indented 4 spaces, backslashes doubled)."""
    return '\n'.join(l[4:] for l in literal.split('\n')).replace('\\\\', '\\') + '\n'


def scripts():
    """Every v3 script's full text, read from the Swift sources (the only copy of the Lua)."""
    prelude = re.search(r'static let prelude = """\n(.*?)\n    """', open(os.path.join(SWIFT, 'KilnScripts.swift')).read(), re.S)
    out = {}
    for path in glob.glob(os.path.join(SWIFT, 'KilnStore+*.swift')):
        for name, body in re.findall(r'Script\(name: "(\w+)", body: """\n(.*?)\n    """\)', open(path).read(), re.S):
            out[name] = lua_of(prelude.group(1)).rstrip('\n') + '\n' + lua_of(body)
    missing = set(NAMES) - set(out)
    if missing:
        raise SystemExit('check.py: no Swift script named %s in %s' % (sorted(missing), SWIFT))
    return out


class Kiln:
    def __init__(self, r, prefix='kiln', queue='default'):
        self.r, self.Q = r, '%s:{%s}:' % (prefix, queue)
        self.sha = {n: r('SCRIPT', 'LOAD', text) for n, text in scripts().items()}

    def k(self, *names):
        return [self.Q + n for n in names]

    def call(self, name, keys, *args):
        return self.r('EVALSHA', self.sha[name], len(keys), *keys, self.Q, *args)

    def enqueue(self, now, jobs):
        flat = []
        for j in jobs:
            flat += [j['id'], j.get('type', 'noop'), j.get('kind', 'io'), j.get('payload', 'null'),
                     j.get('max_attempts', 4), j.get('timeout_ms', 300000), j.get('ttl', 86400000)]
        return self.call('enqueue', self.k('jobs', 'ready:io', 'ready:cpu'), now, *flat)

    def fetch(self, now, count, kind='io', lease=30000, margin=4000):
        out = self.call('fetch', self.k('ready:' + kind, 'jobs', 'leases', 'expiry'), now, count, 'w1:1', lease, margin)
        return [out[i:i + 10] for i in range(0, len(out), 10)]

    def finish(self, now, attempts):
        flat = []
        for a in attempts:
            flat += [a[0], a[1], a[2], a[3] if len(a) > 3 else 'null', a[4] if len(a) > 4 else '',
                     a[5] if len(a) > 5 else '', a[6] if len(a) > 6 else -1]
        return self.call('finish', self.k('jobs', 'leases', 'later', 'dead', 'expiry'), now, *flat)

    def get(self, *ids):
        out = self.call('get', self.k('jobs'), *ids)
        return [dict(zip(f[::2], f[1::2])) for f in out]

    def reap(self, now, limit=500, reclaim=1):
        return self.call('reap', self.k('jobs', 'leases', 'later', 'ready:io', 'ready:cpu', 'dead', 'expiry', 'revived'),
                         now, limit, reclaim, 10000, 604800000)

    def cancel(self, now, *ids):
        return self.call('cancel', self.k('jobs', 'later', 'ready:io', 'ready:cpu', 'expiry'), now, 'kiln:cancel', *ids)

    def release(self, now, *triples):
        flat = [x for t in triples for x in t]
        return self.call('release', self.k('jobs', 'leases', 'ready:io', 'ready:cpu', 'expiry'), now, *flat)

    def extend(self, deadline, lease, *pairs):
        flat = [x for p in pairs for x in p]
        return self.call('extend', self.k('jobs', 'leases'), deadline, lease, *flat)

    def retry_dead(self, now, id):
        return self.call('retry_dead', self.k('jobs', 'dead', 'ready:io', 'ready:cpu', 'revived'), now, id)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)
    print('ok  ', what)


def scenarios(r, k):
    now = int(time.time() * 1000)
    sub = Redis(r.port); sub.send(['SUBSCRIBE', k.Q + 'done'])
    expect(k.enqueue(now, [{'id': 'a'}, {'id': 'b', 'payload': '{"n":12345678901234567890}'}]) == [0, 0, 0], 'enqueue two')
    expect(k.enqueue(now, [{'id': 'a'}, {'id': 'b', 'payload': '{"n":12345678901234567890}'}]) == [0, 0, 1], 'retried enqueue recognises its own write')
    expect(k.enqueue(now + 1, [{'id': 'c'}, {'id': 'a'}]) == [2, 1, 0], 'duplicate id refused, nothing written')
    expect(r('HEXISTS', k.Q + 'jobs', 'c') == 0, 'c not written')
    try:
        k.enqueue(now, [{'id': 'x', 'max_attempts': 0}]); expect(False, 'range check')
    except RuntimeError as err:
        expect('job 1: max_attempts' in str(err), 'range check answers ' + str(err))
    try:
        k.enqueue(now, [{'id': 'y'}, {'id': 'y'}]); expect(False, 'repeat check')
    except RuntimeError as err:
        expect('repeats job 1' in str(err), 'repeated id in one call refused')
    got = k.fetch(now, 10)
    expect([g[0] for g in got] == ['a', 'b'] and got[0][1] == 1, 'fetch leases both in order, token 1')
    expect(got[1][4] == '{"n":12345678901234567890}', 'payload comes back byte for byte')
    expect(r('ZCARD', k.Q + 'leases') == 2, 'two leases')
    st = k.finish(now + 5, [['a', 1, 'succeeded', '{"ok":true}'], ['b', 1, 'failed', '', 'error', 'boom', 1000]])
    expect(st == ['succeeded', 'retrying'], 'finish: succeeded and retrying')
    st = k.finish(now + 5, [['a', 1, 'succeeded', '{"ok":true}'], ['b', 1, 'failed', '', 'error', 'boom', 1000]])
    expect(st == ['succeeded', 'retrying'], 'retried finish recognises its own write')
    expect(k.finish(now + 9, [['a', 1, 'failed', '', 'error', 'late', -1]]) == ['stale'], 'late write of another call is stale')
    msg = sub.read()
    expect(msg[0] == 'message' and msg[2] == 'a', 'one done message names a (%r)' % (msg,))
    rec = k.get('a', 'nope')
    expect(rec[0]['status'] == 'succeeded' and rec[0]['result'] == '{"ok":true}' and rec[1] == {}, 'get reads a, nothing for nope')
    expect(k.reap(now + 500)[1] == 0, 'retry not due yet')
    expect(k.reap(now + 1006)[1] == 1, 'retry promoted when due')
    got = k.fetch(now + 1010, 10)
    expect(got[0][0] == 'b' and got[0][1] == 2 and got[0][2] == 2, 'b runs again with token 2, attempt 2')
    expect(k.finish(now + 1020, [['b', 1, 'succeeded']]) == ['stale'], 'old token refused (fencing)')
    expect(k.extend(now + 30000, 30000, ('b', 2), ('a', 1)) == ['a', 'lost'], 'extend renews b, a is lost')
    expect(k.cancel(now + 1030, 'b', 'a', 'zzz') == ['running', 'finished:succeeded', 'missing'], 'cancel answers')
    expect(k.extend(now + 30000, 30000, ('b', 2)) == ['b', 'cancel'], 'extend tells the worker to stop b')
    r('ZREM', k.Q + 'leases', 'b')
    k.extend(now + 30000, 30000, ('b', 2))
    expect(r('ZSCORE', k.Q + 'leases', 'b') is not None, 'extend restores a missing lease entry')
    r('ZREM', k.Q + 'leases', 'b')
    cursor, found = '0', 0
    while True:
        nxt, f = k.call('sweep', k.k('jobs', 'leases'), now + 40000, cursor, 100)
        found += f; cursor = nxt
        if cursor == '0': break
    expect(found == 1 and r('ZSCORE', k.Q + 'leases', 'b') is not None, 'sweep (HSCAN inside the script) finds b without a lease')
    for bad, what in [(lambda: k.fetch('x', 10), 'fetch with a bad now'), (lambda: k.fetch(now, 100000), 'fetch with count 100000'),
                      (lambda: k.finish(now, [['b', 2, 'failed'], ['b', 2, 'failed']]), 'finish naming b twice'),
                      (lambda: k.cancel('x', 'b'), 'cancel with a bad now')]:
        before = r('LLEN', k.Q + 'ready:io'), r('HGET', k.Q + 'jobs', 'b')
        try:
            bad(); expect(False, what + ' refused')
        except RuntimeError as err:
            expect('ERR kiln' in str(err) and (r('LLEN', k.Q + 'ready:io'), r('HGET', k.Q + 'jobs', 'b')) == before, what + ' refused, nothing written: ' + str(err))
    expect(k.finish(now + 1040, [['b', 2, 'failed', '', 'error', 'x', 10]]) == ['cancelled'], 'cancelled wins over retry')
    # Lease reclaim and exhaustion.
    k.enqueue(now, [{'id': 'l1', 'max_attempts': 2}, {'id': 'l2', 'max_attempts': 1}, {'id': 'c1', 'kind': 'cpu'}])
    got = k.fetch(now, 10, lease=100)
    expect(sorted(g[0] for g in got) == ['l1', 'l2'], 'leased l1 l2')
    rc = k.reap(int(time.time() * 1000) + 400000)
    expect(rc[0] == 2, 'two leases reclaimed %r' % (rc,))
    rec = k.get('l1', 'l2')
    expect(rec[0]['status'] == 'queued' and rec[0]['error_type'] == 'worker_lost', 'l1 queued again (worker_lost)')
    expect(rec[1]['status'] == 'failed', 'l2 failed: no attempts left')
    rel = k.release(now, (k.fetch(now, 10, kind='cpu')[0][0], 1, 'io'))
    expect(rel == ['released'], 'release hands c1 back')
    expect(k.get('c1')[0]['attempts'] == '0' and r('LINDEX', k.Q + 'ready:io', 0) == 'c1', 'attempt not counted, runs next on io')
    # Dead letters and retry_dead.
    k.enqueue(now, [{'id': 'd', 'max_attempts': 2}])
    while True:
        g = [x for x in k.fetch(now, 50) if x[0] == 'd']
        if g: break
    k.finish(now, [['d', g[0][1], 'failed', '', 'error', 'e1', 0]]); k.reap(now + 1, reclaim=0)
    g = [x for x in k.fetch(now + 2, 50) if x[0] == 'd']
    expect(k.finish(now + 3, [['d', g[0][1], 'failed', '', 'error', 'e2', 0]]) == ['dead'], 'dead after max attempts')
    expect(r('ZSCORE', k.Q + 'dead', 'd') is not None, 'in dead set')
    expect(k.retry_dead(now + 4, 'd') == 'queued' and r('ZSCORE', k.Q + 'dead', 'd') is None, 'retry_dead requeues')
    # A dead job trimmed by the count cap, its id reused by a new job: the old expiry member must not delete it.
    k.enqueue(now, [{'id': 'z', 'max_attempts': 2, 'ttl': 1000}])
    for attempt in (1, 2):
        g = [x for x in k.fetch(now, 50) if x[0] == 'z']
        k.finish(now, [['z', g[0][1], 'failed', '', 'error', 'e', 0]]); k.reap(now + 1, reclaim=0)
    expect(k.get('z')[0].get('status') == 'dead', 'z dead')
    k.call('reap', k.k('jobs', 'leases', 'later', 'ready:io', 'ready:cpu', 'dead', 'expiry', 'revived'), now + 2, 500, 0, 0, 604800000)
    expect(k.get('z')[0] == {}, 'z trimmed from the dead set (cap 0), record deleted')
    expect(k.enqueue(now + 3, [{'id': 'z'}]) == [0, 0, 0], 'id z reused by a new job')
    k.reap(now + 5000, reclaim=0)
    expect(k.get('z')[0].get('status') == 'queued', 'the new z survives the old expiry member')
    # Malformed record.
    r('HSET', k.Q + 'jobs', 'm', 'garbage'); r('RPUSH', k.Q + 'ready:io', 'm')
    k.fetch(now, 50)
    expect(k.get('m')[0]['status'] == 'failed', 'garbage record finalized failed, never run')
    # Expiry.
    k.enqueue(now, [{'id': 't1', 'ttl': 1000}])
    g = [x for x in k.fetch(now, 50) if x[0] == 't1']
    k.finish(now, [['t1', g[0][1], 'succeeded']])
    k.reap(now + 900)
    expect(r('HEXISTS', k.Q + 'jobs', 't1') == 1, 't1 kept before its second')
    out = k.reap(now + 3000)
    expect(r('HEXISTS', k.Q + 'jobs', 't1') == 0 and out[4] >= 1, 'result expired by the index (%r)' % (out,))
    # A job retried from the dead-letter set is not deleted when its old expiry member comes due.
    k.enqueue(now, [{'id': 'rv', 'ttl': 1000, 'max_attempts': 1}])
    g = [x for x in k.fetch(now, 50) if x[0] == 'rv']
    expect(k.finish(now, [['rv', g[0][1], 'failed', '', 'error', 'e', -1]]) == ['failed'], 'rv failed')
    expect(k.retry_dead(now + 10, 'rv') == 'queued', 'rv retried')
    k.reap(now + 5000, reclaim=0)
    expect(k.get('rv')[0].get('status') == 'queued', 'revived job survives its old expiry member')
    g = [x for x in k.fetch(now + 6000, 50) if x[0] == 'rv']
    k.finish(now + 6000, [['rv', g[0][1], 'succeeded']])
    k.reap(now + 6500, reclaim=0)
    expect(k.get('rv')[0].get('status') == 'succeeded', 'kept until its new expiry')
    k.reap(now + 8000, reclaim=0)
    expect(k.get('rv')[0] == {} and r('SISMEMBER', k.Q + 'revived', 'rv') == 0, 'deleted at its new expiry, no longer listed as revived')


def measure(r, k, n=100000, batch=100):
    r('FLUSHALL'); r('CONFIG', 'RESETSTAT')
    k.__init__(r)
    mem0 = int([l for l in r('INFO', 'memory').split('\r\n') if l.startswith('used_memory:')][0].split(':')[1])
    now = int(time.time() * 1000)
    t0 = time.time()
    for b in range(0, n, 500):
        k.enqueue(now, [{'id': '01JD%022d' % i} for i in range(b, b + 500)])
    t1 = time.time()
    while True:
        got = k.fetch(now, batch)
        if not got: break
        k.finish(now, [[g[0], g[1], 'succeeded'] for g in got])
    t2 = time.time()
    stats = r('INFO', 'commandstats')
    calls = usec = 0
    lines = []
    for l in stats.split('\r\n'):
        if l.startswith('cmdstat_'):
            name, rest = l.split(':', 1)
            kv = dict(x.split('=') for x in rest.split(','))
            if name in ('cmdstat_script', 'cmdstat_info', 'cmdstat_flushall', 'cmdstat_config'): continue
            c = int(kv['calls'])
            if name != 'cmdstat_evalsha':
                calls += c
            else:
                usec = int(kv['usec'])
                calls += c
            lines.append('%s calls=%s usec=%s' % (name[8:], kv['calls'], kv['usec']))
    mem1 = int([l for l in r('INFO', 'memory').split('\r\n') if l.startswith('used_memory:')][0].split(':')[1])
    print('\n'.join(lines))
    print('jobs %d: enqueue %.0f jobs/s, fetch+finish (batch %d, one client, sequential) %.0f jobs/s' % (n, n / (t1 - t0), batch, n / (t2 - t1)))
    print('Redis commands per job (EVALSHA + commands inside): %.3f' % (calls / n))
    print('Redis CPU per job (EVALSHA usec, all scripts): %.2f us' % (usec / n))
    print('memory per finished job, result kept: %.0f bytes' % ((mem1 - mem0) / n))


def main():
    port = free_port()
    d = tempfile.mkdtemp(prefix='kiln-v3-')
    srv = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', d],
                           stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                r = Redis(port); r.port = port; r('PING'); break
            except OSError:
                if time.time() > deadline: raise
                time.sleep(0.05)
        k = Kiln(r)
        scenarios(r, k)
        measure(r, k, n=int(os.environ.get('N', '100000')), batch=int(os.environ.get('BATCH', '100')))
    finally:
        srv.terminate(); srv.wait()


if __name__ == '__main__':
    main()
