"""The verify tests' shell helpers (molecule/pgha_nodes.py) pass SQL to psql unchanged.

A stand-in node runs the command through this machine's sh, with runuser dropped
and psql replaced by printf, so what psql would have received is printed back.
"""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'molecule'))
import pgha_nodes  # noqa: E402  pylint: disable=wrong-import-position


class Result:
    def __init__(self, completed):
        self.rc, self.stdout, self.stderr = completed.returncode, completed.stdout, completed.stderr


class LocalNode:
    """Runs a testinfra-style command here; psql prints its arguments, one per bracket."""

    def __init__(self, bin_directory):
        self.bin_directory = str(bin_directory)

    def run(self, command):
        assert command.startswith('runuser -u postgres -- sh -c ')
        command = command[len('runuser -u postgres -- '):]
        return Result(subprocess.run(['sh', '-c', command], capture_output=True, text=True, check=False, timeout=30,
                                     env=dict(os.environ, PATH=self.bin_directory + ':' + os.environ['PATH'])))


@pytest.fixture(name='node')
def fixture_node(tmp_path):
    psql = tmp_path / 'psql'
    psql.write_text("#!/bin/sh\nprintf '[%s]' \"$@\"\n")
    psql.chmod(0o755)
    return LocalNode(tmp_path)


@pytest.mark.parametrize('sql', [
    "SELECT 'it''s'",
    'SELECT "Column" FROM "Table"',
    "DO $$BEGIN RAISE NOTICE '$HOME `id` $(id)'; END$$",
    'SELECT E\'a\\nb\'',
])
def test_psql_passes_the_statement_unchanged(node, sql):
    output = pgha_nodes.psql(node, sql)
    assert output == '[-XAtq][-v][ON_ERROR_STOP=1][-d][postgres][-c][%s]' % sql


def test_psql_takes_the_environment_and_connection_options(node):
    output = pgha_nodes.psql(node, 'SELECT 1', database='app db', environment='PGCONNECT_TIMEOUT=3',
                             connection='-h 127.0.0.1 -p 9999')
    assert output == '[-XAtq][-v][ON_ERROR_STOP=1][-h][127.0.0.1][-p][9999][-d][app db][-c][SELECT 1]'


def test_psql_fails_the_test_on_an_error(node):
    with pytest.raises(AssertionError):
        pgha_nodes.psql(node, 'SELECT 1', connection='; false')
