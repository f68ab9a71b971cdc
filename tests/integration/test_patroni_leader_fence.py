"""The patroni role's leader fence against a real PostgreSQL on loopback and a stand-in for
Patroni's REST API (GET /leader answers what each test sets; over HTTPS with a test CA).

Judged by the server: a primary whose Patroni was seen holding the key and then answers
503 is stopped; in every other case (never seen holding it, a new Patroni process, Patroni
paused, Patroni not answering, an unverifiable certificate, a standby) it keeps running.
"""
import importlib.util
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.fixtures import SUPERUSER_PASSWORD, free_port, wait_for
from tests.helpers.tls import make_ca, make_server_cert

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'roles', 'patroni', 'files', 'pgha_patroni_leader_fence.py')


def load_fence_module():
    spec = importlib.util.spec_from_file_location('pgha_patroni_leader_fence', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakePatroniApi:
    """GET /leader answers ``status`` with Patroni's JSON body (``pause`` among its fields)."""

    def __init__(self, tls_directory):
        self.status = 200
        self.pause = False
        self.requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                api.requests += 1
                body = {'state': 'running', 'role': 'master'}
                if api.pause:
                    body['pause'] = True
                raw = json.dumps(body).encode()
                self.send_response(api.status if self.path == '/leader' else 404)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.ca = make_ca(str(tls_directory))
        settings = make_server_cert(str(tls_directory), self.ca)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(settings['ssl_cert_file'].strip("'"), settings['ssl_key_file'].strip("'"))
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = 'https://127.0.0.1:%d/leader' % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def patroni_api(tmp_path):
    api = FakePatroniApi(tmp_path / 'tls')
    yield api
    api.close()


@pytest.fixture
def fence_for(pg_bin_dir, monkeypatch, patroni_api):
    """A fence watching ``server`` through the fake API; ``fence.patroni_pid`` is the Patroni
    process it sees (systemd's MainPID in a deployment)."""
    module = load_fence_module()
    # The test servers take the superuser's password on their socket too.
    monkeypatch.setenv('PGPASSWORD', SUPERUSER_PASSWORD)

    def make(server, cacert=None):
        fence = module.LeaderFence({
            'leader_url': patroni_api.url,
            'cacert': cacert or patroni_api.ca[0],
            'patroni_unit': 'patroni.service',
            'data_directory': server.data_directory,
            'socket_directory': os.path.dirname(server.data_directory),
            'port': server.port,
            'superuser': server.superuser,
            'bin_directory': pg_bin_dir,
            'interval': 1,
        })
        fence.patroni_pid = '4242'
        monkeypatch.setattr(fence, 'patroni_process', lambda: fence.patroni_pid)
        return fence
    return make


def still_primary(server):
    return server.is_running() and server.in_recovery() is False


def test_stops_a_primary_whose_patroni_lost_the_key(pg_factory, fence_for, patroni_api):
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    assert fence.check() == 'leader'
    assert fence.check() == 'leader'
    assert still_primary(primary)

    patroni_api.status = 503
    assert fence.check() == 'fenced'
    wait_for(lambda: not primary.is_running(), timeout=30, what='the primary to stop')
    # A clean (fast) shutdown: the shutdown checkpoint was written.
    controldata = primary.run('pg_controldata', '-D', primary.data_directory).stdout
    assert 'Database cluster state:               shut down' in controldata
    assert fence.check() == 'postgresql not answering'


def test_leaves_a_primary_never_seen_holding_the_key(pg_factory, fence_for, patroni_api):
    """A cluster being bootstrapped: PostgreSQL runs as a primary before Patroni takes the key."""
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    patroni_api.status = 503
    for _round in range(3):
        assert fence.check() == 'not armed'
    assert still_primary(primary)


def test_leaves_the_primary_of_a_restarted_patroni(pg_factory, fence_for, patroni_api):
    """A Patroni process restarted by systemd answers 503 until its first cycle takes the key back."""
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    assert fence.check() == 'leader'
    fence.patroni_pid = '4343'
    patroni_api.status = 503
    assert fence.check() == 'not armed'
    patroni_api.status = 200
    assert fence.check() == 'leader'
    assert still_primary(primary)


def test_leaves_a_restarted_postgresql_until_seen_holding_the_key(pg_factory, fence_for, patroni_api):
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    assert fence.check() == 'leader'
    primary.stop()
    primary.start()
    patroni_api.status = 503
    assert fence.check() == 'not armed'
    assert still_primary(primary)


def test_leaves_postgresql_alone_while_patroni_is_paused(pg_factory, fence_for, patroni_api):
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    assert fence.check() == 'leader'
    patroni_api.status, patroni_api.pause = 503, True
    assert fence.check() == 'paused'
    assert still_primary(primary)
    # Maintenance over, the key still lost: now it acts.
    patroni_api.pause = False
    assert fence.check() == 'fenced'
    wait_for(lambda: not primary.is_running(), timeout=30, what='the primary to stop')


def test_leaves_postgresql_alone_when_patroni_does_not_answer(pg_factory, fence_for, patroni_api):
    primary = pg_factory.primary(name='pg1')
    silent = 'https://127.0.0.1:%d/leader' % free_port()
    fence = fence_for(primary)
    assert fence.check() == 'leader'
    fence.settings['leader_url'] = silent
    assert fence.check() == 'patroni not answering'
    fence.patroni_pid = '0'
    assert fence.check() == 'patroni not running'
    assert still_primary(primary)
    assert patroni_api.requests == 1


def test_an_unverifiable_api_certificate_counts_as_no_answer(pg_factory, fence_for, patroni_api, tmp_path):
    primary = pg_factory.primary(name='pg1')
    other_ca = make_ca(str(tmp_path / 'other-ca'), name='other-ca')
    fence = fence_for(primary, cacert=other_ca[0])
    patroni_api.status = 503
    assert fence.check() == 'patroni not answering'
    assert still_primary(primary)


def test_does_not_ask_patroni_on_a_standby(pg_factory, fence_for, patroni_api):
    primary = pg_factory.primary(name='pg1')
    standby = pg_factory.standby_of(primary, name='pg2')
    fence = fence_for(standby)
    patroni_api.status = 503
    assert fence.check() == 'not primary'
    assert patroni_api.requests == 0
    assert standby.is_running() and standby.in_recovery()


def test_says_so_when_it_cannot_read_postgresql(pg_factory, fence_for, patroni_api, monkeypatch):
    """A fence that cannot log in would never find a primary: the deployment's check of one
    round must see that, not a quiet "not primary"."""
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    monkeypatch.setenv('PGPASSWORD', 'not-the-password')
    assert fence.check() == 'postgresql not answering'
    assert patroni_api.requests == 0
    assert still_primary(primary)


def test_signals_only_a_postmaster(pg_factory, fence_for, patroni_api, tmp_path):
    """A postmaster.pid naming another process (a PID reused after a crash) is not signalled:
    the round says the fence failed, and that process and the server live on."""
    primary = pg_factory.primary(name='pg1')
    fence = fence_for(primary)
    assert fence.check() == 'leader'
    stale = tmp_path / 'stale-data-directory'
    stale.mkdir()
    (stale / 'postmaster.pid').write_text('%d\n' % os.getpid())
    fence.settings['data_directory'] = str(stale)
    patroni_api.status = 503
    assert fence.check() == 'fence failed'
    assert still_primary(primary)
