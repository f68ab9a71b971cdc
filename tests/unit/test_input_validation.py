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
    ('streaming', {'streaming_failover_down_recheck_timeout': 'soon'}, 'streaming_failover_down_recheck_timeout'),
    ('streaming', {'streaming_fence_parameters': ['plug', 'pg1']}, 'streaming_fence_parameters'),
    ('streaming', {'streaming_fence_old_primary': 'sometimes'}, 'streaming_fence_old_primary'),
    ('streaming', {'streaming_fence_interval': 'often'}, 'streaming_fence_interval'),
    ('patroni', {'patroni_install_method': 'curl'}, 'patroni_install_method must be one of'),
    ('patroni', {'patroni_ssl_mode': 'maybe'}, 'patroni_ssl_mode must be one of'),
    ('patroni', {'patroni_haproxy_replica_reads': 'nearest'}, 'patroni_haproxy_replica_reads must be one of'),
    ('patroni', {'patroni_leader_fence_interval': 'often'}, 'patroni_leader_fence_interval'),
    ('etcd', {'etcd_auto_compaction_mode': 'never'}, 'etcd_auto_compaction_mode must be one of'),
    ('pgpool', {'pgpool_connect_timeout': 'soon'}, 'pgpool_connect_timeout'),
    ('postgresql', {'postgresql_ha_requirements': {'settings': 'max_connections=50'}}, 'postgresql_ha_requirements'),
    ('postgresql', {'postgresql_ha_requirements': {'setings': {}}}, 'setings'),
])
def test_role_argument_specs_reject_bad_values(role, extra, message):
    """The role's argument spec stops it before its first task."""
    result = run([os.path.join(BIN, 'ansible'), 'localhost', '-m', 'ansible.builtin.include_role',
                  '-a', 'name=pgha.cluster.%s' % role, '-e', json.dumps(extra)])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output[-3000:]
    assert 'Validating arguments' in output or 'argument' in output.lower()


def run_role(role, extra, inventory=None):
    """Run one role against localhost, as `ansible localhost -m include_role` does; `inventory`
    (a file) is read besides the lab's."""
    extra_inventory = ['-i', 'inventories/lab', '-i', str(inventory)] if inventory else []
    command = [os.path.join(BIN, 'ansible'), 'localhost'] + extra_inventory
    result = run(command + ['-m', 'ansible.builtin.include_role', '-a', 'name=pgha.cluster.%s' % role, '-e', json.dumps(extra)])
    return result, result.stdout + result.stderr


def role_check(role, extra):
    """Run one role against localhost in check mode: a validation that let bad input
    through would still change nothing on this machine."""
    result = run([os.path.join(BIN, 'ansible'), 'localhost', '--check', '-m', 'ansible.builtin.include_role',
                  '-a', 'name=pgha.cluster.%s' % role, '-e', json.dumps(extra)])
    return result, result.stdout + result.stderr


def test_postgresql_refuses_to_drop_a_cluster_that_holds_data(tmp_path):
    """In install-only mode the role drops the cluster in the HA manager's way only when it
    is empty. A data directory with a user table (relation file 16384) is refused, by the
    validation that runs before the role's first change."""
    data = tmp_path / 'data'
    (data / 'base' / '5').mkdir(parents=True)
    (data / 'base' / '5' / '16384').write_bytes(b'\0' * 8192)
    conf = tmp_path / 'conf'
    conf.mkdir()
    (conf / 'postgresql.conf').write_text("data_directory = '%s'\n" % data)
    result, output = role_check('postgresql', {'postgresql_manage_cluster': False, 'postgresql_cluster_name': 'legacy',
                                               'postgresql_config_directory': str(conf)})
    assert result.returncode != 0
    assert 'Refusing to drop PostgreSQL cluster 15/legacy' in output, output[-3000:]
    assert 'postgresql_drop_existing_cluster=true' in output


# Every secret the postgresql role needs, so that each case fails at the check it is about.
SECRETS = {'pgha_superuser_password': 'unit-superuser', 'pgha_replication_password': 'unit-replication',
           'pgha_rewind_password': 'unit-rewind', 'pgha_monitoring_password': 'unit-monitoring'}


@pytest.mark.parametrize('blank, missing, present', [
    (['pgha_replication_password'], ['postgresql_replication_password'],
     ['postgresql_superuser_password', 'postgresql_rewind_password', 'postgresql_monitoring_password']),
    (list(SECRETS), ['postgresql_superuser_password', 'postgresql_replication_password',
                     'postgresql_rewind_password', 'postgresql_monitoring_password'], []),
])
def test_postgresql_names_every_missing_secret_before_any_change(blank, missing, present):
    extra = dict(SECRETS, **{name: '' for name in blank})
    result, output = role_check('postgresql', extra)
    assert result.returncode != 0
    message = [line for line in output.splitlines() if 'Missing secrets:' in line]
    assert message, output[-3000:]
    for name in missing:
        assert name in message[0]
    for name in present:
        assert name not in message[0]
    # the values of the secrets that are set never appear
    assert not [value for value in SECRETS.values() if value in output]


VALID_HBA = {'type': 'hostssl', 'database': 'app', 'user': 'app', 'address': '10.1.0.0/16', 'method': 'scram-sha-256'}


@pytest.mark.parametrize('line, message', [
    (dict(VALID_HBA, method='trust'), "method 'trust' is not allowed"),
    (dict(VALID_HBA, method='trust '), 'method must be a non-empty string without spaces'),
    (dict(VALID_HBA, method='md5'), "method 'md5' is not allowed"),
    (dict(VALID_HBA, method='TRUST'), "method 'TRUST' is not allowed"),
    # a trust line smuggled through another field
    (dict(VALID_HBA, address='0.0.0.0/0 trust'), 'address must be a non-empty string without spaces'),
    (dict(VALID_HBA, user='app\nhost all all 0.0.0.0/0 trust'), 'user must be a non-empty string without spaces'),
    (dict(VALID_HBA, database='app\tall'), 'database must be a non-empty string without spaces'),
    (dict(VALID_HBA, address='10.0.0.0/8#'), 'address must be a non-empty string'),
    ({k: v for k, v in VALID_HBA.items() if k != 'method'}, 'method is missing (one of scram-sha-256'),
    (dict(VALID_HBA, methd='cert'), "unknown key 'methd'"),
    (dict(VALID_HBA, type='local'), 'a local line takes no address'),
    ({k: v for k, v in VALID_HBA.items() if k != 'address'}, 'address is missing'),
    (dict(VALID_HBA, type='hots'), "type 'hots' is not one of"),
    (dict(VALID_HBA, method='peer'), 'peer works on local lines only'),
])
def test_postgresql_refuses_unsafe_pg_hba_lines(line, message):
    extra = dict(SECRETS, postgresql_hba_extra=[VALID_HBA, line])
    result, output = role_check('postgresql', extra)
    assert result.returncode != 0
    assert 'postgresql_hba_extra[1]: ' in output, output[-3000:]
    assert message in output, output[-3000:]
    assert 'postgresql_hba_extra[0]' not in output


def test_postgresql_accepts_safe_pg_hba_lines():
    """No false alarm: valid lines pass the pg_hba check, and the role stops at the next one."""
    lines = [VALID_HBA, {'type': 'local', 'database': 'all', 'user': 'app', 'method': 'peer'},
             {'database': 'app,reports', 'user': '+readers', 'address': 'samenet', 'method': 'cert'}]
    extra = dict(SECRETS, postgresql_hba_extra=lines, pgha_rewind_password='')
    result, output = role_check('postgresql', extra)
    assert result.returncode != 0
    assert 'postgresql_hba_extra[' not in output, output[-3000:]
    assert 'Missing secrets: postgresql_rewind_password' in output, output[-3000:]


def test_postgresql_refuses_an_unsupported_postgresql_version():
    result, output = role_check('postgresql', dict(SECRETS, postgresql_version=16))
    assert result.returncode != 0
    assert 'PostgreSQL 16 was asked for' in output, output[-3000:]
    assert 'supports Debian 12 with PostgreSQL 15' in output
    assert 'postgresql_allow_unsupported_platform=true' in output


def test_postgresql_refuses_an_unsupported_distribution():
    """This machine's real facts against a supported list it is not on (the list is the
    role's internal variable, overridden here by an extra var)."""
    result, output = role_check('postgresql', dict(SECRETS, _postgresql_supported_platforms=['Debian 11']))
    assert result.returncode != 0
    assert 'localhost runs ' in output and 'pgha.cluster supports Debian 11' in output, output[-3000:]
    assert 'postgresql_allow_unsupported_platform=true' in output


def test_postgresql_unsupported_platform_override_passes_the_platform_check():
    extra = dict(SECRETS, postgresql_version=16, postgresql_allow_unsupported_platform=True, pgha_monitoring_password='')
    result, output = role_check('postgresql', extra)
    assert result.returncode != 0
    assert 'was asked for' not in output, output[-3000:]
    assert 'Missing secrets: postgresql_monitoring_password' in output, output[-3000:]


@pytest.mark.parametrize('extra, message', [
    # a conninfo without connect_timeout: repmgrd's check of a dead primary would hang for minutes
    ({'repmgr_conninfo_options': 'sslmode=prefer'}, 'must set connect_timeout'),
    ({'repmgr_conninfo_options': 'connect_timeout=0'}, 'must set connect_timeout'),
    # host, user... come from the role, never from the options
    ({'repmgr_conninfo_options': 'connect_timeout=2 host=elsewhere'}, 'must set connect_timeout'),
    # no primary in the inventory (no group 'primary', no repmgr_primary)
    ({'repmgr_members': ['db-1', 'db-2', 'db-3']}, 'No single primary for repmgr'),
    ({'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-9'}, 'No single primary for repmgr'),
    # an even number of voters: a partition can leave two halves that neither the
    # visibility consensus nor the fence can decide between
    ({'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-1'}, 'has 2 members (db-1, db-2): with an even'),
    ({'repmgr_members': ['db-1', 'db-2', 'db-3', 'db-4'], 'repmgr_primary': 'db-1',
      'repmgr_fence_isolated_primary': False}, 'has 4 members'),
    # a witness outside the group repmgr_witness: deploy/repmgr.yml would never set it up
    ({'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-1', 'repmgr_witness': 'client'},
     'It must be the host of the inventory group repmgr_witness'),
    # the witness runs a server of its own beside the cluster: a member cannot be it,
    # and deploy/repmgr.yml sets it up on the group repmgr_witness only
    ({'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-1', 'repmgr_witness': 'db-2'},
     "repmgr_witness='db-2' (inventory group repmgr_witness: none) must be a single inventory host that is not a member"),
    ({'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-1', 'repmgr_witness': 'nowhere'},
     'must be a single inventory host that is not a member'),
    ({'repmgr_fence_timeout': 0}, 'repmgr_fence_timeout (0) at least 1'),
    # the isolation rule of the shared fence: 0 is off, a negative time means nothing
    ({'repmgr_fence_isolated_after': -1}, 'or at least 1 s'),
    ({'repmgr_fence_interval': 0}, 'repmgr_fence_interval (0) must be at least 1 s'),
    ({'repmgr_guard_abort_after': -1}, 'repmgr_guard_abort_after (-1) must be 0 (no guard)'),
    # synchronous: a commit waiting for more standbys than there are others, or a
    # synchronous_standby_names of the user's next to the one the role writes
    ({'repmgr_synchronous_mode': True, 'repmgr_synchronous_count': 3}, 'repmgr_synchronous_count (3) of at least 1'),
    ({'repmgr_synchronous_mode': True, 'postgresql_settings': {'synchronous_standby_names': '*'}},
     'no synchronous_standby_names in postgresql_settings'),
    # retries shorter than the visibility window: repmgrd could promote nobody
    ({'repmgr_reconnect_attempts': 3, 'repmgr_reconnect_interval': 1, 'repmgr_monitor_interval_secs': 2},
     'must last at least two monitor intervals (4 s)'),
    ({'repmgr_reconnect_attempts': 1}, 'must last at least two monitor intervals (2 s)'),
    ({'repmgr_reconnect_attempts': 6, 'repmgr_reconnect_interval': 10, 'repmgr_monitor_interval_secs': 31},
     'must last at least two monitor intervals (62 s)'),
    # a fence input the role passes the primary_fence role itself (an extra var would outrank it)
    ({'primary_fence_interval': 5, 'primary_fence_watch': False},
     'the repmgr role sets these inputs of the primary_fence role itself: primary_fence_watch, primary_fence_interval.'),
])
def test_repmgr_refuses_bad_input_before_any_change(extra, message):
    """The role's first tasks (validate.yml) stop it on localhost, before any host is contacted."""
    result, output = run_role('repmgr', extra)
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert 'Nothing was changed' in output, output[-3000:]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


def test_repmgr_accepts_an_even_number_of_members_with_consensus_and_fence_off():
    """No false alarm: the majority check lets an explicit choice through, and the role
    stops at the next check (the members are not hosts of this play)."""
    extra = {'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-1', 'repmgr_password': 'secret',
             'repmgr_primary_visibility_consensus': False, 'repmgr_fence_isolated_primary': False}
    result, output = run_role('repmgr', extra)
    assert result.returncode != 0
    assert 'has 2 members' not in output, output[-3000:]
    assert 'repmgr needs unique node names' in output, output[-3000:]


def witness_inventory(tmp_path):
    path = tmp_path / 'witness.yml'
    path.write_text('all:\n  children:\n    repmgr_witness:\n      hosts:\n        witness1:\n')
    return path


def test_repmgr_refuses_a_witness_that_makes_the_voters_even(tmp_path):
    """3 members and a witness are 4 voters: refused before any change, as 2 members without one."""
    extra = {'repmgr_members': ['db-1', 'db-2', 'db-3'], 'repmgr_primary': 'db-1'}
    result, output = run_role('repmgr', extra, inventory=witness_inventory(tmp_path))
    assert result.returncode != 0
    assert 'has 3 members (db-1, db-2, db-3) and a witness (witness1): with an even number' in output, output[-3000:]
    assert 'drop the witness, or add or remove a member' in output
    assert 'Nothing was changed' in output and 'changed: ' not in output


def test_repmgr_accepts_two_members_and_a_witness(tmp_path):
    """The witness (the host of the group repmgr_witness) is the odd vote: 2 members and a witness pass the majority
    check with consensus and fence on, and the role stops at the next check (the members are not hosts of this play)."""
    extra = {'repmgr_members': ['db-1', 'db-2'], 'repmgr_primary': 'db-1', 'repmgr_password': 'secret'}
    result, output = run_role('repmgr', extra, inventory=witness_inventory(tmp_path))
    assert result.returncode != 0
    assert 'with an even number' not in output and 'not a member' not in output, output[-3000:]
    assert 'repmgr needs unique node names' in output, output[-3000:]
    # the witness's node id defaults to 99, after the members' 1 and 2
    assert '[1, 2, 99]' in output, output[-3000:]


@pytest.mark.parametrize('extra, message', [
    ({'repmgr_failover': 'sometimes'}, 'repmgr_failover must be one of'),
    ({'repmgr_reconnect_attempts': 'many'}, 'repmgr_reconnect_attempts'),
    ({'repmgr_log_level': 'LOUD'}, 'repmgr_log_level must be one of'),
])
def test_repmgr_argument_spec_rejects_bad_values(extra, message):
    result, output = run_role('repmgr', extra)
    assert result.returncode != 0
    assert message in output, output[-3000:]


PGPOOL_OK = {'pgpool_members': ['db-1', 'db-2', 'db-3'], 'pgpool_pcp_password': 'pcp-secret', 'pgpool_vip': '10.0.0.50'}


@pytest.mark.parametrize('extra, message', [
    # two watchdog members: either alone has no quorum, or half the votes
    ({'pgpool_members': ['db-1', 'db-2']}, 'needs at least 3 members'),
    # extra vars outrank what the role passes the streaming role: a synchronous cluster behind an
    # asynchronous Pgpool-II, the streaming role's fence next to Pgpool-II's, other members
    ({'streaming_synchronous_mode': True}, 'your inputs set them otherwise: streaming_synchronous_mode.'),
    ({'primary_fence_isolated_after': 10},
     'the pgpool role sets these inputs of the primary_fence role itself: primary_fence_isolated_after.'),
    ({'streaming_primary_fence': True, 'streaming_members': ['db-1', 'db-2', 'db-4'], 'streaming_primary': 'db-2'},
     'your inputs set them otherwise: streaming_members, streaming_primary, streaming_primary_fence.'),
    ({'pgpool_pcp_password': ''}, 'needs a PCP password'),
    ({'pgpool_client_users': [{'name': 'app'}]}, 'needs a PCP password'),
    # health checks off with automatic failover: a dead primary is seen late or never
    ({'pgpool_health_check_period': 0}, 'with health checks off'),
    # accepted, but with failover_on_backend_error off too nothing would notice a failed backend
    ({'pgpool_health_check_period': 0, 'pgpool_accept_failover_without_health_check': True,
      'pgpool_failover_on_backend_error': False},
     'with both off nothing would ever notice a failed backend'),
    ({'pgpool_health_check_retry_delay': -1}, 'retries and retry delay must be at least 0 (got 1, 1, 1, -1)'),
    # the guard must leave a check the time it may rightly take, and needs a timeout to act on
    ({'pgpool_health_check_guard_after': 1}, 'pgpool_health_check_guard_after=1: the guard interrupts'),
    ({'pgpool_health_check_guard_after': 3, 'pgpool_connect_timeout': 2500}, 'pgpool_connect_timeout=2500 ms'),
    ({'pgpool_health_check_timeout': 0}, 'needs a health check timeout above 0'),
    ({'pgpool_num_init_children': 200}, 'exceed PostgreSQL'),
    ({'pgpool_vip': 'vip.example'}, 'must be the IPv4 address'),
    # verified TLS for the failover/follow commands against servers without TLS
    ({'postgresql_tls': False}, 'pgpool_ssl_mode=verify-full verifies'),
    # 0 is off; a negative time means nothing
    ({'pgpool_fence_isolated_after': -1}, 'or at least 1 s'),
    ({'pgpool_fence_interval': 0}, 'must be at least 1 s'),
    # no timeout: a dead backend's address holds SHOW pool_nodes, pcp_node_info and so the failover
    ({'pgpool_connect_timeout': 0}, 'must be at least 1 ms'),
    ({'pgpool_stop_timeout': 0}, 'systemd reads 0 as no limit'),
])
def test_pgpool_refuses_bad_input_before_any_change(extra, message):
    """The role's first tasks (validate.yml) stop it on localhost, before any member is contacted.
    The virtual IP outside the members' subnet needs the members' facts: molecule/pgpool checks it."""
    result, output = run_role('pgpool', dict(PGPOOL_OK, **extra))
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert 'Nothing was changed' in output, output[-3000:]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


def test_pgpool_accepts_health_checks_off_only_when_told():
    result, output = run_role('pgpool', dict(PGPOOL_OK, pgpool_health_check_period=0,
                                             pgpool_accept_failover_without_health_check=True,
                                             pgpool_failover_on_backend_error=True,
                                             pgpool_num_init_children=200))
    assert result.returncode != 0
    # the health-check refusal is gone; the check after it (the pool size) still ran and refused
    assert 'with health checks off' not in output and 'exceed PostgreSQL' in output, output[-3000:]


def test_pgpool_accepts_streaming_inputs_that_agree_with_its_own():
    result, output = run_role('pgpool', dict(PGPOOL_OK, pgpool_synchronous_mode=True, streaming_synchronous_mode=True,
                                             streaming_members=['db-1', 'db-2', 'db-3'], streaming_primary_fence=False,
                                             pgpool_num_init_children=200))
    assert result.returncode != 0
    # the streaming inputs passed; the check after them (the pool size) still ran and refused
    assert 'sets these inputs of the streaming role' not in output and 'exceed PostgreSQL' in output, output[-3000:]


def test_pgpool_fence_timing_is_not_checked_when_the_fence_is_off():
    result, output = run_role('pgpool', dict(PGPOOL_OK, pgpool_fence_old_primary=False, pgpool_fence_isolated_after=-1,
                                             pgpool_num_init_children=200))
    assert result.returncode != 0
    assert 'or at least 1 s' not in output and 'exceed PostgreSQL' in output, output[-3000:]


def test_streaming_refuses_fence_inputs_it_sets_itself_before_any_change():
    """-e primary_fence_watch=false would outrank the streaming role's streaming_fence_old_primary: refused by name,
    pointing at the role's own fence inputs. A fence input the role leaves to the fence (its port) is no contradiction."""
    result, output = role_check('streaming', {'primary_fence_watch': False, 'primary_fence_port': 5433})
    assert result.returncode != 0
    assert ('the streaming role sets these inputs of the primary_fence role itself: primary_fence_watch. Remove them, '
            'and set its own fence inputs instead (streaming_fence_*') in output, output[-3000:]
    assert 'Nothing was changed' in output
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


# What the streaming and repmgr roles pass as include vars and name in postgresql_ha_requirements.inputs.
PASSED_INPUTS = {'solution': 'the unit role',
                 'inputs': {'postgresql_cluster_members': ['db-1', 'db-2'], 'postgresql_manage_accounts': True}}


@pytest.mark.parametrize('given, refused', [
    # pg_hba for other members than the HA role's: no standby could replicate
    ({'postgresql_cluster_members': ['db-1']}, 'postgresql_cluster_members'),
    # -e gives a string: 'false' still compares as a boolean
    ({'postgresql_cluster_members': ['db-1', 'db-2'], 'postgresql_manage_accounts': 'false'}, 'postgresql_manage_accounts'),
    ({'postgresql_cluster_members': [], 'postgresql_manage_accounts': False},
     'postgresql_cluster_members, postgresql_manage_accounts'),
    # the values the HA role passes, as -e gives them and the list in another order, are no contradiction
    ({'postgresql_cluster_members': ['db-2', 'db-1'], 'postgresql_manage_accounts': 'true'}, None),
])
def test_postgresql_refuses_an_input_that_outranks_what_the_ha_role_passes(given, refused):
    """An HA role passes some of this role's inputs as include vars and names them, with their values, in
    postgresql_ha_requirements.inputs; an extra var that outranks one with another value is refused by name."""
    result, output = role_check('postgresql', dict(SECRETS, postgresql_ha_requirements=PASSED_INPUTS, **given))
    message = [line for line in output.splitlines() if 'sets these itself' in line]
    if refused is None:
        assert not message, message
        assert 'Check that the user' in output or 'All assertions passed' in output, output[-3000:]
        return
    assert result.returncode != 0
    assert message, output[-3000:]
    assert 'the unit role sets these itself, and your inputs set them otherwise: %s.' % refused in message[0]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


def test_streaming_refuses_verified_replication_without_server_tls():
    """verify-full replication (the default) against servers without TLS would leave every standby
    unable to connect: refused before the first change, naming the plaintext opt-out."""
    result, output = role_check('streaming', {'postgresql_tls': False})
    assert result.returncode != 0
    assert 'streaming_ssl_mode=verify-full verifies' in output, output[-3000:]
    assert 'streaming_ssl_mode=prefer' in output


@pytest.mark.parametrize('extra, message', [
    ({'streaming_fence_interval': 0}, 'must be at least 1 s'),
    # 0 is never; a negative time means nothing
    ({'streaming_fence_isolated_after': -1}, 'or at least 1 s'),
])
def test_streaming_refuses_bad_fence_timing_before_any_change(extra, message):
    result, output = role_check('streaming', extra)
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


def test_patroni_refuses_verified_replication_without_server_tls():
    """The same for Patroni's members: refused before the first change, naming the opt-out."""
    result, output = role_check('patroni', {'patroni_postgresql_tls': False, 'patroni_members': ['localhost'],
                                            'patroni_bootstrap_host': 'localhost',
                                            'patroni_etcd_hosts': ['127.0.0.1:2379']})
    assert result.returncode != 0
    assert 'patroni_ssl_mode=verify-full verifies' in output, output[-3000:]
    assert 'patroni_ssl_mode=prefer' in output


def test_patroni_refuses_synchronous_reads_without_synchronous_mode():
    """Only the synchronous standby serving reads, in a cluster that has none, would leave the read port empty."""
    result, output = role_check('patroni', {'patroni_haproxy_replica_reads': 'synchronous', 'patroni_synchronous_mode': 'off',
                                            'patroni_members': ['localhost'], 'patroni_bootstrap_host': 'localhost',
                                            'patroni_etcd_hosts': ['127.0.0.1:2379']})
    assert result.returncode != 0
    assert 'synchronous needs patroni_synchronous_mode on or strict' in output, output[-3000:]


@pytest.mark.parametrize('interval', [0, 5])
def test_patroni_refuses_a_leader_fence_interval_outside_the_ttl(interval):
    """A fence that looks less often than the leader key lives would let another member be promoted first."""
    result, output = role_check('patroni', {'patroni_leader_fence_interval': interval, 'patroni_ttl': 5,
                                            'patroni_members': ['localhost'], 'patroni_bootstrap_host': 'localhost',
                                            'patroni_etcd_hosts': ['127.0.0.1:2379']})
    assert result.returncode != 0
    assert 'patroni_leader_fence_interval (%d) must be at least 1 and less than' % interval in output, output[-3000:]


def test_patroni_refuses_member_client_certificates_with_certificates_of_your_own():
    """The client certificates are signed with the generated lab CA: with your own certificate they cannot be."""
    result, output = role_check('patroni', {'patroni_postgresql_tls_cert': '/nonexistent/server.crt',
                                            'patroni_member_client_certificates': True,
                                            'patroni_members': ['localhost'], 'patroni_bootstrap_host': 'localhost',
                                            'patroni_etcd_hosts': ['127.0.0.1:2379']})
    assert result.returncode != 0
    assert 'Set patroni_member_client_certificates: false' in output, output[-3000:]


# The optional postgres_exporter. An explicit address keeps the check off this machine's network facts.
EXPORTER = dict(SECRETS, postgresql_exporter_enabled=True, postgresql_exporter_listen_address='192.0.2.10')


@pytest.mark.parametrize('extra, message', [
    # install-only mode: the HA manager owns the accounts, there is no monitoring account to log in with
    ({'postgresql_manage_cluster': False}, 'postgresql_exporter_enabled=true needs postgresql_manage_cluster=true'),
    ({'postgresql_exporter_port': 70000}, 'postgresql_exporter_port (70000) must be a TCP port, 1-65535'),
    ({'postgresql_exporter_port': 0}, 'postgresql_exporter_port (0) must be a TCP port'),
    ({'postgresql_exporter_port': 5433, 'postgresql_port': 5433}, "is PostgreSQL's port (postgresql_port)"),
    ({'postgresql_exporter_listen_address': '10.0.0.1 --web.config.file=/tmp/x'},
     'postgresql_exporter_listen_address must be an address'),
    ({'postgresql_exporter_listen_address': ''}, 'postgresql_exporter_listen_address is empty: no address was found'),
    # a standby's accounts come by replication, but the exporter still needs the password
    ({'postgresql_manage_accounts': False, 'pgha_monitoring_password': ''},
     'postgresql_monitoring_password (or pgha_monitoring_password) is empty'),
    ({'postgresql_exporter_extra_args': ['--web.listen-address=:9999']}, 'postgresql_exporter_extra_args[0] must be one flag'),
    ({'postgresql_exporter_extra_args': ['--log.level=warn', 'rm -rf /']}, 'postgresql_exporter_extra_args[1] must be one flag'),
    ({'postgresql_exporter_extra_args': ["--web.config.file='/etc/x'"]}, 'postgresql_exporter_extra_args[0] must be one flag'),
])
def test_postgresql_refuses_bad_exporter_input_before_any_change(extra, message):
    result, output = role_check('postgresql', dict(EXPORTER, **extra))
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert 'Nothing was changed' in output, output[-3000:]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]
    if 'extra_args[1]' in message:
        assert 'extra_args[0]' not in output


def test_postgresql_refuses_a_monitoring_password_the_exporter_would_log():
    """postgres_exporter 0.11 splits its connection string at spaces and logs it whole when that fails."""
    secret = 'two words-' + 'x' * 12
    result, output = role_check('postgresql', dict(EXPORTER, pgha_monitoring_password=secret))
    assert result.returncode != 0
    assert 'postgresql_monitoring_password contains whitespace' in output, output[-3000:]
    assert secret not in output and 'two words' not in output


def test_postgresql_accepts_good_exporter_input():
    """No false alarm: the exporter check passes, and the role stops at the next check (a missing secret)."""
    extra = dict(EXPORTER, pgha_rewind_password='', postgresql_exporter_port=9200, postgresql_exporter_listen_address='::',
                 postgresql_exporter_extra_args=['--disable-settings-metrics', '--web.config.file=/etc/pgha/web.yml'])
    result, output = role_check('postgresql', extra)
    assert result.returncode != 0
    assert 'postgresql_exporter' not in output, output[-3000:]
    assert 'Missing secrets: postgresql_rewind_password' in output, output[-3000:]


@pytest.mark.parametrize('extra, message', [
    ({'postgresql_exporter_port': 'metrics'}, 'postgresql_exporter_port'),
    ({'postgresql_exporter_enabled': 'perhaps'}, 'postgresql_exporter_enabled'),
    ({'postgresql_exporter_extra_args': '--log.level=warn'}, 'postgresql_exporter_extra_args'),
])
def test_postgresql_argument_spec_rejects_bad_exporter_values(extra, message):
    result, output = role_check('postgresql', dict(EXPORTER, **extra))
    assert result.returncode != 0
    assert message in output, output[-3000:]
    assert 'Validating arguments' in output or 'argument' in output.lower()


def test_patroni_refuses_the_postgresql_exporter_before_any_change():
    """Under Patroni the postgresql role runs in install-only mode: the exporter is refused by the patroni
    role's own validation, before install.yml installs anything."""
    extra = dict(SECRETS, pgha_patroni_api_password='unit-api', postgresql_exporter_enabled=True,
                 patroni_members=['localhost'], patroni_bootstrap_host='localhost', patroni_etcd_hosts=['127.0.0.1:2379'])
    result, output = role_check('patroni', extra)
    assert result.returncode != 0
    assert 'postgresql_exporter_enabled=true needs postgresql_manage_cluster=true' in output, output[-3000:]
    assert 'Set postgresql_exporter_enabled=false' in output
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


# What the patroni role's checks need to get as far as the postgresql role's.
PATRONI_MINIMAL = dict(SECRETS, pgha_patroni_api_password='unit-api', patroni_members=['localhost'],
                       patroni_bootstrap_host='localhost', patroni_etcd_hosts=['127.0.0.1:2379'])


@pytest.mark.parametrize('extra, refused', [
    # the postgresql role would create and start a Debian cluster next to the one Patroni creates
    ({'postgresql_manage_cluster': True}, 'postgresql_manage_cluster'),
    # the server of another version than the one Patroni's configuration runs
    ({'postgresql_version': 16}, 'postgresql_version'),
    ({'postgresql_manage_cluster': True, 'postgresql_version': '16'}, 'postgresql_manage_cluster, postgresql_version'),
])
def test_patroni_refuses_extra_vars_that_outrank_its_postgresql_include_before_any_change(extra, refused):
    """Extra vars outrank the include vars the patroni role passes to the postgresql role (install only, Patroni's
    version). The patroni role passes both as postgresql_ha_requirements too, and its checks refuse an extra var
    that contradicts them, naming it, before the first change."""
    result, output = role_check('patroni', dict(PATRONI_MINIMAL, **extra))
    assert result.returncode != 0
    message = [line for line in output.splitlines() if 'sets these itself' in line]
    assert message, output[-3000:]
    assert 'the patroni role sets these itself, and your inputs set them otherwise: %s.' % refused in message[0]
    assert 'Nothing was changed' in message[0]
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


@pytest.mark.parametrize('version', [15, '15'])
def test_patroni_checks_accept_the_postgresql_version_it_runs(tmp_path, version):
    """The version Patroni runs, given as an extra var (a number or a string), is no contradiction: the patroni
    role's validate entry point, the one deploy/patroni.yml runs before etcd, passes."""
    play = tmp_path / 'validate.yml'
    play.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'tasks': [{'ansible.builtin.include_role': {'name': 'pgha.cluster.patroni', 'tasks_from': 'validate'}}]}]))
    extra = dict(PATRONI_MINIMAL, postgresql_version=version, postgresql_manage_cluster=False)
    result = run([os.path.join(BIN, 'ansible-playbook'), '--check', str(play), '-e', json.dumps(extra)])
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'Check that the user\'s inputs leave what the HA role needs alone' in result.stdout
    assert 'sets these itself' not in result.stdout


def test_patroni_validate_entry_point_checks_the_argument_spec(tmp_path):
    """deploy/patroni.yml runs the validate entry point before etcd: it checks the same argument spec as main."""
    play = tmp_path / 'validate.yml'
    play.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'tasks': [{'ansible.builtin.include_role': {'name': 'pgha.cluster.patroni', 'tasks_from': 'validate'}}]}]))
    result = run([os.path.join(BIN, 'ansible-playbook'), '--check', str(play), '-e',
                  json.dumps(dict(PATRONI_MINIMAL, patroni_ttl='soon'))])
    assert result.returncode != 0
    assert 'patroni_ttl' in result.stdout and 'Validating arguments' in result.stdout, result.stdout[-3000:]


# What an HA role passes to the postgresql role (as the paf and repmgr roles do).
HA_REQUIREMENTS = {
    'solution': 'the unit role',
    'settings': {'primary_conninfo': 'host=10.0.0.100 user=replicator', 'recovery_target_timeline': 'latest'},
    'preload_libraries': ['repmgr'],
    'packages': ['resource-agents-paf'],
    'hba': [{'database': 'replication', 'user': 'all', 'method': 'reject', 'address': '10.0.0.100/32'}],
    'users': [{'name': 'repmgr', 'role_attr_flags': 'LOGIN,REPLICATION'}],
    'databases': [{'name': 'repmgr', 'owner': 'repmgr'}],
}


def test_postgresql_refuses_user_inputs_that_contradict_the_ha_role_before_any_change():
    """A user's setting, account or database that the HA role also sets would be dropped without a word: refused,
    naming each, never a value. A setting with the HA role's own value is not a contradiction."""
    extra = dict(SECRETS, postgresql_ha_requirements=HA_REQUIREMENTS,
                 postgresql_settings={'primary_conninfo': 'host=elsewhere password=unit-conninfo-secret',
                                      'recovery_target_timeline': 'latest', 'max_connections': 50},
                 postgresql_users=[{'name': 'app'}, {'name': 'repmgr'}],
                 postgresql_databases=[{'name': 'repmgr'}])
    result, output = role_check('postgresql', extra)
    assert result.returncode != 0
    message = [line for line in output.splitlines() if 'sets these itself' in line]
    assert message, output[-3000:]
    assert ('the unit role sets these itself, and your inputs set them otherwise: postgresql_settings.primary_conninfo, '
            'postgresql_users repmgr, postgresql_databases repmgr.') in message[0]
    assert 'recovery_target_timeline' not in message[0] and 'max_connections' not in message[0]
    assert 'Nothing was changed' in output
    assert 'unit-conninfo-secret' not in output
    assert 'changed: ' not in output and 'CHANGED' not in output, output[-3000:]


def test_postgresql_keeps_the_ha_requirements_when_the_user_passes_extra_vars(tmp_path):
    """Extra vars outrank every variable a role sets: -e postgresql_settings=... used to replace the settings
    the paf role passed (its primary_conninfo), and PAF never promoted. The requirements are their own input,
    merged by the postgresql role: both the user's values and the HA role's reach the server."""
    play = tmp_path / 'merge.yml'
    play.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'vars': {'postgresql_ha_requirements': HA_REQUIREMENTS},
        'tasks': [
            {'ansible.builtin.include_role': {'name': 'pgha.cluster.postgresql', 'tasks_from': 'validate.yml',
                                              'public': True}},
            {'ansible.builtin.debug': {'msg': 'MERGED {{ {"settings": _postgresql_settings, "packages": _postgresql_packages,'
                                              ' "hba": _postgresql_hba_lines, "users": _postgresql_users,'
                                              ' "databases": _postgresql_databases} | to_json }}'}},
        ]}]))
    extra = dict(SECRETS, postgresql_settings={'max_connections': 50, 'shared_preload_libraries': 'pg_stat_statements'},
                 postgresql_extra_packages=['postgresql-15-pgaudit'],
                 postgresql_hba_extra=[VALID_HBA], postgresql_users=[{'name': 'app'}], postgresql_databases=[{'name': 'app'}])
    result = run([os.path.join(BIN, 'ansible-playbook'), '--check', str(play), '-e', json.dumps(extra)])
    assert result.returncode == 0, result.stdout[-3000:]
    line = [line for line in result.stdout.splitlines() if '"msg": "MERGED ' in line]
    assert line, result.stdout[-3000:]
    merged = json.loads(json.loads('{' + line[0].strip() + '}')['msg'][len('MERGED '):])
    settings = merged['settings']
    assert settings['primary_conninfo'] == 'host=10.0.0.100 user=replicator'
    assert settings['recovery_target_timeline'] == 'latest'
    assert settings['max_connections'] == 50
    assert settings['shared_preload_libraries'] == 'pg_stat_statements,repmgr'
    assert settings['wal_level'] == 'replica'
    assert merged['packages'][-2:] == ['postgresql-15-pgaudit', 'resource-agents-paf']
    assert merged['hba'] == [VALID_HBA] + HA_REQUIREMENTS['hba']
    assert [user['name'] for user in merged['users']] == ['app', 'repmgr']
    assert [database['name'] for database in merged['databases']] == ['app', 'repmgr']
