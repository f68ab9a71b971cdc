"""The lab's power switch and its fence agent, against a stand-in podman that
keeps container states in a file: what is switched off, what is refused."""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = os.path.join(REPO, 'roles', 'lab', 'files')
sys.path.insert(0, FILES)

import pgha_lab_power  # noqa: E402

FAKE_PODMAN = '''#!/usr/bin/env python3
import json, sys
path = %r
states = json.load(open(path))
args = sys.argv[1:]
name = args[-1]
if name not in states:
    sys.stderr.write('no such container %%s' %% name)
    sys.exit(125)
if args[0] == 'inspect':
    print(states[name])
elif args[0] == 'kill':
    states[name] = 'exited'
elif args[0] == 'start':
    states[name] = 'running'
json.dump(states, open(path, 'w'))
with open(path + '.calls', 'a') as calls:
    calls.write(' '.join(args) + '\\n')
'''


@pytest.fixture
def lab(tmp_path):
    """A switch serving pg1 and pg2 (pg3 exists but is not allowed) on a socket in tmp_path."""
    states = tmp_path / 'states.json'
    states.write_text(json.dumps({'pg1': 'running', 'pg2': 'paused', 'pg3': 'running'}))
    podman = tmp_path / 'podman'
    podman.write_text(FAKE_PODMAN % str(states))
    podman.chmod(0o755)
    path = str(tmp_path / 'power.sock')
    switch = pgha_lab_power.PowerSwitch(['pg1', 'pg2'], podman=str(podman), timeout=5)
    server = threading.Thread(target=pgha_lab_power.serve, args=(path, switch), daemon=True)
    server.start()
    for _attempt in range(100):
        if os.path.exists(path):
            break
        threading.Event().wait(0.05)

    def read():
        return json.loads(states.read_text())
    return {'socket': path, 'states': read, 'calls': tmp_path / 'states.json.calls'}


def agent(lab, **options):
    """Run the fence agent as Pacemaker does: options on stdin."""
    options.setdefault('socket', lab['socket'])
    stdin = ''.join('%s=%s\n' % item for item in options.items())
    return subprocess.run([sys.executable, os.path.join(FILES, 'fence_pgha_lab.py')], input=stdin,
                          capture_output=True, text=True, timeout=30, check=False)


def test_metadata_names_the_plug_and_every_action(lab):
    result = agent(lab, action='metadata')
    assert result.returncode == 0
    assert '<parameter name="plug"' in result.stdout and '<parameter name="port"' in result.stdout
    for action in ('on', 'off', 'reboot', 'status', 'monitor', 'list'):
        assert '<action name="%s"' % action in result.stdout


def test_status_is_0_when_on_and_2_when_off(lab):
    assert agent(lab, action='status', plug='pg1').returncode == 0
    assert agent(lab, action='off', plug='pg1').returncode == 0
    assert lab['states']()['pg1'] == 'exited'
    result = agent(lab, action='status', port='pg1')
    assert result.returncode == 2 and 'Status: OFF' in result.stdout


def test_a_paused_container_is_killed_without_being_resumed(lab):
    assert agent(lab, action='off', plug='pg2').returncode == 0
    assert lab['states']()['pg2'] == 'exited'
    calls = lab['calls'].read_text()
    assert 'kill --signal KILL pg2' in calls and 'unpause' not in calls


def test_reboot_turns_it_off_then_on(lab):
    assert agent(lab, action='reboot', plug='pg1').returncode == 0
    calls = lab['calls'].read_text().splitlines()
    assert calls.index('kill --signal KILL pg1') < calls.index('start pg1')
    assert lab['states']()['pg1'] == 'running'


def test_a_container_outside_the_lab_is_refused_and_left_running(lab):
    result = agent(lab, action='off', plug='pg3')
    assert result.returncode == 1 and 'not a container of this lab' in result.stderr
    assert lab['states']()['pg3'] == 'running'
    assert agent(lab, action='validate-all', plug='pg3').returncode == 1


def test_off_without_a_plug_or_with_a_bad_request_changes_nothing(lab):
    assert agent(lab, action='off').returncode == 1
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(lab['socket'])
        client.sendall(b'destroy pg1\n')
        assert client.recv(4096).startswith(b'error ')
    assert lab['states']() == {'pg1': 'running', 'pg2': 'paused', 'pg3': 'running'}


def test_monitor_and_list_reach_the_switch(lab, tmp_path):
    result = agent(lab, action='list')
    assert result.returncode == 0 and result.stdout.split() == ['pg1,', 'pg2,']
    assert agent(lab, action='monitor').returncode == 0
    assert agent(lab, action='monitor', socket=str(tmp_path / 'missing.sock')).returncode == 1


def switch_command(*args):
    return subprocess.run([sys.executable, os.path.join(FILES, 'pgha_lab_power.py')] + list(args),
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_start_runs_one_switch_per_directory_and_stop_ends_it(tmp_path):
    directory = str(tmp_path / 'power')
    sock = os.path.join(directory, 'power.sock')
    try:
        assert switch_command('start', '--dir', directory, '--allow', 'pg1', '--allow', 'pg2') == 'started'
        first = int(open(os.path.join(directory, 'switch.pid')).read())
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(sock)
            client.sendall(b'list\n')
            assert client.recv(4096) == b'ok pg1 pg2\n'
        # The same names: the running switch is kept. Other names: replaced.
        assert switch_command('start', '--dir', directory, '--allow=pg1', '--allow=pg2') == 'running'
        assert switch_command('start', '--dir', directory, '--allow', 'pg1') == 'started'
        second = int(open(os.path.join(directory, 'switch.pid')).read())
        assert second != first and not os.path.exists('/proc/%d' % first)
    finally:
        assert switch_command('stop', '--dir', directory) == 'stopped'
    assert not os.path.exists('/proc/%d' % second) and not os.path.exists(sock)
    assert not os.path.exists(os.path.join(directory, 'switch.pid'))
    assert switch_command('stop', '--dir', directory) == 'not running'


def test_stop_leaves_a_process_that_reused_the_pid_alone(tmp_path):
    directory = tmp_path / 'power'
    directory.mkdir()
    bystander = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        (directory / 'switch.pid').write_text('%d\n' % bystander.pid)
        assert switch_command('stop', '--dir', str(directory)) == 'not running'
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
