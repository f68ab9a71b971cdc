"""The streaming role's failover powers off the members it cannot reach
(streaming_fence_agent) before it promotes, and stops when it cannot.

roles/streaming/tasks/power_fence.yml runs here on this machine (local
connection) with a stand-in fence agent: a script that reads its options on
stdin, as fence-agents do, records each call and keeps each plug's power state
in a file. The agent's options carry a password that must appear in no output.
"""
import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SECRET = 'bmc-secret-4711'

AGENT = '''#!{python}
import os, sys
options = dict(line.split('=', 1) for line in sys.stdin.read().splitlines() if '=' in line)
state = os.path.join({state!r}, options['plug'])
with open(os.path.join({state!r}, 'calls'), 'a') as log:
    log.write('%s %s %s\\n' % (options['plug'], options['action'], options.get('password') == {secret!r}))
if options['action'] == 'off':
    if options['plug'] in os.environ.get('UNIT_FENCE_FAILS', '').split(','):
        sys.exit(1)
    open(state, 'w').close()
    sys.exit(0)
if options['action'] == 'status':
    sys.exit(2 if os.path.exists(state) else 0)
sys.exit(1)
'''


def fence(tmp_path, down, fails=''):
    state = tmp_path / 'power'
    state.mkdir()
    agents = tmp_path / 'bin'
    agents.mkdir()
    agent = agents / 'fence_unittest'
    agent.write_text(AGENT.format(python=sys.executable, state=str(state), secret=SECRET))
    agent.chmod(0o755)
    hosts = {name: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                    'streaming_fence_parameters': {'plug': name, 'password': SECRET}}
             for name in ('db-1', 'db-2', 'db-3')}
    (tmp_path / 'inventory.yml').write_text(yaml.safe_dump({'all': {'children': {'database_nodes': {'hosts': hosts}}}}))
    play = [{'name': 'Fail over', 'hosts': 'database_nodes', 'gather_facts': False,
             'vars': {'streaming_unreachable': down, 'streaming_new_primary': 'db-1', 'streaming_fence_agent': 'fence_unittest'},
             'tasks': [{'name': 'Power off', 'ansible.builtin.include_role': {
                 'name': 'pgha.cluster.streaming', 'tasks_from': 'power_fence.yml'}},
                 {'name': 'Promote', 'ansible.builtin.debug': {'msg': 'promoting'}}]}]
    (tmp_path / 'play.yml').write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', UNIT_FENCE_FAILS=fails,
               PATH='%s:%s' % (agents, os.environ['PATH']))
    result = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(tmp_path / 'inventory.yml'),
                             str(tmp_path / 'play.yml')],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    calls = (state / 'calls').read_text().split('\n') if (state / 'calls').exists() else []
    return result, result.stdout + result.stderr, [c for c in calls if c]


def test_every_member_that_cannot_be_reached_is_powered_off_once_from_the_candidate(tmp_path):
    result, output, calls = fence(tmp_path, ['db-2', 'db-3'])
    assert result.returncode == 0, output[-3000:]
    # off, then status, for each; the per-member options (and the secret) reached the agent on stdin
    assert calls == ['db-2 off True', 'db-3 off True', 'db-2 status True', 'db-3 status True'], calls
    assert (tmp_path / 'power' / 'db-2').exists() and (tmp_path / 'power' / 'db-3').exists()
    assert 'promoting' in output
    assert SECRET not in output


def test_a_member_that_cannot_be_powered_off_stops_the_failover_before_the_promotion(tmp_path):
    result, output, calls = fence(tmp_path, ['db-2', 'db-3'], fails='db-3')
    assert result.returncode != 0
    assert 'fence_unittest could not power off db-3 (exit status of off, then status: 1, 0)' in output, output[-3000:]
    assert 'nothing was promoted' in output
    assert 'promoting' not in output, 'the play went on to the promotion'
    assert not (tmp_path / 'power' / 'db-3').exists()
    assert SECRET not in output
    assert {c.split()[0] for c in calls} == {'db-2', 'db-3'}, calls
