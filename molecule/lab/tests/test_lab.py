"""The lab nodes are real systemd hosts that can reach each other by name."""


def test_systemd_is_pid_one_and_running(host):
    assert host.process.get(pid=1).comm == 'systemd'
    state = host.run('systemctl is-system-running').stdout.strip()
    assert state in ('running', 'degraded'), state


def test_journald_is_active(host):
    assert host.service('systemd-journald').is_running


def test_nodes_resolve_and_reach_each_other(host, lab_hosts):
    assert len(lab_hosts) == 3
    for peer in lab_hosts:
        assert host.run('getent hosts %s' % peer).rc == 0, peer
        assert host.run('ping -c1 -W2 %s' % peer).rc == 0, peer


def test_python_for_ansible(host):
    assert host.run('/usr/bin/python3 -c "import apt, json"').rc == 0


def test_converge_marked_the_node(host):
    marker = host.file('/etc/pgha-lab-node')
    assert marker.exists
    assert marker.content_string.strip() == host.backend.get_hostname()
