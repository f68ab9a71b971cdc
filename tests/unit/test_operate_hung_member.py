"""A member that hangs is left out of an operation instead of holding it forever.

playbooks/operate.yml (status, switchover, failover, rejoin) gives every member
pgha_answer_timeout seconds to answer its first task. Here one member's
Python never answers (a stand-in for a frozen host, or one whose sudo blocks on
a full syslog socket) and the other answers; both run on this machine over the
local connection, with no PostgreSQL data directory, so nothing is changed.
"""
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# Long enough for the member that answers to gather its facts on a loaded
# machine (CI runs Molecule beside these tests), short enough to keep the
# test quick; the hung stand-in outlives it by far.
ANSWER_TIMEOUT = 8
HUNG_SECONDS = 45


def write_inventory(tmp_path, hung_interpreter):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(
        'all:\n'
        '  children:\n'
        '    database_nodes:\n'
        '      hosts:\n'
        '        hung:\n'
        '          ansible_connection: local\n'
        '          ansible_python_interpreter: %s\n'
        '        alive:\n'
        '          ansible_connection: local\n'
        '          ansible_python_interpreter: %s\n' % (hung_interpreter, sys.executable))
    return inventory


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text('#!/bin/sh\n' + body + '\n')
    path.chmod(0o755)
    return path


def status(tmp_path, inventory):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', PATH=BIN + os.pathsep + os.environ['PATH'])
    args = [os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory), 'playbooks/status.yml',
            '-e', 'ha=streaming', '-e', 'pgha_answer_timeout=%d' % ANSWER_TIMEOUT,
            '-e', 'postgresql_data_directory=%s' % (tmp_path / 'no-data-directory'),
            '-e', 'ansible_become=false']
    started = time.monotonic()
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    return result, time.monotonic() - started


def recap(result):
    lines = result.stdout.split('PLAY RECAP', 1)[-1].splitlines()
    return {line.split()[0]: line for line in lines if ' : ok=' in line}


def test_a_member_that_does_not_answer_is_left_out_and_the_operation_finishes(tmp_path):
    # The stand-in hangs for HUNG_SECONDS at most, so nothing outlives the test for long.
    hung = script(tmp_path, 'hung-python', 'exec sleep %d' % HUNG_SECONDS)
    result, elapsed = status(tmp_path, write_inventory(tmp_path, hung))

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert elapsed < HUNG_SECONDS, 'the operation waited for the hung member (%.0f s)' % elapsed
    assert 'hung did not answer within %d s (pgha_answer_timeout)' % ANSWER_TIMEOUT in result.stdout
    hosts = recap(result)
    assert 'rescued=1' in hosts['hung'] and 'failed=0' in hosts['hung'], hosts
    # The member that answered ran the role's status, which names the hung one as down.
    assert 'failed=0' in hosts['alive'], hosts
    shown = [line for line in result.stdout.splitlines() if line.strip().startswith('"hung ')]
    assert shown and 'DOWN' in shown[0], result.stdout[-3000:]


def test_a_member_that_fails_for_another_reason_stops_the_operation(tmp_path):
    # Quick failures are not hidden as "not answering": they name their cause.
    broken = script(tmp_path, 'broken-python', 'echo "no interpreter here" >&2; exit 3')
    result, dummy = status(tmp_path, write_inventory(tmp_path, broken))

    assert result.returncode != 0
    assert 'hung did not answer within' not in result.stdout
    assert 'failed=1' in recap(result)['hung'], result.stdout[-3000:]
