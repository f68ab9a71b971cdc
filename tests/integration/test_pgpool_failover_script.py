"""The pgpool role's failover command against real PostgreSQL servers on loopback.

Pgpool-II names the next live node as the new primary (%m). The script must
promote the standby that has received the most WAL instead: with
synchronous_standby_names = ANY 1 (...) an acknowledged commit may be on the
other standby only. Rendered from the role's template, run as Pgpool-II runs
it (the failed primary already down), and judged by the servers' state.
"""
import os
import subprocess

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.helpers.fixtures import SUPERUSER_PASSWORD, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, 'roles', 'pgpool', 'templates', 'pgha_failover.sh.j2')
MEMBERS = ['pg1', 'pg2', 'pg3']


def render_script(tmp_path, instances):
    """The role's failover script for these instances (node ids 0, 1, 2 in MEMBERS' order)."""
    passfile = tmp_path / 'pgpass'
    passfile.write_text('127.0.0.1:*:*:postgres:%s\n' % SUPERUSER_PASSWORD)
    passfile.chmod(0o600)
    variables = {
        'ansible_managed': 'test',
        'pgpool_members': MEMBERS,
        '_pgpool_names': {m: m for m in MEMBERS},
        'postgresql_member_addresses': {m: '127.0.0.1' for m in MEMBERS},
        'hostvars': {m: {'postgresql_port': inst.port} for m, inst in zip(MEMBERS, instances)},
        'postgresql_port': 5432,
        'pgpool_passfile': str(passfile),
        'pgpool_ssl_mode': 'disable',
        '_pgpool_ssl_root_cert': '',
    }
    with open(TEMPLATE) as handle:
        text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(handle.read()))
    script = tmp_path / 'pgha_failover.sh'
    script.write_text(text)
    return script


def fail_over_pg1(tmp_path, pg_bin_dir, instances):
    """The role's script for these instances, run as Pgpool-II runs it when pg1 (node 0,
    the primary) failed and pg2 (node 1) is its candidate: %d %h %m %H %r %P."""
    script = render_script(tmp_path, instances)
    failed_id, candidate_id, candidate = 0, 1, instances[1]
    env = dict(os.environ, PATH=pg_bin_dir + ':' + os.environ['PATH'])
    return subprocess.run(['sh', str(script), str(failed_id), '127.0.0.1', str(candidate_id), '127.0.0.1',
                           str(candidate.port), str(failed_id)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def caught_up(standby, primary_lsn):
    return standby.scalar("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (primary_lsn,))


@pytest.fixture
def primary_and_two_standbys(pg_factory):
    primary = pg_factory.primary(name='pg1')
    primary.sql('CREATE TABLE acknowledged (id int PRIMARY KEY)')
    behind = pg_factory.standby_of(primary, name='pg2')
    ahead = pg_factory.standby_of(primary, name='pg3')
    lsn = primary.scalar('SELECT pg_current_wal_lsn()::text')
    for standby in (behind, ahead):
        wait_for(lambda s=standby: caught_up(s, lsn), what='%s streaming' % standby.data_directory)
    return primary, behind, ahead


def test_promotes_the_standby_with_the_most_wal_not_pgpools_candidate(primary_and_two_standbys, pg_bin_dir, tmp_path):
    primary, behind, ahead = primary_and_two_standbys
    # pg2 stops receiving; a commit reaches pg3 only (as ANY 1 may acknowledge it), then the primary dies.
    behind.sql("ALTER SYSTEM SET primary_conninfo = ''")
    behind.sql('SELECT pg_reload_conf()')
    wait_for(lambda: behind.scalar('SELECT count(*) FROM pg_stat_wal_receiver') == 0, what='pg2 stops receiving')
    primary.sql('INSERT INTO acknowledged SELECT generate_series(1, 1000)')
    lsn = primary.scalar('SELECT pg_current_wal_lsn()::text')
    wait_for(lambda: caught_up(ahead, lsn), what='pg3 received the commit')
    primary.stop(mode='immediate')

    result = fail_over_pg1(tmp_path, pg_bin_dir, [primary, behind, ahead])

    assert result.returncode == 0, result.stderr
    assert 'node 2 (127.0.0.1) has received more WAL' in result.stderr, result.stderr
    wait_for(lambda: ahead.in_recovery() is False, what='pg3 promoted')
    assert behind.in_recovery() is True
    assert ahead.scalar('SELECT count(*) FROM acknowledged') == 1000
    # the other members' slots are on the new primary
    assert sorted(r['slot_name'] for r in ahead.sql('SELECT slot_name FROM pg_replication_slots')) == ['pg1', 'pg2']


def test_keeps_pgpools_candidate_when_no_standby_has_more_wal(primary_and_two_standbys, pg_bin_dir, tmp_path):
    primary, first, second = primary_and_two_standbys
    primary.stop(mode='fast')      # both standbys receive the shutdown checkpoint: equal WAL
    wait_for(lambda: first.scalar('SELECT pg_last_wal_receive_lsn()') == second.scalar('SELECT pg_last_wal_receive_lsn()'),
             what='both standbys at the same WAL')

    result = fail_over_pg1(tmp_path, pg_bin_dir, [primary, first, second])

    assert result.returncode == 0, result.stderr
    assert 'received more WAL' not in result.stderr, result.stderr
    wait_for(lambda: first.in_recovery() is False, what='pg2 promoted')
    assert second.in_recovery() is True


def test_a_candidate_already_promoted_is_kept_and_no_other_standby_promoted(
        primary_and_two_standbys, pg_bin_dir, tmp_path):
    """Pgpool-II may run the failover command again after the candidate was promoted. Its
    WAL position then reads as nothing (it is no standby), and the script used to take any
    standby for "ahead" of it and promote a second primary."""
    primary, first, second = primary_and_two_standbys
    primary.stop(mode='fast')
    first.sql('SELECT pg_promote(true, 60)')
    wait_for(lambda: first.in_recovery() is False, what='pg2 promoted')

    result = fail_over_pg1(tmp_path, pg_bin_dir, [primary, first, second])

    assert result.returncode == 0, result.stderr
    assert 'node 1 (127.0.0.1) already runs as primary' in result.stderr, result.stderr
    assert 'received more WAL' not in result.stderr, result.stderr
    assert second.in_recovery() is True
    assert first.in_recovery() is False


def test_a_candidate_that_does_not_answer_gives_way_to_a_live_standby(primary_and_two_standbys, pg_bin_dir, tmp_path):
    primary, first, second = primary_and_two_standbys
    primary.stop(mode='fast')
    first.stop(mode='immediate')

    result = fail_over_pg1(tmp_path, pg_bin_dir, [primary, first, second])

    assert result.returncode == 0, result.stderr
    assert 'node 1 (127.0.0.1) does not answer: looking for another standby' in result.stderr, result.stderr
    wait_for(lambda: second.in_recovery() is False, what='pg3 promoted')
