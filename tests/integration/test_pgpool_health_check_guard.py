"""The pgpool role's guard of the health checks, against a real Pgpool-II on loopback.

Pgpool-II times a health check with one SIGALRM. When it goes off inside the
TLS handshake, the check goes on over plain TCP with no timeout and waits for
as long as the backend does not answer. The standby here sits behind a relay
that, once told to stall, answers a new connection's SSLRequest with 'S' and
then nothing: every health check of that node hits exactly that window. Without
the guard no check of the node fails although their timeout is 1 s; with the
guard (rendered from the role's template, watching this Pgpool-II's pid file)
the check fails within a few seconds, as its timeout says it should.
"""
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.helpers import pgpool as pgpool_helpers
from tests.helpers import tls
from tests.helpers.fixtures import free_port, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(REPO, 'roles', 'pgpool', 'templates', 'health_check_guard.sh.j2')
GUARD_AFTER = 2
# How long the node must stay up without the guard: several times the 1 s timeout.
UNGUARDED_WATCH = 8

pgpool_factory = pgpool_helpers.pgpool_factory   # the fixture, for the tests below
pytestmark = pytest.mark.skipif(pgpool_helpers.find_pgpool() is None, reason='Pgpool-II is not installed')


class StallingRelay:
    """A TCP relay to a backend; after stall(), new connections get 'S' to their SSLRequest, then silence."""

    def __init__(self, backend_port):
        self.backend_port = backend_port
        self.tls_context = None
        self.tls_stall_used = False
        self.tls_reading = threading.Event()
        self.port = free_port()
        self.stalling = threading.Event()
        self.closing = threading.Event()
        self.sockets = []
        self.listener = socket.create_server(('127.0.0.1', self.port))
        self.listener.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stall(self):
        self.stalling.set()

    def stall_after_tls(self, cert_file, key_file):
        """The next connection gets its TLS handshake, then silence; every later one is closed at once."""
        self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context.load_cert_chain(cert_file, key_file)
        self.tls_stall_used = False

    def close(self):
        self.closing.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()
        self.listener.close()

    def _accept(self):
        while not self.closing.is_set():
            try:
                client, unused = self.listener.accept()
            except socket.timeout:
                continue
            self.sockets.append(client)
            if self.tls_context is not None and self.tls_stall_used:
                client.close()
                continue
            if self.tls_context is not None:
                self.tls_stall_used = True
                target = self._silence_after_tls
            else:
                target = self._silence if self.stalling.is_set() else self._relay
            threading.Thread(target=target, args=(client,), daemon=True).start()

    def _read_ssl_request(self, client):
        """The 8 bytes of the SSLRequest, answered with 'S'; False when the client went away."""
        client.settimeout(0.2)
        request = b''
        while len(request) < 8 and not self.closing.is_set():
            try:
                chunk = client.recv(8 - len(request))
            except socket.timeout:
                continue
            except OSError:
                return False
            if not chunk:
                return False
            request += chunk
        try:
            client.sendall(b'S')
        except OSError:
            return False
        return True

    def _silence_after_tls(self, client):
        if not self._read_ssl_request(client):
            return
        client.settimeout(5)
        try:
            secured = self.tls_context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            return
        self.sockets.append(secured)
        secured.settimeout(0.2)
        # the startup packet comes over TLS and is never answered
        while not self.closing.is_set():
            try:
                if not secured.recv(4096):
                    return
                self.tls_reading.set()
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return

    def _silence(self, client):
        if not self._read_ssl_request(client):
            return
        # the TLS handshake that follows is read and never answered
        while not self.closing.is_set():
            try:
                if not client.recv(4096):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _relay(self, client):
        try:
            backend = socket.create_connection(('127.0.0.1', self.backend_port), timeout=5)
        except OSError:
            client.close()
            return
        self.sockets.append(backend)
        for source, sink in ((client, backend), (backend, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        source.settimeout(0.2)
        while not self.closing.is_set():
            try:
                data = source.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def render_guard(tmp_path, pid_file):
    variables = {'ansible_managed': 'test', 'pgpool_health_check_guard_after': GUARD_AFTER,
                 '_pgpool_pid_file': pid_file}
    with open(TEMPLATE) as handle:
        text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(handle.read()))
    script = tmp_path / 'pgha-pgpool-health-check-guard'
    script.write_text(text)
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def relayed_standby(pg_factory, pgpool_factory, tmp_path):
    """A primary, a standby behind a relay, and a Pgpool-II with TLS toward its backends: (pool, relay, certificates)."""
    primary = pg_factory.primary()
    standby = pg_factory.standby_of(primary)
    relay = StallingRelay(standby.port)
    (tmp_path / 'tls').mkdir()
    certificates = tls.make_server_cert(str(tmp_path / 'tls'), tls.make_ca(str(tmp_path / 'ca')))
    relayed = type('Relayed', (), {'port': relay.port, 'data_directory': standby.data_directory})()
    try:
        pool = pgpool_factory.start([primary, relayed], settings={
            'ssl': 'on',
            'ssl_cert': certificates['ssl_cert_file'],
            'ssl_key': certificates['ssl_key_file'],
            'health_check_timeout': '1',
            'health_check_max_retries': '0',
            'sr_check_period': '0',
            'log_min_messages': 'log',
        })
        yield pool, relay, certificates
    finally:
        relay.close()


@pytest.fixture
def stalled_standby(relayed_standby):
    """The relay stalls every new connection inside the TLS handshake."""
    pool, relay, unused_certificates = relayed_standby
    relay.stall()
    return pool


def pgpool_log(pool):
    # Read from the log, not through Pgpool-II: a client session or PCP command would itself
    # connect to the stalled node and wait.
    with open(pool.log_file, errors='replace') as handle:
        return handle.read()


FAILED = 'health check failed on node 1'


def test_without_the_guard_a_check_stalled_in_the_handshake_never_fails(stalled_standby):
    stalled_at = len(pgpool_log(stalled_standby))
    time.sleep(UNGUARDED_WATCH)
    since = pgpool_log(stalled_standby)[stalled_at:]
    assert FAILED not in since, since[-3000:]
    # the check did reach the stalled relay and lost its timer in the handshake
    assert 'SSL_connect' in since, since[-3000:]


def test_the_guard_makes_the_stalled_check_fail_and_leaves_the_healthy_node_alone(stalled_standby, tmp_path):
    stalled_at = len(pgpool_log(stalled_standby))
    guard = subprocess.Popen(['bash', render_guard(tmp_path, stalled_standby.pid_file)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: FAILED in pgpool_log(stalled_standby)[stalled_at:], timeout=GUARD_AFTER + 8, interval=0.3,
                 what='the stalled health check to fail')
        since = pgpool_log(stalled_standby)[stalled_at:]
        # taken for what it is: the check's own timeout
        assert FAILED + ' (timeout:1)' in since, since[-3000:]
        assert 'health check failed on node 0' not in since, since[-3000:]
    finally:
        guard.terminate()
        output, unused = guard.communicate(timeout=10)
    assert 'the health check of backend node 1 (pid' in output, output
    assert 'backend node 0' not in output, output


def start_guard(tmp_path, pool):
    return subprocess.Popen(['bash', render_guard(tmp_path, pool.pid_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop_guard(guard):
    guard.terminate()
    output, unused = guard.communicate(timeout=10)
    return output


def test_a_check_stuck_in_a_tls_read_is_killed_and_started_again(relayed_standby, tmp_path):
    """The backend answers the TLS handshake, then nothing (its packets dropped mid-authentication).
    Pgpool-II's TLS read takes the alarm's EINTR for "want read" and reads again, so SIGALRM alone
    cannot end the check; the guard's SIGKILL does, and the new check process (its connection
    refused now, as a cut-off host's would time out) fails as it should."""
    pool, relay, certificates = relayed_standby
    # the certificate settings come quoted for a configuration file
    relay.stall_after_tls(certificates['ssl_cert_file'].strip("'"), certificates['ssl_key_file'].strip("'"))
    stalled_at = len(pgpool_log(pool))
    assert relay.tls_reading.wait(10), 'no health check reached the TLS stall'
    guard = start_guard(tmp_path, pool)
    try:
        wait_for(lambda: FAILED in pgpool_log(pool)[stalled_at:], timeout=3 * GUARD_AFTER + 10, interval=0.3,
                 what='the stuck health check to be replaced and fail')
    finally:
        output = stop_guard(guard)
    assert 'sending it SIGALRM' in output, output
    # the alarm did not end it: the guard had to kill it
    assert 'again since its SIGALRM' in output and 'sending it SIGKILL' in output, output
    assert 'backend node 0' not in output, output
    assert 'health check failed on node 0' not in pgpool_log(pool)[stalled_at:]
