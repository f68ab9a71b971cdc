"""The shared fence's isolation rule (roles/primary_fence), rendered as the role writes it and run
against a real PostgreSQL primary on loopback.

The fenced member is a real primary on 127.0.0.1; its only other member, pg2, is a socket on
127.0.0.2 at the same port, which the test makes reachable (it accepts), refusing (closed) or
unreachable (a listener whose accept queue is full: the kernel drops new handshakes, as a cut
network does). A primary cut off for primary_fence_isolated_after seconds must stop; one whose
peer refuses is not cut off; one that never reached a peer since it started is not armed.
"""
import os
import socket
import subprocess
import time

import pytest

from tests.helpers.listener import AcceptingListener
from tests.unit.test_primary_fence_start_check import render_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the fence runs its queries as postgres (setpriv)')

PEER = '127.0.0.2'


class Peer:
    """The other member's PostgreSQL port, as the fence's TCP probe sees it."""

    def __init__(self, port):
        self.port = port
        self.server = None      # accept(): completes every handshake
        self.full_queue = []    # cut(): a listener that never accepts and the handshakes that filled it

    def accept(self):
        """Complete every handshake and hang up."""
        self.close()
        self.server = AcceptingListener(PEER, self.port)

    def cut(self):
        """Drop every new handshake: a listener that never accepts, its queue filled."""
        self.close()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((PEER, self.port))
        listener.listen(0)
        self.full_queue.append(listener)
        for unused_attempt in range(2):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex((PEER, self.port))
            self.full_queue.append(client)
        time.sleep(0.2)

    def close(self):
        """Refuse: nothing listens."""
        if self.server:
            self.server.close()
            self.server = None
        for sock in self.full_queue:
            sock.close()
        self.full_queue = []


@pytest.fixture
def member(pg_factory):
    return pg_factory.primary('pg1')


@pytest.fixture
def peer(member):
    peer = Peer(member.port)
    yield peer
    peer.close()


@pytest.fixture
def fence_watch(member, pg_factory, tmp_path):
    """Start the watch of `member` (isolated after 1 s, probes every 0.5 s); yields its log file."""
    processes = []
    log = tmp_path / 'fence.log'

    def start():
        script = render_script(tmp_path, member, member.data_directory, pg_factory.bin_dir, peer_address=PEER,
                               primary_fence_isolated_after=1, primary_fence_probe_interval=0.5,
                               primary_fence_pg_service='pgha-test-no-such-unit')
        runtime = tmp_path / 'runtime'
        runtime.mkdir()
        handle = open(log, 'w')
        processes.append(subprocess.Popen(['sh', script, 'watch'], stdout=handle, stderr=subprocess.STDOUT,
                                          env=dict(os.environ, RUNTIME_DIRECTORY=str(runtime)),
                                          start_new_session=True))
        handle.close()
        return log
    yield start
    for process in processes:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)


def wait_until_stopped(member, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not member.is_running():
            return True
        time.sleep(0.1)
    return False


def test_a_primary_cut_off_from_every_member_stops(member, peer, fence_watch):
    peer.accept()
    log = fence_watch()
    time.sleep(2)
    assert member.is_running(), log.read_text()
    cut_at = time.monotonic()
    peer.cut()
    assert wait_until_stopped(member, 10), log.read_text()
    stopped_after = time.monotonic() - cut_at
    text = log.read_text()
    assert 'no other member reached on port %d for 1 s (cut off from the cluster)' % member.port in text, text
    # the fast shutdown's SIGINT came from the fence: the server says so in its log
    assert 'received fast shutdown request' in member.log_tail(50), (stopped_after, member.log_tail(50))


def test_a_member_that_refuses_counts_as_reached(member, peer, fence_watch):
    """A refusal comes from the member's kernel: the network is up, the member's PostgreSQL is not."""
    peer.accept()
    log = fence_watch()
    time.sleep(2)
    peer.close()
    time.sleep(3)
    assert member.is_running(), log.read_text()
    assert 'cut off' not in log.read_text()


def test_a_primary_that_never_reached_a_member_is_not_armed(member, peer, fence_watch):
    """A primary that boots before the other hosts are up must not stop."""
    peer.cut()
    log = fence_watch()
    time.sleep(3)
    assert member.is_running(), log.read_text()
    assert 'cut off' not in log.read_text()
