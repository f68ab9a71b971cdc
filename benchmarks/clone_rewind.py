"""Benchmark: standby_clone vs plain pg_basebackup, and rewind vs a fresh clone.

Real PostgreSQL servers on loopback (the host's server binaries), a ~1 GiB
pgbench database. Not part of the test suite. Run as root or as a user that
can run the server binaries:

    .venv/bin/python benchmarks/clone_rewind.py            # scale 64, 3 clone repetitions

Writes benchmarks/results/clone_rewind.json and docs/benchmarks/clone_rewind.md.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# Import the modules the way an installed collection is imported.
_COLLECTIONS_ROOT = tempfile.mkdtemp(prefix='pgha-bench-collections-')
os.makedirs(os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha'))
os.symlink(REPO_ROOT, os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha', 'cluster'))
sys.path.insert(0, _COLLECTIONS_ROOT)

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from tests.helpers.pg import PgInstance, find_bin_dir  # noqa: E402

SUPERUSER_PASSWORD = 'bench-Super-pw1'
REPLICATION_PASSWORD = 'bench-Repl-pw2'


def run_module(name, args):
    import importlib
    module = importlib.import_module('ansible_collections.pgha.cluster.plugins.modules.%s' % name)
    module_args = dict(args, _ansible_check_mode=False, _ansible_diff=False,
                       _ansible_remote_tmp=tempfile.gettempdir(), _ansible_keep_remote_files=False)
    out = io.StringIO()
    with patch_module_args(module_args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    result = json.loads(out.getvalue())
    if result.get('failed'):
        raise RuntimeError('%s failed: %s' % (name, result.get('msg')))
    return result


class Bench:
    def __init__(self, workdir, bin_dir, os_user):
        self.workdir, self.bin_dir, self.os_user = workdir, bin_dir, os_user
        self.port = 56100
        self.instances = []

    def instance(self, name):
        self.port += 1
        inst = PgInstance(self.bin_dir, os.path.join(self.workdir, name), self.port, self.os_user,
                          superuser_password=SUPERUSER_PASSWORD, replication_password=REPLICATION_PASSWORD)
        self.instances.append(inst)
        return inst

    def stop_all(self):
        for inst in reversed(self.instances):
            inst.stop(mode='immediate', check=False)


def timed(func):
    start = time.monotonic()
    value = func()
    return time.monotonic() - start, value


def du(path):
    return int(subprocess.run(['du', '-sb', path], capture_output=True, text=True, check=True).stdout.split()[0])


def clone_args(primary, target, **extra):
    args = dict(data_directory=target.data_directory, bin_dir=primary.bin_dir, primary_host='127.0.0.1',
                primary_port=primary.port, replication_user='replicator',
                replication_password=REPLICATION_PASSWORD, application_name=os.path.basename(target.data_directory),
                settings={'port': target.port}, os_user=target.os_user or 'postgres')
    args.update(extra)
    return args


def plain_basebackup(primary, target):
    target.prepare_directory()
    target.run('pg_basebackup', '-D', target.data_directory, '-h', '127.0.0.1', '-p', str(primary.port),
               '-U', 'replicator', '-X', 'stream', '-c', 'fast', '-R', '-w',
               env={'PGPASSWORD': REPLICATION_PASSWORD})


def machine():
    cpu = ''
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as handle:
            cpu = next((line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')), '')
    mem = ''
    with contextlib.suppress(OSError):
        with open('/proc/meminfo') as handle:
            mem = '%.1f GiB' % (int(handle.readline().split()[1]) / 1024 / 1024)
    version = subprocess.run([os.path.join(find_bin_dir(), 'postgres'), '--version'], capture_output=True,
                             text=True, check=False).stdout.strip()
    return dict(host=platform.node(), kernel=platform.release(), cpu=cpu, cpus=os.cpu_count(), memory=mem,
                postgresql=version, python=platform.python_version())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=64, help='pgbench scale (64 = ~1 GiB)')
    parser.add_argument('--repeat', type=int, default=3, help='clone repetitions per method')
    parser.add_argument('--divergence-seconds', type=int, default=10,
                        help='seconds of pgbench writes on the old primary after the failover')
    parser.add_argument('--workdir', default=None, help='where the servers live (default: a new /tmp dir)')
    parser.add_argument('--json', default=os.path.join(REPO_ROOT, 'benchmarks', 'results', 'clone_rewind.json'))
    parser.add_argument('--markdown', default=os.path.join(REPO_ROOT, 'docs', 'benchmarks', 'clone_rewind.md'))
    opts = parser.parse_args()

    # SIGTERM runs the cleanup below too (servers stopped, work directory removed)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    bin_dir = find_bin_dir()
    os_user = 'postgres' if os.geteuid() == 0 else None
    workdir = opts.workdir or tempfile.mkdtemp(prefix='pgha-bench-')
    os.makedirs(workdir, exist_ok=True)
    if os_user:
        os.chmod(workdir, 0o777)
    bench = Bench(workdir, bin_dir, os_user)
    settings = {'shared_buffers': '256MB', 'max_wal_size': '4GB', 'wal_keep_size': '2GB'}
    results = dict(date=subprocess.run(['date'], capture_output=True, text=True, check=True).stdout.strip(),
                   machine=machine(), scale=opts.scale, repeat=opts.repeat, server_settings=settings,
                   load_average_at_start=[round(x, 2) for x in os.getloadavg()],
                   command='.venv/bin/python benchmarks/clone_rewind.py --scale %d --repeat %d'
                           % (opts.scale, opts.repeat))
    try:
        primary = bench.instance('primary')
        primary.initdb(settings=settings)
        primary.start()
        primary.create_replication_user()
        print('pgbench -i -s %d ...' % opts.scale, flush=True)
        init_s, dummy = timed(lambda: primary.run('pgbench', '-i', '-q', '-s', str(opts.scale), '-h', '127.0.0.1',
                                                  '-p', str(primary.port), '-U', 'postgres', 'postgres',
                                                  env={'PGPASSWORD': SUPERUSER_PASSWORD}))
        primary.sql('CHECKPOINT')
        results['database_bytes'] = primary.scalar("SELECT pg_database_size('postgres')")
        results['pgbench_init_seconds'] = round(init_s, 2)
        print('database: %.2f GiB (pgbench -i: %.1fs)' % (results['database_bytes'] / 2 ** 30, init_s), flush=True)

        # -- clone: standby_clone vs plain pg_basebackup, alternated ------------
        module_times, plain_times, module_bytes = [], [], 0
        for rep in range(opts.repeat):
            target = bench.instance('clone_module_%d' % rep)
            seconds, result = timed(lambda: run_module('standby_clone', clone_args(primary, target)))
            module_times.append(seconds)
            module_bytes = result['bytes_copied']
            print('standby_clone #%d: %.2fs (module duration %.2fs)' % (rep, seconds, result['duration']), flush=True)
            shutil.rmtree(target.data_directory)
            target = bench.instance('clone_plain_%d' % rep)
            seconds, dummy = timed(lambda: plain_basebackup(primary, target))
            plain_times.append(seconds)
            print('pg_basebackup  #%d: %.2fs' % (rep, seconds), flush=True)
            shutil.rmtree(target.data_directory)
        results['clone'] = dict(
            standby_clone_seconds=[round(x, 2) for x in module_times],
            pg_basebackup_seconds=[round(x, 2) for x in plain_times],
            standby_clone_median=round(statistics.median(module_times), 2),
            pg_basebackup_median=round(statistics.median(plain_times), 2),
            bytes_copied=module_bytes)
        results['clone']['overhead_ratio'] = round(results['clone']['standby_clone_median']
                                                   / results['clone']['pg_basebackup_median'], 3)

        # -- rejoin: failover, divergence, kill -9, then rewind vs re-clone ----
        new_primary = bench.instance('new_primary')
        run_module('standby_clone', clone_args(primary, new_primary, start=True))
        new_primary.scalar('SELECT pg_promote()')
        print('promoted; %ds of writes on the old primary (divergence) ...' % opts.divergence_seconds, flush=True)
        lsn_before = primary.scalar('SELECT pg_current_wal_lsn()::text')
        primary.run('pgbench', '-n', '-T', str(opts.divergence_seconds), '-c', '2', '-h', '127.0.0.1',
                    '-p', str(primary.port), '-U', 'postgres', 'postgres', env={'PGPASSWORD': SUPERUSER_PASSWORD})
        diverged = primary.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn_before,))
        primary.kill9()
        time.sleep(3)
        # an identical copy of the crashed old primary, for the re-clone measurement
        copy = bench.instance('old_primary_copy')
        subprocess.run(['cp', '-a', primary.data_directory, copy.data_directory], check=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(copy.data_directory, 'postmaster.pid'))

        rewind_args = dict(data_directory=primary.data_directory, bin_dir=bin_dir, source_host='127.0.0.1',
                           source_port=new_primary.port, source_password=SUPERUSER_PASSWORD,
                           replication_password=REPLICATION_PASSWORD, application_name='old_primary',
                           settings={'port': primary.port}, os_user=os_user or 'postgres')
        rewind_s, rewind_result = timed(lambda: run_module('rewind', rewind_args))
        print('rewind: %.2fs (method %s, crash recovery %s)'
              % (rewind_s, rewind_result['method'], rewind_result['crash_recovery']), flush=True)
        reclone_s, reclone_result = timed(
            lambda: run_module('standby_clone', clone_args(new_primary, copy, force=True)))
        print('re-clone: %.2fs' % reclone_s, flush=True)
        # the rewound node really follows the new primary
        primary.start()
        new_primary.sql('CREATE TABLE bench_marker (id int)')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if primary.scalar("SELECT to_regclass('bench_marker') IS NOT NULL"):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError('the rewound node does not follow the new primary')
        results['rejoin'] = dict(
            diverged_wal_bytes=int(diverged), divergence_seconds=opts.divergence_seconds,
            rewind_seconds=round(rewind_s, 2), rewind_method=rewind_result['method'],
            rewind_crash_recovery=rewind_result['crash_recovery'],
            reclone_seconds=round(reclone_s, 2), reclone_bytes_copied=reclone_result['bytes_copied'],
            speedup=round(reclone_s / rewind_s, 2))
    finally:
        bench.stop_all()
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(_COLLECTIONS_ROOT, ignore_errors=True)

    results['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(os.path.dirname(opts.json), exist_ok=True)
    with open(opts.json, 'w') as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
        handle.write('\n')
    os.makedirs(os.path.dirname(opts.markdown), exist_ok=True)
    with open(opts.markdown, 'w') as handle:
        handle.write(markdown(results))
    print(json.dumps(results, indent=2, sort_keys=True))


def markdown(r):
    m, c, j = r['machine'], r['clone'], r['rejoin']
    gib = r['database_bytes'] / 2 ** 30
    return '''# Clone and rejoin benchmark

Measured on {date} on `{host}` ({cpus} vCPU {cpu}, {memory} RAM, Linux {kernel}), {pg}.
Servers on loopback in one machine: no network cost, so the clone times are disk/CPU bound.
The machine was shared with other work (load average {load1} at the start, {load2} at the end), so single runs
are noisy: read the medians.

Reproduce (as root, from the repository root):

```
{command}
```

Raw numbers: [`benchmarks/results/clone_rewind.json`](../../benchmarks/results/clone_rewind.json).

## Clone a {gib:.2f} GiB database (pgbench scale {scale})

| method | runs (s) | median (s) |
|---|---|---|
| `pgha.cluster.standby_clone` | {sc_runs} | {sc_med} |
| plain `pg_basebackup -X stream -c fast -R` | {bb_runs} | {bb_med} |

standby_clone / pg_basebackup = **{ratio}** (the module adds the primary checks over the replication
protocol, the copy into a temporary sibling directory and the rename, the standby configuration and the
size count of {copied:.2f} GiB).

## Rejoin the old primary after a failover

The standby was promoted, the old primary kept taking pgbench writes for {div_s} s ({div_mb:.1f} MiB of
diverging WAL) and was then killed with `kill -9`.

| method | seconds | copied |
|---|---|---|
| `pgha.cluster.rewind` (crash recovery + `pg_rewind`, method `{method}`) | {rw} | changed blocks only |
| fresh clone (`standby_clone force=true`, old directory moved aside) | {rc} | {rc_gib:.2f} GiB |

Rewind is **{speedup}x** faster than a re-clone here. Its cost grows with the WAL written since the
divergence, a clone's with the database size.

Notes: the test servers run with `fsync = off` (harness default), `shared_buffers = {sb}`;
`pg_basebackup` and `pg_rewind` still sync the files they write.
'''.format(date=r['date'], host=m['host'], cpus=m['cpus'], cpu=m['cpu'], memory=m['memory'], kernel=m['kernel'],
           pg=m['postgresql'], command=r['command'], gib=gib, scale=r['scale'],
           sc_runs=', '.join('%.2f' % x for x in c['standby_clone_seconds']), sc_med=c['standby_clone_median'],
           bb_runs=', '.join('%.2f' % x for x in c['pg_basebackup_seconds']), bb_med=c['pg_basebackup_median'],
           ratio=c['overhead_ratio'], copied=c['bytes_copied'] / 2 ** 30, div_s=j['divergence_seconds'],
           div_mb=j['diverged_wal_bytes'] / 2 ** 20, method=j['rewind_method'], rw=j['rewind_seconds'],
           rc=j['reclone_seconds'], rc_gib=j['reclone_bytes_copied'] / 2 ** 30, speedup=j['speedup'],
           sb=r['server_settings']['shared_buffers'],
           load1=' / '.join('%.2f' % x for x in r['load_average_at_start']),
           load2=' / '.join('%.2f' % x for x in r['load_average_at_end']))


if __name__ == '__main__':
    main()
