"""Patroni failover benchmark: write outage and lost writes, stock vs tuned settings.

Runs against a Patroni cluster deployed by the patroni role on podman lab
containers (for example the Molecule scenario kept up with
`molecule converge -s patroni`). For each settings profile (changed through
Patroni's REST API, PATCH /config) and each fault (host crash = `podman kill`
of the leader's container, postmaster kill -9, planned switchover), it runs
the pgha.cluster write probe (plugins/module_utils/probe.py) from this
machine through the HAProxy multi-host DSN and injects the fault. Every run
stops by itself; the cluster is brought back healthy before the next one.

    .venv/bin/python benchmarks/patroni_failover.py \
        --secrets-dir <molecule ephemeral dir>/secrets --runs 3

Results: benchmarks/results/patroni_failover.json and
docs/benchmarks/patroni_failover.md.
"""
import argparse
import base64
import datetime
import json
import os
import platform
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS_ROOT = tempfile.mkdtemp(prefix='pgha-bench-collections-')
os.makedirs(os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha'))
os.symlink(REPO_ROOT, os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha', 'cluster'))
sys.path.insert(0, _COLLECTIONS_ROOT)

from ansible_collections.pgha.cluster.plugins.module_utils.probe import ProbeConfig, WriteProbe  # noqa: E402

PROFILES = {
    # Patroni's own defaults (https://patroni.readthedocs.io/en/latest/dynamic_configuration.html).
    'stock': {'ttl': 30, 'loop_wait': 10, 'retry_timeout': 10, 'master_start_timeout': 300},
    # The patroni role's defaults (roles/patroni/defaults/main.yml).
    'tuned': {'ttl': 6, 'loop_wait': 1, 'retry_timeout': 2, 'master_start_timeout': 30},
}
FAULTS = ('host_crash', 'postgres_kill', 'switchover')
STEADY = 4.0


def log(msg):
    print(time.strftime('%H:%M:%S'), msg, flush=True)


class Cluster:
    def __init__(self, containers, api_user, api_password, api_ca=None):
        self.containers = containers
        self.auth = 'Basic ' + base64.b64encode(('%s:%s' % (api_user, api_password)).encode()).decode()
        self.ips = {c: self._ip(c) for c in containers}
        # The REST API speaks HTTPS by default (patroni_restapi_tls): verified against the role's CA.
        self.scheme = 'https' if api_ca else 'http'
        self.ssl_context = ssl.create_default_context(cafile=api_ca) if api_ca else None

    def create_probe_account(self, user='pgha_bench'):
        """An ordinary account for the probe: HAProxy never carries the superuser (pg_hba)."""
        password = secrets.token_hex(16)
        leader = self.leader()['name']
        sql = ("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{u}') THEN CREATE ROLE {u} LOGIN; END IF; "
               "END$$;\nALTER ROLE {u} PASSWORD '{p}';\n"
               "SELECT 'CREATE DATABASE {u} OWNER {u}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{u}')"
               "\\gexec\n").format(u=user, p=password)
        subprocess.run(['podman', 'exec', '-i', leader, 'runuser', '-u', 'postgres', '--', 'psql', '-XAtq',
                        '-v', 'ON_ERROR_STOP=1'], input=sql, text=True, check=True, capture_output=True)
        return user, password

    @staticmethod
    def _ip(container):
        out = subprocess.run(['podman', 'inspect', container, '--format',
                              '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def api(self, node, path, method='GET', body=None, timeout=5):
        req = urllib.request.Request('%s://%s:8008%s' % (self.scheme, self.ips[node], path), method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json', 'Authorization': self.auth})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context) as resp:
                data = resp.read()
                return resp.status, (json.loads(data) if data[:1] in (b'{', b'[') else data.decode())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors='replace')

    def members(self, exclude=()):
        for node in self.containers:
            if node in exclude:
                continue
            try:
                status, data = self.api(node, '/cluster', timeout=2)
            except OSError:
                continue
            if status == 200:
                return data['members']
        return []

    def leader(self, exclude=()):
        for m in self.members(exclude):
            if m['role'] == 'leader' and m['state'] == 'running':
                return m
        return None

    def healthy(self):
        members = self.members()
        leaders = [m for m in members if m['role'] == 'leader' and m['state'] == 'running']
        if len(members) != len(self.containers) or len(leaders) != 1:
            return False
        tl = leaders[0].get('timeline')
        return all(m['state'] == 'running' and m.get('timeline') == tl and not m.get('pending_restart')
                   for m in members)

    def wait_healthy(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return True
            time.sleep(0.5)
        raise RuntimeError('cluster not healthy after %s s: %s' % (timeout, self.members()))

    def apply_profile(self, settings):
        status, current = self.api(self.containers[0], '/config')
        if all(current.get(k) == v for k, v in settings.items()):
            return
        status, body = self.api(self.containers[0], '/config', method='PATCH', body=settings)
        if status != 200:
            raise RuntimeError('PATCH /config failed: %s %s' % (status, body))
        # Members pick the change up in their next loop (old loop_wait at most).
        time.sleep(current.get('loop_wait', 10) + 2)


def run_one(cluster, account, profile, fault, run, duration):
    cluster.wait_healthy()
    leader = cluster.leader()
    victim = leader['name']
    ips = [cluster.ips[c] for c in cluster.containers]
    marker = os.path.join(tempfile.mkdtemp(prefix='pgha-patroni-bench-'), 'fault')
    cfg = ProbeConfig(
        dsn='host=%s port=5000 user=%s dbname=%s target_session_attrs=read-write' % (','.join(ips), account[0], account[0]),
        password=account[1], duration=duration, interval_ms=10, connect_timeout=1, write_timeout=2,
        run_id='patroni-%s-%s-%d-%d' % (profile, fault, run, int(time.time())),
        fault_marker_file=marker,
        # Read-back through each node's HAProxy primary port.
        verify_dsns=['host=%s port=5000 user=%s dbname=%s' % (ip, account[0], account[0]) for ip in ips])
    probe = WriteProbe(cfg)
    holder = {}
    thread = threading.Thread(target=lambda: holder.update(result=probe.run()), daemon=True)
    thread.start()
    time.sleep(STEADY)
    with open(marker, 'w') as fh:
        fh.write('%.6f\n' % time.time())
    fault_mono = time.monotonic()
    if fault == 'host_crash':
        subprocess.run(['podman', 'kill', victim], check=True, capture_output=True)
    elif fault == 'postgres_kill':
        subprocess.run(['podman', 'exec', victim, 'pkill', '-KILL', '-o', '-u', 'postgres', '-x', 'postgres'],
                       check=True, capture_output=True)
    else:
        candidate = sorted(c for c in cluster.containers if c != victim)[0]
        status, body = cluster.api(victim, '/switchover', method='POST',
                                   body={'leader': victim, 'candidate': candidate}, timeout=60)
        if status != 200:
            raise RuntimeError('switchover failed: %s %s' % (status, body))
    new_leader, leader_seen = None, None
    while time.monotonic() - fault_mono < duration:
        lead = cluster.leader(exclude=(victim,) if fault == 'host_crash' else ())
        if lead and (lead['name'] != victim or fault == 'postgres_kill') and lead.get('timeline', 0) >= leader.get('timeline', 0):
            if fault != 'postgres_kill' or lead.get('timeline') is not None:
                new_leader, leader_seen = lead['name'], round(time.monotonic() - fault_mono, 2)
                break
        time.sleep(0.2)
    thread.join(duration + 60)
    result = holder.get('result') or {}
    rejoin = None
    if fault == 'host_crash':
        subprocess.run(['podman', 'start', victim], check=True, capture_output=True)
        start = time.monotonic()
        cluster.wait_healthy(timeout=300)
        rejoin = round(time.monotonic() - start, 1)
    else:
        cluster.wait_healthy()
    row = dict(profile=profile, fault=fault, run=run, old_leader=victim, new_leader=new_leader,
               leader_seen_after=leader_seen, max_gap=result.get('max_gap'),
               fault_to_first_write=result.get('fault_to_first_write'), lost_count=result.get('lost_count'),
               acked=result.get('acked'), errors=result.get('errors'), rejoin_seconds=rejoin,
               warnings=probe.warnings if hasattr(probe, 'warnings') else None)
    log('%s %s run %d: max gap %s s, lost %s, new leader %s (seen %s s), rejoin %s s' % (
        profile, fault, run, row['max_gap'], row['lost_count'], new_leader, leader_seen, rejoin))
    return row


def summarize(rows):
    out = []
    for profile in PROFILES:
        for fault in FAULTS:
            sel = [r for r in rows if r['profile'] == profile and r['fault'] == fault and r['max_gap'] is not None]
            if not sel:
                continue
            gaps = [r['max_gap'] for r in sel]
            lost = [r['lost_count'] or 0 for r in sel]
            out.append(dict(profile=profile, fault=fault, runs=len(sel), median_outage=round(statistics.median(gaps), 2),
                            worst_outage=round(max(gaps), 2), best_outage=round(min(gaps), 2),
                            lost_total=sum(lost), lost_worst=max(lost)))
    return out


def render(doc):
    lines = ['# Patroni failover benchmark', '',
             'Measured by `benchmarks/patroni_failover.py` on %s (%s, %s CPUs, load average at start %s), %s.' % (
                 doc['machine']['node'], doc['machine']['platform'], doc['machine']['cpus'],
                 doc['machine']['loadavg'], doc['date']),
             '',
             'Cluster: 3 podman systemd containers (Molecule scenario `patroni`), Patroni %s + etcd 3.4 (TLS), '
             'PostgreSQL 15, asynchronous replication, HAProxy on every node checking `/primary` '
             '(inter 1s, fastinter/downinter 500ms, fall 2, rise 1, on-marked-down shutdown-sessions).' % doc['patroni_version'],
             '',
             'Writer: pgha.cluster write probe on the controller, one INSERT every 10 ms through '
             '`host=<3 nodes> port=5000 target_session_attrs=read-write`, connect_timeout 1 s, write_timeout 2 s. '
             'Outage = longest gap between two acknowledged writes; lost = acknowledged ids missing on the final leader.',
             '',
             '| settings | fault | runs | median outage (s) | worst (s) | best (s) | lost acknowledged writes (total / worst run) |',
             '|---|---|---|---|---|---|---|']
    for s in doc['summary']:
        p = PROFILES[s['profile']]
        label = '%s (ttl %s, loop_wait %s, retry_timeout %s, master_start_timeout %s)' % (
            s['profile'], p['ttl'], p['loop_wait'], p['retry_timeout'], p['master_start_timeout'])
        lines.append('| %s | %s | %d | %.2f | %.2f | %.2f | %d / %d |' % (
            label, s['fault'], s['runs'], s['median_outage'], s['worst_outage'], s['best_outage'],
            s['lost_total'], s['lost_worst']))
    lines += ['', 'Every run:', '', '| settings | fault | run | outage (s) | lost | old leader -> new | rejoin of the crashed host (s) |',
              '|---|---|---|---|---|---|---|']
    for r in doc['runs']:
        lines.append('| %s | %s | %d | %s | %s | %s -> %s | %s |' % (
            r['profile'], r['fault'], r['run'], r['max_gap'], r['lost_count'], r['old_leader'], r['new_leader'],
            '' if r['rejoin_seconds'] is None else r['rejoin_seconds']))
    lines += ['', 'Reproduce:', '', '```',
              'cd /work/main && source .venv/bin/activate && export ANSIBLE_COLLECTIONS_PATH=$PWD/.cache/collections',
              'molecule converge -s patroni',
              'python benchmarks/patroni_failover.py --secrets-dir <molecule ephemeral dir>/secrets --runs %d' % doc['runs_per_case'],
              '```', '',
              'The rejoin time counts from `podman start` (container boot, etcd, Patroni, pg_rewind when needed) '
              'until the old leader streams on the new timeline. Probe warnings and error counts are in '
              '`benchmarks/results/patroni_failover.json`.', '']
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--containers', default='patroni-pg1,patroni-pg2,patroni-pg3')
    ap.add_argument('--secrets-dir', required=True, help='directory holding the generated patroni_api password')
    ap.add_argument('--restapi-ca', default=None,
                    help='CA of the REST API certificates (default: <secrets dir>/../pki/patroni/ca.crt when it exists; '
                         'without one, plain HTTP)')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--profiles', default='stock,tuned')
    ap.add_argument('--faults', default=','.join(FAULTS))
    ap.add_argument('--output', default=os.path.join(REPO_ROOT, 'benchmarks', 'results', 'patroni_failover.json'))
    ap.add_argument('--report', default=os.path.join(REPO_ROOT, 'docs', 'benchmarks', 'patroni_failover.md'))
    args = ap.parse_args()
    with open(os.path.join(args.secrets_dir, 'patroni_api')) as fh:
        api_password = fh.read().split()[0]
    api_ca = args.restapi_ca or os.path.join(os.path.dirname(os.path.abspath(args.secrets_dir)), 'pki', 'patroni', 'ca.crt')
    containers = args.containers.split(',')
    cluster = Cluster(containers, 'patroni', api_password, api_ca if os.path.exists(api_ca) else None)
    version = subprocess.run(['podman', 'exec', containers[0], 'patroni', '--version'], capture_output=True, text=True,
                             check=False).stdout.split()[-1]
    cluster.wait_healthy()
    account = cluster.create_probe_account()
    rows = []
    try:
        for profile in args.profiles.split(','):
            log('profile %s: %s' % (profile, PROFILES[profile]))
            cluster.wait_healthy()
            cluster.apply_profile(PROFILES[profile])
            for fault in args.faults.split(','):
                if fault == 'host_crash':
                    duration = STEADY + PROFILES[profile]['ttl'] + PROFILES[profile]['loop_wait'] + 15
                else:
                    duration = STEADY + 16
                for run in range(1, args.runs + 1):
                    rows.append(run_one(cluster, account, profile, fault, run, duration))
    finally:
        cluster.wait_healthy(timeout=300)
        cluster.apply_profile(PROFILES['tuned'])
    doc = dict(benchmark='patroni_failover', date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               machine=dict(node=platform.node(), platform=platform.platform(), cpus=os.cpu_count(),
                            loadavg=[round(x, 2) for x in os.getloadavg()]),
               patroni_version=version, profiles=PROFILES, runs_per_case=args.runs, runs=rows, summary=summarize(rows))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
    os.makedirs(os.path.dirname(args.report), exist_ok=True)
    with open(args.report, 'w') as fh:
        fh.write(render(doc))
    log('wrote %s and %s' % (args.output, args.report))


if __name__ == '__main__':
    main()
