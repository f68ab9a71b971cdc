"""Run the test suite's jobs side by side in a fixed number of lanes.

Usage: python3 tools/run_parallel.py [--jobs N] [--alone NAME]... [--log-dir DIR] [--timeout S] NAME=COMMAND ...

Each job runs in its own process group with its output in DIR/NAME.log; a line is
printed when a job starts and ends. Jobs start in the order given (put the longest
first). After a failure no new job starts, the running ones finish, and the end of
every failed job's log is printed; the lines that name the failure (Ansible's
failed tasks, pytest's failed tests) are printed once more at the very end, where
a CI page that keeps only the last lines of the output still shows them. A job
that outlives --timeout is ended (its process group, which this script started).
Exit status 0 only if every job passed.

A job named with --alone runs with no other job beside it: it waits until the lanes
are empty and no job starts until it ends. The comparison drills are such jobs:
they time failovers, and a second job on the same two cores stretches the timings
they measure.

Molecule scenarios and the lab each use their own container names, networks and
secrets, so they can share the machine; most of a scenario's time is spent
waiting on systemd, package installs and failover timers, not on the CPU.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

LOG_TAIL_LINES = 400
EXCERPT_LINES = 8
EXCERPT_LINE_CHARS = 1200
ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*m')
# Ansible: "fatal: [host]: FAILED! => ...", "failed: [host] (item=...) => ...";
# pytest: "FAILED tests/...", "ERROR tests/...", "E   assert ...".
FAILURE_LINE = re.compile(r'^(fatal: \[|failed: \[|FAILED |ERROR |E {3})')
ANSIBLE_TASK = re.compile(r'TASK \[(.*)\]')


def parse_job(text):
    name, sep, command = text.partition('=')
    if not sep or not name or not command or '/' in name:
        raise argparse.ArgumentTypeError('expected NAME=COMMAND, got %r' % text)
    return name, command


def end_group(process, grace=30):
    """Stop a job's process group: SIGTERM, then SIGKILL after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class Stopped(Exception):
    """SIGTERM or SIGINT reached this script."""


def stop_on_signal(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def tail(path, lines):
    with open(path, errors='replace') as handle:
        content = handle.readlines()
    return ''.join(content[-lines:])


def failure_excerpt(path):
    """The lines of a log that name why it failed, each after the Ansible task it belongs to."""
    excerpt = []
    task = None
    with open(path, errors='replace') as handle:
        for raw in handle:
            line = ANSI_ESCAPE.sub('', raw).strip().lstrip('\u2502').strip()  # molecule may frame lines with a bar
            found = ANSIBLE_TASK.search(line)
            if found:
                task = found.group(1)
            elif line == '...ignoring' and excerpt:
                excerpt.pop()  # the failure just above was ignored by the task
            elif FAILURE_LINE.match(line) and not line.startswith('FAILED - RETRYING'):
                if len(line) > EXCERPT_LINE_CHARS:
                    line = line[:EXCERPT_LINE_CHARS] + ' [...]'
                excerpt.append('TASK [%s]: %s' % (task, line) if task and line.startswith(('fatal', 'failed')) else line)
    return excerpt[-EXCERPT_LINES:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--jobs', type=int, default=2, help='lanes (default 2)')
    parser.add_argument('--log-dir', default='.cache/test-logs')
    parser.add_argument('--timeout', type=int, default=2700, help='seconds per job (default 2700)')
    parser.add_argument('--alone', action='append', default=[], metavar='NAME',
                        help='a job that runs with no other job beside it (repeatable)')
    parser.add_argument('job', nargs='+', type=parse_job)
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error('--jobs must be at least 1')
    names = [job[0] for job in args.job]
    if len(set(names)) != len(names):
        parser.error('job names must be unique')
    unknown = sorted(set(args.alone) - set(names))
    if unknown:
        parser.error('--alone names no job: %s' % ', '.join(unknown))
    alone = set(args.alone)

    # Explicitly: a shell starts background jobs with SIGINT ignored, and the
    # default SIGTERM would leave the jobs' process groups running.
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    os.makedirs(args.log_dir, exist_ok=True)
    pending = list(args.job)
    running = {}  # name -> (process, log handle, start time)
    results = []  # (name, status, seconds)
    failed_logs = []  # (name, log path) of each failed job; once there is one, no job starts
    suite_start = time.monotonic()

    try:
        while pending or running:
            while pending and not failed_logs and len(running) < args.jobs:
                if alone & set(running) or (pending[0][0] in alone and running):
                    break
                name, command = pending.pop(0)
                log = open(os.path.join(args.log_dir, name + '.log'), 'w')
                process = subprocess.Popen(['bash', '-o', 'pipefail', '-c', command], stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
                running[name] = (process, log, time.monotonic())
                print('==> start %s: %s' % (name, command), flush=True)
            if failed_logs and not running:
                break
            time.sleep(1)
            for name, (process, log, started) in list(running.items()):
                elapsed = time.monotonic() - started
                if process.poll() is None and elapsed > args.timeout:
                    print('==> %s ran longer than %d s: ending it' % (name, args.timeout), flush=True)
                    end_group(process)
                if process.poll() is None:
                    continue
                log.close()
                del running[name]
                status = 'passed' if process.returncode == 0 else 'FAILED (exit %d)' % process.returncode
                results.append((name, process.returncode, int(elapsed)))
                print('==> %s %s in %d s' % (name, status, elapsed), flush=True)
                if process.returncode != 0:
                    failed_logs.append((name, log.name))
                    print('---- last %d lines of %s ----' % (LOG_TAIL_LINES, log.name), flush=True)
                    print(tail(log.name, LOG_TAIL_LINES), flush=True)
                    print('---- end of %s ----' % log.name, flush=True)
    except Stopped as stop:
        print('==> %s: ending the running jobs' % stop, flush=True)
        for process, _log, _started in running.values():
            end_group(process, grace=10)
        return 128 + getattr(signal, str(stop)).value

    print('==> jobs (%d lanes, %d s in all):' % (args.jobs, time.monotonic() - suite_start))
    for name, code, seconds in results:
        print('    %-28s %5d s  %s' % (name, seconds, 'passed' if code == 0 else 'FAILED'))
    for name, _command in pending:
        print('    %-28s     -    not started' % name)
    for name, log_path in failed_logs:
        print('==> why %s failed (%s):' % (name, log_path))
        for line in failure_excerpt(log_path) or ['(no failed task or test named in the log)']:
            print('    ' + line)
    return 1 if failed_logs or pending else 0


if __name__ == '__main__':
    sys.exit(main())
