"""The shared fence's start check (roles/primary_fence), rendered as the role writes it and run
against a real PostgreSQL primary on loopback.

The check runs before every start of a member's PostgreSQL: a data directory
that would start as a primary must not while another member runs as a primary
of the same cluster, and must when that primary belongs to another cluster (an
empty cluster that initdb just made on a replaced disk is cloned over next).
"""
import os
import pwd
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, 'roles', 'primary_fence')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the check runs its queries as postgres (setpriv)')


def render_script(tmp_path, primary, data_directory, bin_dir, peer_address='127.0.0.1', **settings):
    """The fence script for a member whose only other member is `primary` (named pg2, at `peer_address`)."""
    passfile = tmp_path / 'pgpass'
    # any host: the watch asks its own server over the Unix socket (localhost in a passfile)
    passfile.write_text('*:%d:postgres:postgres:%s\n' % (primary.port, primary.superuser_password))
    postgres = pwd.getpwnam('postgres')
    os.chown(passfile, postgres.pw_uid, postgres.pw_gid)
    os.chmod(passfile, 0o600)
    with open(os.path.join(ROLE, 'defaults', 'main.yml')) as handle:
        variables = {key: trust_as_template(value) if isinstance(value, str) else value
                     for key, value in yaml.safe_load(handle).items()}
    variables.update({
        'ansible_managed': 'managed', 'inventory_hostname': 'pg1',
        'primary_fence_name': 'pgha-test-fence',
        'primary_fence_port': primary.port,
        'primary_fence_passfile': str(passfile),
        'primary_fence_data_directory': data_directory,
        'primary_fence_socket_directory': os.path.dirname(data_directory),
        'primary_fence_pg_service': 'postgresql@15-test',
        'primary_fence_bin_directory': bin_dir,
        'primary_fence_rejoin_hint': 'rejoin it',
        '_primary_fence_peers': {'pg2': peer_address},
        '_primary_fence_witness_peers': {},
    })
    variables.update(settings)
    with open(os.path.join(ROLE, 'templates', 'fence.sh.j2')) as handle:
        text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(handle.read()))
    script = tmp_path / 'fence'
    script.write_text(text)
    os.chmod(script, 0o755)
    return str(script)


def start_check(script):
    return subprocess.run(['sh', script, 'start-check'], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def primary(pg_factory):
    return pg_factory.primary('pg2')


def test_an_old_primary_of_the_same_cluster_does_not_start(pg_factory, primary, tmp_path):
    old = pg_factory.new_instance('pg1')
    old.basebackup_from(primary)
    os.remove(os.path.join(old.data_directory, 'standby.signal'))
    result = start_check(render_script(tmp_path, primary, old.data_directory, pg_factory.bin_dir))
    assert result.returncode == 1, result.stderr
    assert 'pg2 runs as primary: not starting this member as a second one; rejoin it' in result.stderr


def test_a_standby_starts(pg_factory, primary, tmp_path):
    standby = pg_factory.new_instance('pg1')
    standby.basebackup_from(primary)
    result = start_check(render_script(tmp_path, primary, standby.data_directory, pg_factory.bin_dir))
    assert result.returncode == 0, result.stderr


def test_an_empty_cluster_of_its_own_starts(pg_factory, primary, tmp_path):
    """What initdb leaves on a replaced disk: another system identifier, to be cloned over."""
    fresh = pg_factory.new_instance('pg1')
    fresh.initdb()
    result = start_check(render_script(tmp_path, primary, fresh.data_directory, pg_factory.bin_dir))
    assert result.returncode == 0, result.stderr
    assert 'pg2 runs as primary of another cluster' in result.stderr


def test_an_unreadable_control_file_counts_as_the_same_cluster(pg_factory, primary, tmp_path):
    missing = str(tmp_path / 'no-such-directory')
    result = start_check(render_script(tmp_path, primary, missing, pg_factory.bin_dir))
    assert result.returncode == 1, result.stderr
    assert 'not starting this member as a second one' in result.stderr


def test_a_member_that_does_not_answer_is_not_counted(pg_factory, primary, tmp_path):
    old = pg_factory.new_instance('pg1')
    old.basebackup_from(primary)
    os.remove(os.path.join(old.data_directory, 'standby.signal'))
    script = render_script(tmp_path, primary, old.data_directory, pg_factory.bin_dir)
    primary.stop()
    result = start_check(script)
    assert result.returncode == 0, result.stderr
    assert 'pg2 did not answer: not counted' in result.stderr
