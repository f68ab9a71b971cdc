"""Issue 11, secrets in logs: a password put inside a DSN/conninfo never reaches the target's log.

Ansible logs every module invocation to the target's syslog/journal before
the module runs; the modules refuse such a password with a message that names
the no_log option to use, and neither the log nor the result carries it.
"""
import json

import pytest

from tests.helpers.fixtures import run_module

SECRET = 'Dsn-Secret-pw9'


def assert_refused_without_leak(result, log, option):
    assert result.failed, result
    assert 'must not contain a password' in result['msg'] and option in result['msg'], result['msg']
    assert SECRET not in json.dumps(result)
    assert log, 'the invocation was not logged at all'
    assert not [line for line in log if SECRET in line], log


@pytest.mark.parametrize('option, value', [
    ('dsn', "host=127.0.0.1 port=1 user=postgres password=%s" % SECRET),
    ('dsn', "host=127.0.0.1 port=1 password = '%s' user=postgres" % SECRET),
    ('dsn', 'postgresql://postgres:%s@127.0.0.1:1/postgres' % SECRET),
    ('dsn', 'postgresql://postgres@127.0.0.1:1/postgres?password=%s' % SECRET),
    ('read_dsn', 'host=127.0.0.1 port=1 password=%s' % SECRET),
    ('verify_dsns', ['host=127.0.0.1 port=1', 'host=127.0.0.1 port=2 password=%s' % SECRET]),
    ('split_brain_dsns', ['host=127.0.0.1 port=1', 'host=127.0.0.1 port=2 password=%s' % SECRET]),
])
def test_write_probe_dsn_password_is_refused_and_never_logged(module_log, option, value):
    args = dict(dsn='host=127.0.0.1 port=1 user=postgres', duration=2)
    args[option] = value
    for check_mode in (True, False):
        del module_log[:]
        result = run_module('write_probe', args, check_mode=check_mode)
        assert_refused_without_leak(result, module_log, option)
        assert 'password option' in result['msg']


@pytest.mark.parametrize('entry', [
    "host=127.0.0.1 port=1 password=%s" % SECRET,
    'postgresql://postgres:%s@127.0.0.1:1/postgres' % SECRET,
])
def test_promote_peer_password_is_refused_and_never_logged(module_log, entry):
    args = dict(login_host='127.0.0.1', login_port=1, expected_primary_absent=['127.0.0.1:2', entry])
    result = run_module('promote', args)
    assert_refused_without_leak(result, module_log, 'expected_primary_absent')
    assert 'login_password' in result['msg']
