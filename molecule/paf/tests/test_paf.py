"""The PAF cluster as Pacemaker and PostgreSQL report it, after converge and the side effects.

side_effect.yml ran a switchover, a host crash of the primary that Pacemaker
failed over by itself, and the rejoin of the crashed primary: two promotions,
so the primary is at least on timeline 3; the virtual IP must be on the
primary only, every standby must stream through it under its node name with a
positive promotion score, no marker written before the operations may be
missing, and the crashed node must have been fenced through the lab's power
switch.
"""
import os
import re

from pgha_nodes import member_name, psql, run_as_postgres

SERVICE = 'postgresql@15-main'
MARKERS = ['before-switchover', 'before-crash']
VIP = (os.environ.get('PGHA_PAF_IP_PREFIX') or '10.213.66') + '.100'
PASSFILE = '/var/lib/postgresql/.pgpass_paf'


def crm_mon(node):
    cmd = node.run('crm_mon --one-shot --output-as=xml')
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def test_exactly_one_primary_and_two_standbys(roles, primary, standbys):
    assert len(roles) == 3
    assert [roles[s] for s in standbys] == ['t', 't']


def test_pacemaker_promoted_the_primary_and_runs_every_node(nodes, primary, standbys):
    xml = crm_mon(nodes[primary])
    promoted = [line for line in xml.split('<resource ') if line.startswith('id="pgsqld"') and 'role="Promoted"' in line]
    assert len(promoted) == 1 and 'node name="%s"' % member_name(primary) in promoted[0], xml
    unpromoted = [line for line in xml.split('<resource ') if line.startswith('id="pgsqld"') and 'role="Unpromoted"' in line]
    assert sorted(u.split('node name="')[1].split('"')[0] for u in unpromoted) == sorted(map(member_name, standbys))
    for name in nodes:
        assert 'node name="%s"' % member_name(name) in xml
    assert xml.count('online="true"') >= 3
    assert 'failed="true"' not in xml, xml


def test_the_virtual_ip_is_on_the_primary_only(nodes, primary):
    for name, node in nodes.items():
        has_vip = ('inet %s/' % VIP) in node.run('ip -o -4 addr show').stdout
        assert has_vip == (name == primary), name


def test_the_timeline_moved_on_twice(nodes, primary):
    # timeline 1 at bootstrap, 2 after the switchover, 3 after the failover
    timeline = psql(nodes[primary], "SELECT timeline_id FROM pg_control_checkpoint()")
    assert int(timeline) >= 3


def test_both_standbys_stream_through_the_virtual_ip_under_their_node_names(nodes, primary, standbys):
    rows = psql(nodes[primary], "SELECT application_name, state FROM pg_stat_replication ORDER BY 1").splitlines()
    assert rows == ['%s|streaming' % member_name(s) for s in standbys]
    for standby in standbys:
        conninfo = psql(nodes[standby], "SELECT conninfo FROM pg_stat_wal_receiver")
        assert 'host=%s ' % VIP in conninfo and 'application_name=%s' % member_name(standby) in conninfo, conninfo
        assert 'sslmode=verify-full' in conninfo, conninfo


def test_replication_through_the_virtual_ip_is_encrypted(nodes, primary, standbys):
    # verify-full through the virtual IP works only if the certificate names it
    rows = psql(nodes[primary], "SELECT r.application_name, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) ORDER BY 1")
    assert rows.splitlines() == ['%s|t' % member_name(s) for s in standbys]


def test_every_standby_may_be_promoted(nodes, primary, standbys):
    for standby in standbys:
        cmd = nodes[primary].run('crm_attribute --node %s --name master-pgsqld --lifetime forever --query --quiet' % member_name(standby))
        assert cmd.rc == 0 and int(cmd.stdout.strip()) > 0, (standby, cmd.stdout, cmd.stderr)


def test_markers_written_before_the_operations_are_on_the_primary(nodes, primary):
    found = psql(nodes[primary], "SELECT name FROM pgha_markers ORDER BY name").splitlines()
    assert sorted(MARKERS) == sorted(set(found) & set(MARKERS))


def test_pacemaker_not_systemd_owns_postgresql(nodes):
    for name, node in nodes.items():
        # Debian's generator reports enabled-runtime until the next boot after
        # start.conf became manual; only a persistent 'enabled' would start it at boot.
        state = node.run('systemctl is-enabled %s' % SERVICE).stdout.strip()
        assert state in ('disabled', 'enabled-runtime'), (name, state)
        assert not node.service(SERVICE).is_running, name
        assert node.file('/etc/postgresql/15/main/start.conf').content_string.strip() == 'manual'
        assert node.run('pgrep -u postgres -x postgres').rc == 0, name


def test_a_node_cannot_replicate_from_itself(nodes, primary, standbys):
    ask = "PGPASSFILE=%s psql -XAtq 'host=%s port=5432 user=replicator dbname=replication replication=true connect_timeout=3' -c IDENTIFY_SYSTEM"
    own = run_as_postgres(nodes[primary], ask % (PASSFILE, VIP))
    assert own.rc != 0 and 'pg_hba.conf rejects replication connection' in own.stderr, own.stderr
    other = run_as_postgres(nodes[standbys[0]], ask % (PASSFILE, VIP))
    assert other.rc == 0, other.stderr


def test_corosync_runs_with_the_fast_totem_timing(nodes):
    for name, node in nodes.items():
        assert node.run('corosync-cmapctl -g runtime.config.totem.token').stdout.strip().endswith('= 1000'), name
        assert node.run('corosync-cmapctl -g totem.token_coefficient').stdout.strip().endswith('= 0'), name


def test_every_node_has_a_fence_device_and_stonith_is_on(nodes, primary):
    cmd = nodes[primary].run('crm_attribute --type crm_config --name stonith-enabled --query --quiet')
    assert cmd.stdout.strip() == 'true'
    for name in nodes:
        config = nodes[primary].run('pcs stonith config fence_%s' % member_name(name))
        assert config.rc == 0, config.stderr
        assert 'plug=%s' % name in config.stdout and 'pcmk_host_list=%s' % member_name(name) in config.stdout


def test_the_crashed_primary_was_fenced(nodes):
    """The host crash of side_effect.yml: a survivor fenced the crashed node
    through the lab's power switch (its history keeps the successful action)."""
    history = ''.join(node.run('stonith_admin --history "*" --verbose').stdout for node in nodes.values())
    fenced = {member_name(name) for name in nodes
              if re.search(r'(reboot|off) of %s successful' % member_name(name), history)}
    assert fenced, history


def test_no_secret_in_any_log(assert_no_secret_logged):
    """After the deployment, the re-run, the side effect and the checks above: no lab password in any log."""
    assert_no_secret_logged()


def test_the_postmaster_kill_was_recovered_in_place_and_forgotten(nodes, primary):
    """side_effect.yml killed the primary's postmaster after the rejoin: Pacemaker
    restarted it on the same node, and clear_failures then cleared its fail count
    without restarting it again (same start time as before the cleanup)."""
    before = nodes[primary].run('cat /root/pgha-postmaster-before-cleanup')
    assert before.rc == 0, 'the killed primary is no longer the primary: %s' % before.stderr
    assert psql(nodes[primary], 'SELECT pg_postmaster_start_time()') == before.stdout.strip()
    for name in nodes:
        count = nodes[primary].run('crm_failcount --query --quiet --resource pgsqld --node %s' % member_name(name))
        assert count.rc == 0 and count.stdout.strip() == '0', (name, count.stdout, count.stderr)
    defaults = nodes[primary].run('pcs resource defaults config').stdout
    assert 'failure-timeout=300s' in defaults and 'migration-threshold=5' in defaults, defaults
