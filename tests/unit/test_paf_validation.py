"""The paf role (and the pacemaker role it runs first) refuses bad input before any change.

Three members reached with the local connection, so nothing outside this
machine is contacted; every case must stop in the role's first checks with a
message that names the fix, and no task may report a change.
"""
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MEMBERS = {'db-1': '10.9.8.11', 'db-2': '10.9.8.12', 'db-3': '10.9.8.13'}
GOOD = {'paf_vip': '10.9.8.100', 'paf_primary': 'db-1', 'pgha_replication_password': 'unit-replication',
        'pgha_hacluster_password': 'unit-hacluster', 'pacemaker_stonith_disabled_lab_acknowledgement': True,
        # the postgresql role's checks run in the paf role's and need every account's secret
        'pgha_superuser_password': 'unit-superuser', 'pgha_rewind_password': 'unit-rewind',
        'pgha_monitoring_password': 'unit-monitoring'}


def run_paf(tmp_path, extra, members=None):
    members = MEMBERS if members is None else members
    inventory = {'all': {'children': {'database_nodes': {'hosts': {
        name: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'postgresql_address': address}
        for name, address in members.items()}}}}}
    (tmp_path / 'inventory.yml').write_text(yaml.safe_dump(inventory))
    play = [{'name': 'Deploy PAF', 'hosts': 'database_nodes', 'gather_facts': False,
             'tasks': [{'name': 'Run the role', 'ansible.builtin.include_role': {'name': 'pgha.cluster.paf'}}]}]
    (tmp_path / 'play.yml').write_text(yaml.safe_dump(play))
    (tmp_path / 'extra.yml').write_text(yaml.safe_dump(extra))
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    result = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(tmp_path / 'inventory.yml'),
                             str(tmp_path / 'play.yml'), '-e', '@' + str(tmp_path / 'extra.yml')],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return result, result.stdout + result.stderr


def assert_refused_unchanged(result, output, message):
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert 'Nothing was changed' in output, output[-3000:]
    recap = output.split('PLAY RECAP', 1)[-1]
    assert 'changed=0' in recap and 'changed=1' not in recap, recap
    assert 'changed: [' not in output, output[-3000:]


def test_a_virtual_ip_outside_the_members_subnet_is_refused(tmp_path):
    result, output = run_paf(tmp_path, dict(GOOD, paf_vip='10.9.9.100'))
    assert_refused_unchanged(result, output, 'is not in the subnet of db-1 (10.9.8.11), db-2 (10.9.8.12), db-3 (10.9.8.13)')


def test_a_virtual_ip_that_a_member_has_is_refused(tmp_path):
    result, output = run_paf(tmp_path, dict(GOOD, paf_vip='10.9.8.12'))
    assert_refused_unchanged(result, output, 'must be an IPv4 address that no member has')


def test_two_members_without_a_quorum_device_are_refused(tmp_path):
    members = {k: v for k, v in MEMBERS.items() if k != 'db-3'}
    result, output = run_paf(tmp_path, GOOD, members)
    assert_refused_unchanged(result, output, 'or two with a quorum device (pacemaker_qdevice_host')


def test_no_fencing_without_the_lab_acknowledgement_is_refused(tmp_path):
    result, output = run_paf(tmp_path, dict(GOOD, pacemaker_stonith_disabled_lab_acknowledgement=False))
    assert_refused_unchanged(result, output, 'No fencing: set pacemaker_fence_agent')


@pytest.mark.parametrize('extra, message', [
    ({'paf_monitor_promoted_interval': 4, 'paf_monitor_unpromoted_interval': 4}, 'must be at least 1 and differ'),
    ({'paf_conninfo_options': 'connect_timeout=2 host=elsewhere'}, 'must not set what the'),
    ({'paf_failure_timeout': -1}, 'paf_failure_timeout at least 0'),
    ({'pacemaker_fence_agent': 'rm -rf /'}, 'must name a fence_* agent'),
    ({'pacemaker_dc_deadtime': 'soon'}, 'pacemaker_dc_deadtime (soon) a number with an optional unit'),
    ({'paf_conninfo_options': 'connect_timeout=2 sslmode=disable'}, 'must not set what the'),
    ({'postgresql_tls': False}, 'verifies the members\' certificates, but postgresql_tls is false'),
    ({'paf_synchronous_mode': True, 'paf_synchronous_count': 3}, 'needs at least 1 and fewer than the 3'),
    ({'paf_synchronous_mode': True, 'paf_synchronous_count': 0}, 'needs at least 1 and fewer than the 3'),
    # extra vars outrank what the role passes the pacemaker role (corosync's timing behind the recorded one)
    ({'pacemaker_token': 3000}, 'your inputs set them otherwise: pacemaker_token.'),
    ({'pacemaker_members': ['db-1', 'db-2'], 'pacemaker_token_coefficient': 650},
     'your inputs set them otherwise: pacemaker_members, pacemaker_token_coefficient.'),
])
def test_other_bad_settings_are_refused(tmp_path, extra, message):
    result, output = run_paf(tmp_path, dict(GOOD, **extra))
    assert_refused_unchanged(result, output, message)


def test_a_user_setting_that_contradicts_pafs_is_refused_before_the_cluster_stack(tmp_path):
    """The postgresql role's checks run in the paf role's, before the pacemaker role builds anything: a
    primary_conninfo of the user's (PAF writes its own, through the virtual IP) is refused by name, never by value."""
    extra = dict(GOOD, postgresql_settings={'primary_conninfo': 'host=elsewhere password=unit-conninfo-secret'})
    result, output = run_paf(tmp_path, extra)
    assert_refused_unchanged(result, output,
                             'the paf role sets these itself, and your inputs set them otherwise: '
                             'postgresql_settings.primary_conninfo.')
    assert 'unit-conninfo-secret' not in output
    tasks = [line for line in output.splitlines() if line.startswith('TASK [')]
    assert not [line for line in tasks if 'pacemaker' in line or 'cluster stack' in line], tasks
