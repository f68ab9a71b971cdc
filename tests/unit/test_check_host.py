"""tools/check-host: a missing host tool fails the check and names its Debian package.

The check runs against a fake root (PGHA_HOST_ROOT) holding empty executables,
so each case removes one tool and expects the package that installs it.
"""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(REPO, 'tools', 'check-host')
PG_BIN = 'usr/lib/postgresql/15/bin/'
TOOLS = ['usr/bin/podman', 'usr/sbin/runc', 'usr/lib/podman/netavark', 'usr/lib/podman/aardvark-dns',
         'usr/sbin/iptables', 'usr/sbin/debootstrap', 'usr/bin/newuidmap', 'usr/bin/newgidmap',
         PG_BIN + 'postgres', PG_BIN + 'initdb', PG_BIN + 'pg_ctl', PG_BIN + 'pg_basebackup',
         PG_BIN + 'pg_rewind', PG_BIN + 'pg_controldata', 'usr/sbin/pgpool', 'usr/sbin/pcp_attach_node',
         'usr/bin/git', 'usr/bin/make']


def make_root(base, skip=()):
    for tool in TOOLS:
        if tool in skip:
            continue
        path = base / tool
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('#!/bin/sh\n')
        path.chmod(0o755)
    return base


def check(root, python='python3'):
    env = dict(os.environ, PGHA_HOST_ROOT=str(root), PGHA_HOST_PYTHON=python)
    return subprocess.run([CHECK], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_complete_host_passes(tmp_path):
    result = check(make_root(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'all present' in result.stdout


@pytest.mark.parametrize('tool, package', [
    ('usr/sbin/iptables', 'iptables'),
    ('usr/bin/newuidmap', 'uidmap'),
    ('usr/lib/podman/netavark', 'netavark'),
    ('usr/sbin/runc', 'runc'),
    ('usr/sbin/debootstrap', 'debootstrap'),
    (PG_BIN + 'pg_rewind', 'postgresql-15'),
    ('usr/sbin/pgpool', 'pgpool2'),
])
def test_missing_tool_names_its_package(tmp_path, tool, package):
    result = check(make_root(tmp_path, skip=[tool]))
    assert result.returncode == 1
    install_line = [line for line in result.stderr.splitlines() if 'apt-get install' in line]
    assert install_line and install_line[0].split()[-1] == package, result.stderr
    assert os.path.basename(tool) in result.stderr


def test_a_tool_found_in_another_system_directory_counts(tmp_path):
    """Commands are looked up in every bin/sbin directory, not one fixed path."""
    root = make_root(tmp_path, skip=['usr/sbin/iptables'])
    (root / 'sbin').mkdir()
    (root / 'sbin' / 'iptables').write_text('#!/bin/sh\n')
    (root / 'sbin' / 'iptables').chmod(0o755)
    assert check(root).returncode == 0


def test_python_without_venv_names_python3_venv(tmp_path):
    result = check(make_root(tmp_path), python='false')
    assert result.returncode == 1
    assert 'python3-venv' in result.stderr


def test_each_package_is_named_once(tmp_path):
    result = check(make_root(tmp_path, skip=['usr/bin/newuidmap', 'usr/bin/newgidmap']))
    install_line = [line for line in result.stderr.splitlines() if 'apt-get install' in line][0]
    assert install_line.split().count('uidmap') == 1
