"""Pure helpers of plugins/module_utils/instance.py (which server is which)."""
from ansible_collections.pgha.cluster.plugins.module_utils import instance

PID = ('4242\n/var/lib/postgresql/15/main\n1764570000\n5432\n/var/run/postgresql\n*\n'
       '  5432001    131072\nready   \n')


def test_postmaster_pid_fields():
    parsed = instance.parse_postmaster_pid(PID)
    assert parsed['pid'] == 4242 and parsed['port'] == '5432'
    assert parsed['socket_directories'] == '/var/run/postgresql' and parsed['listen_addresses'] == '*'


def test_identity_ignores_the_status_line_only():
    standby = instance.parse_postmaster_pid(PID.replace('ready', 'standby'))
    assert standby['identity'] == instance.parse_postmaster_pid(PID)['identity']
    other_host = instance.parse_postmaster_pid(PID.replace('4242', '4243'))
    assert other_host['identity'] != instance.parse_postmaster_pid(PID)['identity']


def test_no_postmaster_pid():
    assert instance.parse_postmaster_pid('') is None
    assert instance.parse_postmaster_pid(None) is None


def test_local_addresses_socket_first_then_loopback():
    parsed = instance.parse_postmaster_pid(PID)
    assert instance.local_addresses(parsed) == ['/var/run/postgresql', '127.0.0.1']
    only_socket = instance.parse_postmaster_pid(PID.replace('\n*\n', '\n\n'))
    assert instance.local_addresses(only_socket) == ['/var/run/postgresql']
    member = instance.parse_postmaster_pid(PID.replace('\n*\n', '\n10.0.0.11\n'))
    assert instance.local_addresses(member) == ['/var/run/postgresql', '10.0.0.11']
