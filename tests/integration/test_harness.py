"""The harness itself: a primary and a plain standby really replicate."""
from tests.helpers.fixtures import wait_for


def test_primary_and_standby_replicate(pg_factory):
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    primary.sql('CREATE TABLE t (id int)')
    primary.sql('INSERT INTO t VALUES (42)')
    assert standby.in_recovery() is True
    wait_for(lambda: standby.sql("SELECT to_regclass('t') IS NOT NULL AS ok")[0]['ok']
             and standby.scalar('SELECT count(*) FROM t') == 1, what='row on standby')
