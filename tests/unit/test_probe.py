"""Unit tests for the write probe core and the module's input checks (no server)."""
import json
from array import array

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import probe as core
from ansible_collections.pgha.cluster.plugins.module_utils.probe import (
    Endpoint, ProbeConfig, ProbeConfigError, WriteProbe, quote_table)
from tests.helpers.fixtures import run_module

DSN = 'host=127.0.0.1 port=1 user=postgres dbname=postgres'


@pytest.mark.parametrize('table, quoted', [('pgha_write_probe', '"pgha_write_probe"'),
                                           ('drills.probe_2', '"drills"."probe_2"')])
def test_quote_table_accepts_plain_identifiers(table, quoted):
    assert quote_table(table) == quoted


@pytest.mark.parametrize('table', ['', 'Probe', 'a.b.c', 'x; drop table y', 'a"b', '1abc', 'a' * 64, None])
def test_quote_table_rejects_everything_else(table):
    with pytest.raises(ProbeConfigError, match='table'):
        quote_table(table)


def test_multi_host_dsn_is_split_in_libpq_order():
    endpoint = Endpoint('host=10.0.0.1,10.0.0.2 port=5433,5434 user=u target_session_attrs=read-write', 'pw')
    assert endpoint.label == '10.0.0.1:5433,10.0.0.2:5434'
    (label1, first), (label2, second) = endpoint.attempts
    assert (first['host'], first['port'], second['host'], second['port']) == ('10.0.0.1', '5433', '10.0.0.2', '5434')
    assert first['target_session_attrs'] == 'read-write' and first['password'] == 'pw'
    assert first['application_name'] == core.APPLICATION_NAME


def test_config_bounds_tcp_retransmissions_by_the_write_timeout():
    config = ProbeConfig(dsn='host=a user=u tcp_user_timeout=9000', read_dsn='host=b', duration=5, write_timeout=1.5)
    assert config.endpoint.attempts[0][1]['tcp_user_timeout'] == '9000'  # the user's choice wins
    assert config.read_endpoint.attempts[0][1]['tcp_user_timeout'] == '1500'


def test_one_port_applies_to_every_host_and_uris_work():
    assert Endpoint('postgresql://u@a:6000,b:6001/db').label == 'a:6000,b:6001'
    # As in libpq, a host without its own port in a URI uses the default one.
    assert Endpoint('postgresql://u@a,b:6000/db').label == 'a:5432,b:6000'
    assert Endpoint('host=a,b port=7000').label == 'a:7000,b:7000'
    assert Endpoint('dbname=x').label == 'local:5432'


@pytest.mark.parametrize('dsn', ['host=a password=secret', 'postgresql://u:secret@a/db'])
def test_password_in_dsn_is_refused_without_echo(dsn):
    with pytest.raises(ProbeConfigError) as info:
        Endpoint(dsn)
    assert 'password' in str(info.value) and 'secret' not in str(info.value)


def test_mismatched_ports_and_bad_syntax_are_refused():
    with pytest.raises(ProbeConfigError, match='ports'):
        Endpoint('host=a,b,c port=1,2')
    with pytest.raises(ProbeConfigError, match='not a valid') as info:
        Endpoint("host=a password='unterminated")
    assert 'unterminated' not in str(info.value)


@pytest.mark.parametrize('option, value', [
    ('duration', 0), ('duration', 3601), ('interval_ms', 0), ('connect_timeout', 0),
    ('write_timeout', 0), ('split_brain_interval_ms', 5), ('stale_read_bound_ms', -1),
    ('run_id', 'has space'), ('split_brain_dsns', [DSN]),
])
def test_config_names_the_bad_option(option, value):
    args = dict(dsn=DSN, duration=5)
    args[option] = value
    with pytest.raises(ProbeConfigError, match=option):
        ProbeConfig(**args)


def test_fault_options_are_exclusive_and_run_id_defaults():
    with pytest.raises(ProbeConfigError, match='mutually exclusive'):
        ProbeConfig(dsn=DSN, duration=5, fault_at=1.0, fault_marker_file='/tmp/x')
    first, second = ProbeConfig(dsn=DSN, duration=5), ProbeConfig(dsn=DSN, duration=5)
    assert first.run_id != second.run_id
    assert first.settings()['endpoint'] == DSN and first.settings()['interval_ms'] == 10


def _probe_with(acked, failed):
    probe = WriteProbe(ProbeConfig(dsn=DSN, duration=5))
    probe._start_mono, probe._start_wall = 100.0, 1000.0
    probe._acked_mono = array('d', acked)
    probe._fail_mono = array('d', failed)
    return probe


def test_outage_is_measured_from_the_fault_to_the_write_after_the_first_failure():
    # Acks every 10 ms, a write acknowledged just after the fault, then an outage of 2 s.
    probe = _probe_with([100.00, 100.01, 100.02, 102.50, 102.51], [100.03, 100.5, 102.4])
    assert probe._outage_after(1000.015) == pytest.approx(2.485)
    # Nothing failed after the fault: the first write after it.
    assert probe._outage_after(1002.45) == pytest.approx(0.05)
    # No write after the fault at all.
    assert probe._outage_after(1003.0) is None


def test_split_brain_rounds_merge_into_episodes():
    probe = _probe_with([], [])
    episode = None
    for mono, nodes in ((100.0, ['a']), (100.2, ['a', 'b']), (100.4, ['a', 'b']), (100.6, ['a']),
                        (100.8, ['a', 'b'])):
        episode = probe._record_split_brain(mono, nodes, episode)
    assert probe._split_brain_count == 3
    assert [(e['start'], e['end'], e['rounds']) for e in probe._split_brain] == [
        (1000.2, 1000.4, 2), (1000.8, 1000.8, 1)]


def test_module_rejects_bad_input_before_connecting(tmp_path):
    marker = tmp_path / 'fault'
    marker.write_text('')
    cases = [
        (dict(duration=0), 'duration'),
        (dict(interval_ms=0), 'interval_ms'),
        (dict(table='bad name'), 'table'),
        (dict(fault_marker_file=str(marker)), 'fault_marker_file'),
        (dict(fault_at=1.0, fault_marker_file=str(marker)), 'mutually exclusive'),
    ]
    for extra, word in cases:
        # port 1 is closed: reaching it would fail with a connection message instead.
        result = run_module('write_probe', dict(dict(dsn=DSN, duration=5), **extra))
        assert result.failed and word in result['msg'], result


def test_module_masks_a_password_given_in_a_dsn():
    result = run_module('write_probe', dict(dsn=DSN + ' password=Hush-hush-42', duration=5,
                                            verify_dsns=['host=a password=Other-secret-7']))
    assert result.failed and 'password' in result['msg']
    text = json.dumps(result)
    assert 'Hush-hush-42' not in text and 'Other-secret-7' not in text
