"""Unit tests for the pure helpers of plugins/module_utils/replication.py."""
import datetime
import decimal
import os

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import replication as r


@pytest.mark.parametrize('name', ['a', 'standby_1', '0', 'x' * 63])
def test_valid_slot_names(name):
    assert r.validate_slot_name(name) is None


@pytest.mark.parametrize('name, fragment', [
    ('', 'must not be empty'),
    (None, 'must not be empty'),
    ('x' * 64, 'maximum is 63'),
    ('Standby', 'lower case'),
    ('with-dash', 'lower case'),
    ('with space', 'lower case'),
    ("a';drop", 'lower case'),
    ('trailing\n', 'lower case'),
    ('caf\u00e9', 'lower case'),
])
def test_invalid_slot_names(name, fragment):
    assert fragment in r.validate_slot_name(name)


def test_timeline_from_walfile():
    assert r.timeline_from_walfile('000000010000000000000001') == 1
    assert r.timeline_from_walfile('0000000A0000000000000003') == 10
    assert r.timeline_from_walfile('') is None
    assert r.timeline_from_walfile(None) is None
    assert r.timeline_from_walfile('zzzzzzzz00') is None


def test_history_file_name_and_parse():
    assert r.history_file_name(2) == '00000002.history'
    assert r.history_file_name(26) == '0000001A.history'
    text = ('1\t0/3000060\tno recovery target specified\n'
            '\n# comment\n'
            '2\t0/5000000\tat restore point "x"\n')
    assert r.parse_history_file(text) == [
        {'parent_timeline': 1, 'switchpoint': '0/3000060', 'reason': 'no recovery target specified'},
        {'parent_timeline': 2, 'switchpoint': '0/5000000', 'reason': 'at restore point "x"'},
    ]
    assert r.parse_history_file('') == []
    assert r.parse_history_file(None) == []
    assert r.parse_history_file('garbage\nx 0/1 y\n') == []


def test_latest_history_timeline(tmp_path):
    assert r.latest_history_timeline(str(tmp_path / 'missing')) is None
    assert r.latest_history_timeline(str(tmp_path)) is None
    for name in ('00000002.history', '0000000B.history', '000000010000000000000001', 'x.history'):
        open(os.path.join(str(tmp_path), name), 'w').close()
    assert r.latest_history_timeline(str(tmp_path)) == 11


@pytest.mark.parametrize('entry, expected', [
    ('db1:5433', {'host': 'db1', 'port': 5433}),
    ('10.0.0.1', {'host': '10.0.0.1', 'port': 5432}),
    ('[::1]:6543', {'host': '::1', 'port': 6543}),
    ('[fe80::1]', {'host': 'fe80::1', 'port': 5432}),
    ('host=db1 port=5432', {'conninfo': 'host=db1 port=5432'}),
    ('postgresql://u@db1/x', {'conninfo': 'postgresql://u@db1/x'}),
])
def test_parse_peer_valid(entry, expected):
    assert r.parse_peer(entry) == (expected, None)


@pytest.mark.parametrize('entry, fragment', [
    ('', 'empty'),
    ('db1:notaport', 'invalid port'),
    ('db1:70000', 'invalid port'),
    (':5432', 'missing host'),
    ('::1', 'IPv6'),
    ('[::1', 'brackets'),
    ('[::1]x', 'host:port'),
])
def test_parse_peer_invalid(entry, fragment):
    parsed, error = r.parse_peer(entry)
    assert parsed is None and fragment in error


@pytest.mark.parametrize('message, kind', [
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running', 'unreachable'),
    ('connection to server at "10.9.9.9", port 5432 failed: timeout expired', 'unreachable'),
    ('connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file or directory', 'unreachable'),
    ('could not translate host name "nope" to address: Name or service not known', 'unreachable'),
    ('connection to server at "127.0.0.1", port 5 failed: FATAL:  password authentication failed for user "x"',
     'rejected'),
    ('... failed: FATAL:  no pg_hba.conf entry for host "127.0.0.1"', 'rejected'),
    ('... failed: FATAL:  the database system is starting up', 'not_accepting'),
    ('... failed: FATAL:  the database system is not yet accepting connections', 'not_accepting'),
    ('', 'unreachable'),
])
def test_classify_connection_error(message, kind):
    assert r.classify_connection_error(message) == kind


def test_mask_and_find_conninfo_passwords():
    assert r.mask_conninfo_password("host=a password=s3cret user=b") == 'host=a password=******** user=b'
    assert r.mask_conninfo_password("password = 'a b\\'c' host=x") == 'password = ******** host=x'
    assert r.mask_conninfo_password('postgresql://u:pw@h/db') == 'postgresql://u:********@h/db'
    assert r.mask_conninfo_password('postgresql://h/db?password=pw&x=1') == 'postgresql://h/db?password=********&x=1'
    assert r.mask_conninfo_password('') == ''
    assert r.mask_conninfo_password(None) is None
    assert r.conninfo_passwords("host=a password='a b\\'c'") == ["a b'c"]
    assert r.conninfo_passwords('host=a password=x1 ') == ['x1']
    assert r.conninfo_passwords('postgresql://u:pw@h/db') == ['pw']
    assert r.conninfo_passwords('host=a') == []


def test_jsonable():
    assert r.jsonable(decimal.Decimal('3')) == 3
    assert r.jsonable(decimal.Decimal('1.5')) == 1.5
    assert r.jsonable(datetime.timedelta(seconds=1, microseconds=500000)) == 1.5
    assert r.jsonable(datetime.datetime(2024, 1, 2, 3, 4, 5)) == '2024-01-02T03:04:05'
    assert r.jsonable([1, object]) == [1, str(object)]
    assert r.jsonable_row({'a': decimal.Decimal('2'), 'b': None}) == {'a': 2, 'b': None}
    assert r.jsonable_row(None) is None


@pytest.mark.parametrize('message, listens', [
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', False),
    ('connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file or directory', False),
    ('connection to server at "10.9.9.9", port 5432 failed: timeout expired', True),
    ('connection to server at "10.9.9.9", port 5432 failed: No route to host', True),
    ('could not translate host name "nope" to address: Name or service not known', True),
])
def test_nothing_listens_only_when_the_host_said_so(message, listens):
    """A refusal is evidence that no server runs there; silence (a partition) is not."""
    assert r.nothing_listens(message) is (not listens)
