"""The collection builds, installs into a clean path, and resolves from there."""
import os
import subprocess
import sys
import tarfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
FORBIDDEN_PREFIXES = ('.venv/', '.cache/', '.ansible/', '.git/', 'build/', 'tests/output/', 'lab-cache/')


def run(args, cwd, env=None):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_build_install_and_resolve(tmp_path):
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(tmp_path), REPO], cwd=REPO)
    tarball = tmp_path / 'pgha-cluster-0.1.0.tar.gz'
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert 'plugins/modules/replication_slot.py' in names
    assert 'playbooks/site.yml' in names
    assert not [n for n in names if n.startswith(FORBIDDEN_PREFIXES) or '__pycache__' in n], names

    install_path = tmp_path / 'collections'
    # Run from an empty directory with no ansible.cfg, so only the install path is seen.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(install_path))
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--force', '-p', str(install_path),
         str(tarball)], cwd=str(tmp_path), env=env)
    installed = install_path / 'ansible_collections' / 'pgha' / 'cluster'
    assert (installed / 'MANIFEST.json').is_file()
    doc = run([os.path.join(BIN, 'ansible-doc'), 'pgha.cluster.standby_clone'], cwd=str(tmp_path), env=env)
    assert 'pg_basebackup' in doc
    syntax = run([os.path.join(BIN, 'ansible-playbook'), '--syntax-check', 'pgha.cluster.lab'],
                 cwd=str(tmp_path), env=env)
    assert str(installed / 'playbooks' / 'lab.yml') in syntax
