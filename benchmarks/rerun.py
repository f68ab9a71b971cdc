"""Deployment benchmark: a cold `site.yml` on a fresh lab, then idempotent re-runs.

For each solution: the lab is removed and created again (playbooks/lab.yml),
`ansible-playbook site.yml -e ha=<solution>` deploys it (cold), and the same
command runs --runs more times. Every run's wall time and changed/ok/skipped
counts (from the play recap) are recorded; a re-run that changed anything is
reported as such, since it is then no idempotent re-run. The CPU time of each
run (Ansible and the modules it starts in the containers) is recorded too: on a
shared machine it varies less than the wall time. The lab is removed at the end
unless --keep-lab.

    .venv/bin/python benchmarks/rerun.py --ha patroni streaming --runs 3

With --against REV the same measurement runs on a git worktree of REV (under
.cache/benchmark-rerun/) before each measurement of this checkout, --rounds
times, so that both are measured in the same stretch of time:

    .venv/bin/python benchmarks/rerun.py --ha patroni --against 9ac5de2 --rounds 2

Results: benchmarks/results/rerun.json (runs of other solutions already there
are kept) and docs/benchmarks/rerun.md. Needs `make setup` (venv, host packages)
and root, as the lab does.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO_ROOT, 'benchmarks', 'results', 'rerun.json')
REPORT = os.path.join(REPO_ROOT, 'docs', 'benchmarks', 'rerun.md')
PLAYBOOK = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-playbook')
RECAP_LINE = re.compile(r'^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)'
                        r'\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)')
# A deployment that does not finish within this is stopped and reported as failed.
RUN_TIMEOUT = 1200


def recap_counts(output):
    """Sum of the play recap's counts over every host of every play recap in the output."""
    totals = {'ok': 0, 'changed': 0, 'unreachable': 0, 'failed': 0, 'skipped': 0}
    in_recap = False
    for line in output.splitlines():
        if line.startswith('PLAY RECAP'):
            in_recap = True
            continue
        if in_recap:
            match = RECAP_LINE.match(line)
            if match:
                for key in totals:
                    totals[key] += int(match.group(key))
            elif line.strip():
                in_recap = False
    return totals


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_playbook(args, log_path, root=REPO_ROOT):
    # The checkout measured is the collection Ansible loads, whatever the caller's environment says.
    env = dict(os.environ, ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(root, '.cache', 'collections'))
    started = time.monotonic()
    cpu_before = _children_cpu()
    with open(log_path, 'w') as log:
        try:
            result = subprocess.run([PLAYBOOK] + args, cwd=root, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT, check=False)
            output, returncode = result.stdout, result.returncode
        except subprocess.TimeoutExpired as error:
            output = error.stdout.decode(errors='replace') if isinstance(error.stdout, bytes) else (error.stdout or '')
            returncode = 'timeout'
        log.write(output)
    return time.monotonic() - started, returncode, output, _children_cpu() - cpu_before


def lab(state, log_dir):
    seconds, returncode, unused, unused_cpu = run_playbook(['playbooks/lab.yml', '-e', 'lab_state=' + state],
                                                           os.path.join(log_dir, 'lab-%s.log' % state))
    if returncode != 0:
        raise SystemExit('lab_state=%s failed (rc %s); see %s' % (state, returncode, log_dir))
    return seconds


def measure(ha, runs, log_dir, root=REPO_ROOT, label=''):
    lab('absent', log_dir)
    lab('present', log_dir)
    records = []
    for index in range(runs + 1):
        kind = 'cold' if index == 0 else 're-run'
        log_path = os.path.join(log_dir, '%s-%s-%d.log' % (ha, re.sub(r'[^A-Za-z0-9_.-]', '_', label or 'here'), index))
        seconds, returncode, output, cpu = run_playbook(['site.yml', '-e', 'ha=' + ha], log_path, root)
        record = dict(recap_counts(output), kind=kind, seconds=round(seconds, 1), cpu_seconds=round(cpu, 1),
                      rc=returncode)
        records.append(record)
        print('%-10s %-10s %-7s %6.1f s  cpu %6.1f s  rc %s  changed %d  ok %d  skipped %d' % (
            ha, label, kind, seconds, cpu, returncode, record['changed'], record['ok'], record['skipped']), flush=True)
        if returncode != 0:
            break
    return records


def commit(root=REPO_ROOT):
    result = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, stdout=subprocess.PIPE, text=True,
                            check=False)
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root,
                           stdout=subprocess.PIPE, text=True, check=False).stdout.strip()
    return result.stdout.strip() + ('+changes' if dirty else '')


def worktree(revision, log_dir):
    """A checkout of revision that Ansible can load as pgha.cluster, using this checkout's venv."""
    sha = subprocess.run(['git', 'rev-parse', '--verify', revision + '^{commit}'], cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, text=True, check=False).stdout.strip()
    if not sha:
        raise SystemExit('--against %s: not a commit of this repository' % revision)
    root = os.path.join(log_dir, 'worktree-' + sha[:12])
    if not os.path.isdir(root):
        subprocess.run(['git', 'worktree', 'add', '--detach', root, sha], cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists(os.path.join(root, '.venv')):
        os.symlink(os.path.join(REPO_ROOT, '.venv'), os.path.join(root, '.venv'))
    link = os.path.join(root, '.cache', 'collections', 'ansible_collections', 'pgha', 'cluster')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(root, link)
    return root


def remove_worktree(root):
    subprocess.run(['git', 'worktree', 'remove', '--force', root], cwd=REPO_ROOT, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(root, ignore_errors=True)


def save(results, results_path, report_path, report):
    """The raw results as sorted JSON, and the report rendered from them."""
    with open(results_path, 'w') as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
        handle.write('\n')
    with open(report_path, 'w') as handle:
        handle.write(report)


def render(results):
    lines = ['# Deployment benchmark: cold deploy and idempotent re-run', '',
             'Measured by `benchmarks/rerun.py` on the local lab (3 database containers and a client, reached through',
             'the `pgha.cluster.podman_nsenter` connection). Reproduce with:', '',
             '    .venv/bin/python benchmarks/rerun.py --ha <solution> ... --runs 3', '',
             'A re-run is idempotent when it changed nothing; one that changed something is flagged.',
             'Wall times of the same commit varied by up to 40 % between hours on the 2-CPU development machine:',
             'compare rows measured in the same stretch of time (`--against REV --rounds N` alternates them).',
             'CPU time counts Ansible and the modules it runs in the containers.', '',
             '| solution | commit | measured | machine | cold deploy (s) | re-runs | re-run median (s) | worst (s) '
             '| CPU per re-run, median (s) | changed on re-runs | tasks ok / skipped per re-run |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for ha in sorted(results):
        for entry in results[ha]:
            cold = [r for r in entry['runs'] if r['kind'] == 'cold']
            reruns = [r for r in entry['runs'] if r['kind'] == 're-run']
            times = [r['seconds'] for r in reruns]
            cpu = [r['cpu_seconds'] for r in reruns if 'cpu_seconds' in r]
            lines.append('| %s | %s | %s | %s, %s CPUs | %s | %d | %s | %s | %s | %s | %s |' % (
                ha, entry['commit'], entry['measured'], entry['machine'], entry['cpus'],
                cold[0]['seconds'] if cold and cold[0]['rc'] == 0 else 'failed',
                len(reruns), '%.1f' % statistics.median(times) if times else '-',
                '%.1f' % max(times) if times else '-',
                '%.1f' % statistics.median(cpu) if cpu else '-',
                sum(r['changed'] for r in reruns) if reruns else '-',
                '%d / %d' % (reruns[-1]['ok'], reruns[-1]['skipped']) if reruns else '-'))
    lines.append('')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ha', nargs='+', required=True, help='solutions to deploy (site.yml -e ha=...)')
    parser.add_argument('--runs', type=int, default=3, help='re-runs after the cold deploy (default 3)')
    parser.add_argument('--against', metavar='REV', help='also measure this git revision, before each measurement')
    parser.add_argument('--rounds', type=int, default=1, help='measurements of each solution (default 1)')
    parser.add_argument('--keep-lab', action='store_true', help='leave the last solution deployed')
    parser.add_argument('--log-dir', default=os.path.join(REPO_ROOT, '.cache', 'benchmark-rerun'))
    parser.add_argument('--no-save', action='store_true', help='print only; leave the results files alone')
    options = parser.parse_args()
    if options.runs < 1 or options.rounds < 1:
        parser.error('--runs and --rounds must be at least 1')
    os.makedirs(options.log_dir, exist_ok=True)
    checkouts = [('this checkout', REPO_ROOT)]
    if options.against:
        checkouts.insert(0, (options.against, worktree(options.against, options.log_dir)))
    results = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as handle:
            results = json.load(handle)
    failed = False
    try:
        for ha in options.ha:
            for unused_round in range(options.rounds):
                for label, root in checkouts:
                    runs = measure(ha, options.runs, options.log_dir, root, label)
                    failed = failed or any(r['rc'] != 0 for r in runs)
                    results.setdefault(ha, []).append({
                        'commit': commit(root),
                        'measured': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                        'machine': platform.node(), 'cpus': os.cpu_count(), 'runs': runs})
    finally:
        if not options.keep_lab:
            lab('absent', options.log_dir)
        for label, root in checkouts[:-1]:
            remove_worktree(root)
    if not options.no_save:
        save(results, RESULTS, REPORT, render(results))
    print(render(results))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
