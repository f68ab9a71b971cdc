"""The pgpool role's follow_primary_command against real PostgreSQL servers on loopback.

Pgpool-II runs it once per node other than the new primary, the failed old
primary included (%d %h %p %m %H %r %P). A standby is repointed over SQL and
attached again once it streams the new timeline; the old primary is left alone
at once, without a connection attempt: after a host crash its address answers
nothing, and the 2-s connect timeout held up the other standby's follow.
Rendered from the role's template; pcp_attach_node is a recording stand-in
(there is no Pgpool-II here), and the servers' state is what is judged.
"""
import os
import subprocess

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.helpers.fixtures import SUPERUSER_PASSWORD, wait_for
from tests.helpers.listener import AcceptingListener

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, 'roles', 'pgpool', 'templates', 'pgha_follow_primary.sh.j2')


def render_script(tmp_path):
    passfile = tmp_path / 'pgpass'
    passfile.write_text('127.0.0.1:*:*:postgres:%s\n' % SUPERUSER_PASSWORD)
    passfile.chmod(0o600)
    variables = {
        'ansible_managed': 'test',
        'pgpool_passfile': str(passfile),
        'pgpool_pcppass_file': str(tmp_path / 'pcppass'),
        'pgpool_ssl_mode': 'disable',
        '_pgpool_ssl_root_cert': '',
        'pgpool_follow_timeout': 20,
        'pgpool_pcp_port': 9898,
        'pgpool_pcp_user': 'pgpool',
    }
    with open(TEMPLATE) as handle:
        text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(handle.read()))
    script = tmp_path / 'pgha_follow_primary.sh'
    script.write_text(text)
    # Pgpool-II's pcp_attach_node, recorded: the test has no Pgpool-II to attach to
    tools = tmp_path / 'bin'
    tools.mkdir()
    (tools / 'pcp_attach_node').write_text('#!/bin/sh\necho "$@" >> "%s"\n' % (tmp_path / 'attached'))
    (tools / 'pcp_attach_node').chmod(0o755)
    return script, tools


def follow(tmp_path, pg_bin_dir, node_id, node_host, node_port, new_id, new_port, old_primary_id):
    script, tools = render_script(tmp_path)
    env = dict(os.environ, PATH='%s:%s:%s' % (tools, pg_bin_dir, os.environ['PATH']))
    return subprocess.run(['sh', str(script), str(node_id), node_host, str(node_port), str(new_id), '127.0.0.1',
                           str(new_port), str(old_primary_id)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def failed_over(pg_factory):
    """pg1 was the primary and is gone; pg2 was promoted; pg3 still points at pg1."""
    primary = pg_factory.primary(name='pg1')
    primary.sql('CREATE TABLE acknowledged (id int PRIMARY KEY)')
    primary.sql("SELECT pg_create_physical_replication_slot('pg3')")
    promoted = pg_factory.standby_of(primary, name='pg2')
    other = pg_factory.standby_of(primary, name='pg3', slot='pg3')
    primary.sql('INSERT INTO acknowledged SELECT generate_series(1, 100)')
    lsn = primary.scalar('SELECT pg_current_wal_lsn()::text')
    for standby in (promoted, other):
        wait_for(lambda s=standby: s.scalar('SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn', (lsn,)),
                 what='%s caught up' % standby.data_directory)
    primary.stop(mode='immediate')
    promoted.sql('SELECT pg_promote(true, 60)')
    # what the failover command does next: a slot for every other member
    promoted.sql("SELECT pg_create_physical_replication_slot('pg3')")
    promoted.sql('INSERT INTO acknowledged SELECT generate_series(101, 200)')
    return primary, promoted, other


def test_the_other_standby_follows_the_new_primary_and_is_attached(failed_over, pg_bin_dir, tmp_path):
    unused_primary, promoted, other = failed_over
    result = follow(tmp_path, pg_bin_dir, 2, '127.0.0.1', other.port, 1, promoted.port, 0)
    assert result.returncode == 0, result.stderr
    assert 'node 2 (127.0.0.1) streams timeline 2' in result.stderr, result.stderr
    assert (tmp_path / 'attached').read_text().split()[-1] == '2'
    assert other.in_recovery()
    assert other.scalar("SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'") == 2
    wait_for(lambda: other.scalar('SELECT count(*) FROM acknowledged') == 200, what='pg3 replays the new writes')


def test_the_failed_old_primary_is_left_alone_without_a_connection(failed_over, pg_bin_dir, tmp_path):
    """%d equal to %P: left detached at once, nothing asked (a listener counts the connections)."""
    unused_primary, promoted, unused_other = failed_over
    with AcceptingListener() as listener:
        result = follow(tmp_path, pg_bin_dir, 0, '127.0.0.1', listener.port, 1, promoted.port, 0)
    assert result.returncode == 0, result.stderr
    assert 'node 0 (127.0.0.1) was the primary: left detached for a rejoin' in result.stderr
    assert listener.accepted == 0
    assert not (tmp_path / 'attached').exists()
    assert not promoted.in_recovery()
