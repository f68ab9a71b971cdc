"""Bad input to the playbooks and roles stops at once, with a message that names the fix.

Every case fails in its first task on localhost (an assert or a role's argument
spec), before any host is touched, so these run without the lab. The lab
inventory is loaded, but none of its hosts is contacted, and the playbooks run
in check mode besides.
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def run(args):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def playbook(path, extra):
    # --check: should a validation ever let bad input through, the steps after
    # it (lab, deployment, faults) still change nothing.
    return run([os.path.join(BIN, 'ansible-playbook'), '--check', path, '-e', json.dumps(extra)])


def only_localhost_ran(result):
    """The PLAY RECAP lists localhost alone: no lab host was contacted."""
    recap = result.stdout.split('PLAY RECAP', 1)[-1]
    hosts = [line.split()[0] for line in recap.splitlines() if ' : ok=' in line]
    return hosts == ['localhost']


@pytest.mark.parametrize('extra, message', [
    ({'compare_ha': ['nonsense']}, 'compare_ha must list solutions from'),
    ({'compare_ha': ['streaming'], 'compare_faults': ['meteor']}, 'compare_faults faults from'),
    ({'compare_ha': ['streaming'], 'compare_runs': 0}, 'compare_runs must be at least 1'),
    ({'compare_ha': []}, 'compare_ha must list solutions from'),
])
def test_compare_rejects_bad_requests(extra, message):
    result = playbook('playbooks/compare.yml', extra)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert only_localhost_ran(result), result.stdout[-3000:]


@pytest.mark.parametrize('extra, message', [
    ({'ha': 'nonsense'}, 'Set -e ha= to one of'),
    ({'ha': 'streaming', 'fault': 'meteor'}, 'and -e fault= to one of'),
    ({'ha': 'streaming', 'drill_duration': 3}, 'drill_duration must be at least 10'),
])
def test_drill_rejects_bad_requests(extra, message):
    result = playbook('playbooks/drill.yml', extra)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert only_localhost_ran(result), result.stdout[-3000:]


def test_site_rejects_an_unknown_solution_with_the_valid_ones():
    result = playbook('site.yml', {'ha': 'nonsense'})
    assert result.returncode != 0
    assert "Unknown HA solution 'nonsense'" in result.stdout
    assert 'streaming' in result.stdout and 'patroni' in result.stdout
    assert only_localhost_ran(result), result.stdout[-3000:]


@pytest.mark.parametrize('role, extra, message', [
    ('streaming', {'streaming_synchronous_method': 'SOME'}, 'streaming_synchronous_method must be one of'),
    ('streaming', {'streaming_ssl_mode': 'maybe'}, 'streaming_ssl_mode must be one of'),
    ('streaming', {'streaming_synchronous_count': 'two'}, 'streaming_synchronous_count'),
    ('streaming', {'streaming_failover_fence': 'perhaps'}, 'streaming_failover_fence'),
    ('patroni', {'patroni_install_method': 'curl'}, 'patroni_install_method must be one of'),
    ('etcd', {'etcd_auto_compaction_mode': 'never'}, 'etcd_auto_compaction_mode must be one of'),
])
def test_role_argument_specs_reject_bad_values(role, extra, message):
    """The role's argument spec stops it before its first task."""
    result = run([os.path.join(BIN, 'ansible'), 'localhost', '-m', 'ansible.builtin.include_role',
                  '-a', 'name=pgha.cluster.%s' % role, '-e', json.dumps(extra)])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output[-3000:]
    assert 'Validating arguments' in output or 'argument' in output.lower()


@pytest.mark.parametrize('extra, message', [
    # a conninfo without connect_timeout: repmgrd's check of a dead primary would hang for minutes
    ({'repmgr_conninfo_options': 'sslmode=prefer'}, 'must set connect_timeout'),
    ({'repmgr_conninfo_options': 'connect_timeout=0'}, 'must set connect_timeout'),
    # host, user... come from the role, never from the options
    ({'repmgr_conninfo_options': 'connect_timeout=2 host=elsewhere'}, 'must set connect_timeout'),
    # no primary in the inventory (no group 'primary', no repmgr_primary)
    ({'repmgr_members': ['db-1', 'db-2', 'db-3']}, 'No single primary for repmgr'),
    ({'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-9'}, 'No single primary for repmgr'),
])
def test_repmgr_refuses_bad_input_before_any_change(extra, message):
    """The role's first tasks (validate.yml) stop it on localhost, before any host is contacted."""
    result = run([os.path.join(BIN, 'ansible'), 'localhost', '-m', 'ansible.builtin.include_role',
                  '-a', 'name=pgha.cluster.repmgr', '-e', json.dumps(extra)])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output[-3000:]
    assert 'Nothing was changed' in output, output[-3000:]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


@pytest.mark.parametrize('extra, message', [
    ({'repmgr_failover': 'sometimes'}, 'repmgr_failover must be one of'),
    ({'repmgr_reconnect_attempts': 'many'}, 'repmgr_reconnect_attempts'),
    ({'repmgr_log_level': 'LOUD'}, 'repmgr_log_level must be one of'),
])
def test_repmgr_argument_spec_rejects_bad_values(extra, message):
    result = run([os.path.join(BIN, 'ansible'), 'localhost', '-m', 'ansible.builtin.include_role',
                  '-a', 'name=pgha.cluster.repmgr', '-e', json.dumps(extra)])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output[-3000:]
