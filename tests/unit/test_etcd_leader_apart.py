"""The patroni role's script that keeps etcd's leader off the primary's host,
against two fake etcd members speaking the v3 JSON gateway on loopback
(127.0.0.1 and 127.0.0.2: two "hosts" on one machine)."""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'roles', 'patroni', 'files', 'pgha_etcd_leader_apart.py')


class FakeEtcd:
    """Members 1 (127.0.0.1) and 2 (127.0.0.2); member 1 leads until asked to move."""

    def __init__(self):
        self.leader = '1'
        self.calls = []
        self.servers = {}
        for member_id, address in (('1', '127.0.0.1'), ('2', '127.0.0.2')):
            self.servers[member_id] = ThreadingHTTPServer((address, 0), self._handler(member_id))
            threading.Thread(target=self.servers[member_id].serve_forever, daemon=True).start()

    def url(self, member_id):
        host, port = self.servers[member_id].server_address[:2]
        return 'http://%s:%d' % (host, port)

    def _handler(self, member_id):
        etcd = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])) or b'{}')
                etcd.calls.append((member_id, self.path, body))
                if self.path == '/v3/maintenance/status':
                    answer = {'header': {'member_id': member_id}, 'leader': etcd.leader}
                elif self.path == '/v3/cluster/member/list':
                    answer = {'members': [{'ID': m, 'name': 'etcd-%s' % m, 'clientURLs': [etcd.url(m)]} for m in ('1', '2')]}
                elif self.path == '/v3/maintenance/transfer-leadership' and member_id == etcd.leader:
                    etcd.leader = body['targetID']
                    answer = {}
                else:
                    self.send_response(500)
                    self.end_headers()
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def stop(self, member_id=None):
        for key, server in self.servers.items():
            if member_id in (None, key):
                server.shutdown()
                server.server_close()


@pytest.fixture
def etcd():
    fake = FakeEtcd()
    yield fake
    fake.stop()


def run(tmp_path, etcd, local_host, *args):
    settings = tmp_path / 'settings.json'
    settings.write_text(json.dumps({'endpoints': [etcd.url('1'), etcd.url('2')], 'local_hosts': [local_host]}))
    return subprocess.run([sys.executable, SCRIPT, '--config', str(settings)] + list(args),
                          capture_output=True, text=True, timeout=60, check=False)


def transfers(etcd):
    return [call for call in etcd.calls if call[1].endswith('transfer-leadership')]


def test_the_primary_hands_etcd_leadership_to_a_member_on_another_host(tmp_path, etcd):
    result = run(tmp_path, etcd, '127.0.0.1', 'on_role_change', 'master', 'pgha')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'moved etcd leadership from etcd-1 to etcd-2'
    # asked of the leader itself, naming the other member
    assert transfers(etcd) == [('1', '/v3/maintenance/transfer-leadership', {'targetID': '2'})]
    assert etcd.leader == '2'
    # run again (the next deployment): nothing left to do
    again = run(tmp_path, etcd, '127.0.0.1', '--role', 'master')
    assert again.stdout.strip() == 'etcd leader etcd-2 is on another host: nothing to do'
    assert len(transfers(etcd)) == 1


def test_nothing_moves_when_the_leader_is_elsewhere_or_this_host_is_no_primary(tmp_path, etcd):
    elsewhere = run(tmp_path, etcd, '127.0.0.2', 'on_start', 'master', 'pgha')
    assert 'is on another host' in elsewhere.stdout
    asked = len(etcd.calls)
    replica = run(tmp_path, etcd, '127.0.0.1', 'on_role_change', 'replica', 'pgha')
    assert replica.stdout.startswith('role replica: nothing to do')
    assert len(etcd.calls) == asked, 'a replica does not even ask etcd'
    assert not transfers(etcd)
    assert etcd.leader == '1'


def test_dry_run_changes_nothing(tmp_path, etcd):
    result = run(tmp_path, etcd, '127.0.0.1', '--role', 'master', '--dry-run')
    assert result.stdout.strip() == 'would move etcd leadership from etcd-1 to etcd-2'
    assert not transfers(etcd)
    assert etcd.leader == '1'


def test_leadership_stays_when_no_other_member_answers(tmp_path, etcd):
    etcd.stop('2')
    result = run(tmp_path, etcd, '127.0.0.1', '--role', 'master')
    assert result.returncode == 0
    assert 'no other member answers: leadership left as it is' in result.stdout
    assert not transfers(etcd)


def test_an_unreadable_etcd_fails_without_a_change(tmp_path, etcd):
    etcd.stop()
    result = run(tmp_path, etcd, '127.0.0.1', '--role', 'master')
    assert result.returncode == 1
    assert 'etcd cluster not readable' in result.stdout
