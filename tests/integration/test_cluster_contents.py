"""roles/postgresql/files/cluster_contents.py tells a fresh cluster from one that holds data.

The postgresql role drops a cluster in its way only when this script says it is
as initdb left it; every other cluster is refused. Real servers, real initdb.
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'roles', 'postgresql', 'files', 'cluster_contents.py')


def contents(instance):
    # no postgresql.conf names a data directory: the second argument is used
    result = subprocess.run([sys.executable, SCRIPT, '/nonexistent/postgresql.conf', instance.data_directory],
                            capture_output=True, text=True, check=True, timeout=30)
    return json.loads(result.stdout)


@pytest.fixture
def fresh(pg_factory):
    instance = pg_factory.new_instance('fresh')
    instance.initdb()
    instance.start()
    return instance


def test_a_fresh_cluster_holds_no_data(fresh):
    # a role and a grant are not data to lose
    fresh.sql('CREATE ROLE someone LOGIN')
    found = contents(fresh)
    assert found['holds_data'] is False, found
    fresh.stop()
    assert contents(fresh)['holds_data'] is False


@pytest.mark.parametrize('statement, key', [
    ('CREATE TABLE orders (id int)', 'user_relation_files'),
    ('CREATE SEQUENCE order_ids', 'user_relation_files'),
    ('CREATE DATABASE shop', 'user_databases'),
    ('SELECT lo_create(0)', 'large_objects'),
])
def test_user_objects_count_as_data(fresh, statement, key):
    fresh.sql(statement)
    found = contents(fresh)
    assert found['holds_data'] is True and found[key], found
    # the same answer with the server stopped
    fresh.stop()
    assert contents(fresh)['holds_data'] is True


def test_data_directory_is_read_from_postgresql_conf(tmp_path, fresh):
    fresh.sql('CREATE TABLE orders (id int)')
    conf = tmp_path / 'postgresql.conf'
    conf.write_text("port = 5433\ndata_directory = '%s'\t\t# use data in another directory\n" % fresh.data_directory)
    result = subprocess.run([sys.executable, SCRIPT, str(conf), '/nonexistent'], capture_output=True, text=True,
                            check=True, timeout=30)
    found = json.loads(result.stdout)
    assert found['data_directory'] == fresh.data_directory
    assert found['holds_data'] is True
