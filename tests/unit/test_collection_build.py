"""The collection builds, installs into a clean path, and resolves from there."""
import os
import re
import shutil
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
    assert private_keys_in(tarball) == []

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


# Where the roles and the lab write keys on the controller: .cache/pki (lab inventory),
# playbooks/.cache/pki (an inventory without pgha_secrets_dir: the default follows
# playbook_dir), and a key a user left next to an inventory.
PLANTED_KEYS = ['.cache/pki/ca.key', 'playbooks/.cache/pki/ca.key', 'playbooks/.cache/pki/db1.key',
                'playbooks/.cache/secrets/superuser', 'inventories/example/server.key', 'roles/postgresql/files/ca.pem']
# Built from pieces, so that this test file itself does not look like a key.
PRIVATE_KEY = '-----BEGIN EC PRIVATE ' + 'KEY-----\nnot a real key\n-----END EC PRIVATE ' + 'KEY-----\n'
PEM_PRIVATE_KEY = re.compile(rb'-----BEGIN [A-Z ]*PRIVATE KEY-----')


def private_keys_in(tarball):
    found = []
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            content = archive.extractfile(member).read()
            if member.name.endswith('.key') or PEM_PRIVATE_KEY.search(content):
                found.append(member.name)
    return found


def test_no_private_key_or_secret_is_packaged(tmp_path):
    """Keys the lab CA and the roles write on the controller never reach the Galaxy tarball."""
    source = tmp_path / 'source'
    shutil.copytree(REPO, source, symlinks=True,
                    ignore=shutil.ignore_patterns('.venv', '.cache', '.git', 'build', '.pytest_cache', 'tests'))
    for path in PLANTED_KEYS:
        planted = source / path
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_text(PRIVATE_KEY)
        planted.chmod(0o600)
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(tmp_path), str(source)],
        cwd=str(source))
    tarball = tmp_path / 'pgha-cluster-0.1.0.tar.gz'
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert 'roles/postgresql/tasks/tls.yml' in names
    assert private_keys_in(tarball) == []
    assert not [n for n in names if '.cache' in n.split('/') or 'secrets' in n.split('/')], names
