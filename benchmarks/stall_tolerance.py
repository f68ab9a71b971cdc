"""Stall tolerance: how long may the primary's host hang before the solution fails it over?

The other side of a fast failover. A host that stops answering for a moment
(a hypervisor pause, a storage hiccup, a busy host) and then resumes should
keep its role; every second less of failure detection makes such a pause more
likely to cost a failover, a rewind and a rejoin. This benchmark measures it.

For each stall length, --runs times: wait until the cluster is healthy (one
primary, every other member streaming from it) and --settle seconds more;
freeze the primary's lab container for the stall (`podman pause`, then
`podman unpause`: the kernel still completes TCP handshakes, no process
answers, as in compare.yml's host_freeze); then watch every other member for
--watch seconds. A member that leaves recovery is a failover; the old primary
is then brought back with `playbooks/rejoin.yml`, and the next stall freezes
the current primary. Nothing else runs against the cluster meanwhile (no client
load), so only the solution's own failure detection can act.

    .venv/bin/python benchmarks/stall_tolerance.py --ha pgpool --label defaults
    .venv/bin/python benchmarks/stall_tolerance.py --ha pgpool --label no-retry \\
        --settings '{"pgpool_health_check_max_retries": 0}'

The solution is deployed first with `site.yml -e ha=<ha>` and the --settings
as extra vars, on the running lab (--fresh-lab: the lab is made again first).
Results: benchmarks/results/stall_tolerance.json (entries of other labels are
kept) and docs/benchmarks/stall_tolerance.md. Every wait is bounded; the lab
is left up (`make lab-down` removes it) unless --remove-lab.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO_ROOT, 'benchmarks', 'results', 'stall_tolerance.json')
REPORT = os.path.join(REPO_ROOT, 'docs', 'benchmarks', 'stall_tolerance.md')
DEFAULT_STALLS = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
# A podman command that takes longer than this is treated as failed (a paused
# container's exec hangs; nothing here should ever wait on one).
PODMAN_TIMEOUT = 10
# How long the cluster gets to become healthy before a stall, and a rejoin to finish.
HEALTHY_TIMEOUT = 180

_SPEC = importlib.util.spec_from_file_location('rerun_benchmark', os.path.join(REPO_ROOT, 'benchmarks', 'rerun.py'))
rerun = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rerun)


def podman(*args, timeout=PODMAN_TIMEOUT):
    try:
        result = subprocess.run(['podman'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def sql(node, query, port=5432):
    """One value from the node's local PostgreSQL, as the postgres OS user; None when it does not answer."""
    return podman('exec', node, 'runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-p', str(port),
                  '-d', 'postgres', '-c', query)


def roles(nodes):
    """node -> 'primary', 'standby' or None (down or not answering)."""
    answers = {node: sql(node, 'SELECT pg_is_in_recovery()') for node in nodes}
    return {node: {'f': 'primary', 't': 'standby'}.get(answer) for node, answer in answers.items()}


def healthy_primary(nodes):
    """The primary when the cluster is whole: one primary, every other member streaming from it."""
    current = roles(nodes)
    primaries = [node for node, role in current.items() if role == 'primary']
    if len(primaries) != 1 or any(role is None for role in current.values()):
        return None
    streaming = sql(primaries[0], "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    return primaries[0] if streaming == str(len(nodes) - 1) else None


def wait_healthy(nodes, settle):
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        primary = healthy_primary(nodes)
        if primary:
            # Settle, then make sure nothing moved meanwhile.
            time.sleep(settle)
            if healthy_primary(nodes) == primary:
                return primary
        time.sleep(1)
    raise SystemExit('the cluster was not healthy within %d s: %s' % (HEALTHY_TIMEOUT, roles(nodes)))


def stall(target, seconds):
    """Freeze the target's container for the given seconds; the outer bound of the freeze, measured."""
    before = time.monotonic()
    if podman('pause', target) is None:
        podman('unpause', target)
        raise SystemExit('podman pause %s failed' % target)
    time.sleep(seconds)
    resumed = podman('unpause', target)
    after = time.monotonic()
    if resumed is None:
        raise SystemExit('podman unpause %s failed: unpause it by hand' % target)
    return round(after - before, 2)


def watch_for_failover(nodes, target, seconds, poll=0.5):
    """The member that became a primary in place of the target within the window, and when (s after the stall's end)."""
    started = time.monotonic()
    others = [node for node in nodes if node != target]
    while time.monotonic() - started < seconds:
        for node, role in roles(others).items():
            if role == 'primary':
                return node, round(time.monotonic() - started, 1)
        time.sleep(poll)
    return None, None


def start_if_fenced(target):
    """Start the target's container again when fencing turned it off (the lab's power switch); True if it had."""
    status = podman('inspect', '--type', 'container', '--format', '{{.State.Status}}', target)
    if status in ('running', 'paused'):
        return False
    if podman('start', target) is None:
        raise SystemExit('podman start %s failed after it was fenced' % target)
    booted = podman('exec', target, 'systemctl', 'is-system-running', '--wait', timeout=HEALTHY_TIMEOUT)
    if booted not in ('running', 'degraded'):
        raise SystemExit('%s did not boot after it was fenced (%s)' % (target, booted))
    return True


def run_trials(options, nodes, log_dir):
    trials = []
    for stall_seconds in options.stalls:
        for run in range(1, options.runs + 1):
            target = wait_healthy(nodes, options.settle)
            frozen = stall(target, stall_seconds)
            new_primary, seen_after = watch_for_failover(nodes, target, options.watch)
            # Without a failover the whole window has passed: a target that is no primary then stopped
            # itself (a fence), an outage too. (After a failover the fence is meant to stop it.)
            fenced = start_if_fenced(target)
            target_after = None if fenced else roles([target])[target]
            trial = {'stall': stall_seconds, 'run': run, 'target': target, 'frozen_outer': frozen,
                     'failed_over': new_primary is not None, 'new_primary': new_primary, 'seen_after': seen_after,
                     'target_after': target_after, 'fenced': fenced}
            trials.append(trial)
            print('stall %4.1f s (outer %5.2f s) run %d on %s: %s' % (
                stall_seconds, frozen, run, target,
                'failover to %s, seen %.1f s after the stall' % (new_primary, seen_after) if new_primary
                else 'no failover within %d s, %s is %s' % (options.watch, target, target_after or 'down'))
                + (' (fenced: turned off, started again)' if fenced else ''), flush=True)
            if new_primary or target_after != 'primary':
                log_path = os.path.join(log_dir, 'rejoin-%s-%s-%d.log' % (options.label, stall_seconds, run))
                unused, returncode, unused_output, unused_cpu = rerun.run_playbook(
                    ['playbooks/rejoin.yml', '-e', 'ha=' + options.ha], log_path)
                if returncode != 0:
                    raise SystemExit('rejoin after the failover failed (rc %s); see %s' % (returncode, log_path))
    return trials


def summary(trials):
    """stall -> (failovers, runs), in stall order."""
    counts = {}
    for trial in trials:
        failovers, runs = counts.get(trial['stall'], (0, 0))
        counts[trial['stall']] = (failovers + int(trial['failed_over']), runs + 1)
    return dict(sorted(counts.items()))


def tolerated(trials):
    """The longest stall below which no stall failed over (every shorter one was survived every time)."""
    longest = None
    for stall_seconds, (failovers, unused_runs) in summary(trials).items():
        if failovers:
            break
        longest = stall_seconds
    return longest


def stopped_without_failover(trials):
    """Stalls after which the old primary no longer ran as one although nothing was promoted (None: not recorded)."""
    if any('target_after' not in trial for trial in trials):
        return None
    return sum(1 for trial in trials if not trial['failed_over'] and trial['target_after'] != 'primary')


def render(results):
    lines = ['# Stall tolerance: the shortest hang of the primary that costs a failover', '',
             'Measured by `benchmarks/stall_tolerance.py` on the local lab: the primary\'s container is frozen',
             '(`podman pause`) for the stall, then resumed, with no client load; a failover is any other member',
             'leaving recovery within the watch window. Each cell is failovers / runs. "Survives" is the longest',
             'stall that, like every shorter one, never failed over. "Primary down, nothing promoted" counts stalls',
             'after which the old primary no longer ran as one at the end of the watch while no other member had',
             'been promoted (stopped by a fence, say): an outage without a failover. Settings are the extra vars',
             'of the deployment: `{}` is the role\'s defaults at the commit shown.', '',
             '    .venv/bin/python benchmarks/stall_tolerance.py --ha <solution> --label <name> --settings \'<JSON>\'', '']
    for ha in sorted(results):
        entries = results[ha]
        stalls = sorted({trial['stall'] for entry in entries for trial in entry['trials']})
        lines += ['## %s' % ha, '',
                  '| label | settings | commit | measured | ' + ' | '.join('%g s' % s for s in stalls)
                  + ' | survives | failover seen after the stall (s) | primary down, nothing promoted |',
                  '|---|---|---|---|' + '---|' * len(stalls) + '---|---|---|']
        for entry in entries:
            counts = summary(entry['trials'])
            seen = sorted(trial['seen_after'] for trial in entry['trials'] if trial['failed_over'])
            survived = tolerated(entry['trials'])
            stopped = stopped_without_failover(entry['trials'])
            lines.append('| %s | `%s` | %s | %s | %s | %s | %s | %s |' % (
                entry['label'], json.dumps(entry['settings'], sort_keys=True), entry['commit'], entry['measured'],
                ' | '.join('%d / %d' % counts[s] if s in counts else '-' for s in stalls),
                '%g s' % survived if survived is not None else 'none measured',
                '%.1f-%.1f' % (seen[0], seen[-1]) if seen else '-',
                'not recorded' if stopped is None else '%d / %d' % (stopped, len(entry['trials']))))
        lines.append('')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ha', help='the solution (site.yml -e ha=...)')
    parser.add_argument('--label', help='name of this row, e.g. defaults')
    parser.add_argument('--settings', default='{}', help='extra vars for the deployment, as JSON')
    parser.add_argument('--stalls', type=float, nargs='+', default=DEFAULT_STALLS, help='stall lengths in seconds')
    parser.add_argument('--runs', type=int, default=3, help='stalls of each length (default 3)')
    parser.add_argument('--settle', type=float, default=10, help='seconds of health before each stall (default 10)')
    parser.add_argument('--watch', type=float, default=15, help='seconds to watch for a failover (default 15)')
    parser.add_argument('--fresh-lab', action='store_true', help='make the lab again before the deployment')
    parser.add_argument('--remove-lab', action='store_true', help='remove the lab at the end')
    parser.add_argument('--log-dir', default=os.path.join(REPO_ROOT, '.cache', 'benchmark-stall'))
    parser.add_argument('--no-save', action='store_true', help='print only; leave the results files alone')
    parser.add_argument('--render-only', action='store_true', help='only write the report again from the results file')
    options = parser.parse_args()
    if options.render_only:
        with open(RESULTS) as handle:
            results = json.load(handle)
        # the results file is written back as save() writes it: unchanged
        rerun.save(results, RESULTS, REPORT, render(results))
        print(render(results))
        return 0
    if not options.ha or not options.label:
        parser.error('--ha and --label are needed, except with --render-only')
    settings = json.loads(options.settings)
    if not isinstance(settings, dict):
        parser.error('--settings must be a JSON object')
    if options.runs < 1 or options.watch < 1 or options.settle < 0 or min(options.stalls) <= 0:
        parser.error('--runs and --watch must be at least 1, --settle at least 0, every stall above 0')
    os.makedirs(options.log_dir, exist_ok=True)
    nodes = ['pg1', 'pg2', 'pg3']
    try:
        if options.fresh_lab:
            rerun.lab('absent', options.log_dir)
            rerun.lab('present', options.log_dir)
        log_path = os.path.join(options.log_dir, 'deploy-%s-%s.log' % (options.ha, options.label))
        seconds, returncode, unused_output, unused_cpu = rerun.run_playbook(
            ['site.yml', '-e', 'ha=' + options.ha, '-e', json.dumps(settings)], log_path)
        if returncode != 0:
            raise SystemExit('site.yml -e ha=%s failed (rc %s); see %s' % (options.ha, returncode, log_path))
        print('deployed %s with %s in %.1f s' % (options.ha, json.dumps(settings), seconds), flush=True)
        trials = run_trials(options, nodes, options.log_dir)
    finally:
        for node in nodes:
            # Never leave a container frozen, whatever stopped the run.
            podman('unpause', node)
        if options.remove_lab:
            rerun.lab('absent', options.log_dir)
    results = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as handle:
            results = json.load(handle)
    entries = [entry for entry in results.get(options.ha, []) if entry['label'] != options.label]
    entries.append({'label': options.label, 'settings': settings, 'commit': rerun.commit(),
                    'measured': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                    'machine': platform.node(), 'cpus': os.cpu_count(), 'settle': options.settle,
                    'watch': options.watch, 'trials': trials})
    results[options.ha] = entries
    if not options.no_save:
        rerun.save(results, RESULTS, REPORT, render(results))
    print(render(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
