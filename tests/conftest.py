"""Test harness shared by unit and integration tests.

Modules are imported through a temporary ``ansible_collections/pgha/cluster``
symlink so that their ``ansible_collections.pgha.cluster...`` imports resolve
exactly as they do when the collection is installed.
"""
import os
import shutil
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS_ROOT = tempfile.mkdtemp(prefix='pgha-collections-')
os.makedirs(os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha'))
os.symlink(REPO_ROOT, os.path.join(_COLLECTIONS_ROOT, 'ansible_collections', 'pgha', 'cluster'))
sys.path.insert(0, _COLLECTIONS_ROOT)
os.environ['ANSIBLE_COLLECTIONS_PATH'] = _COLLECTIONS_ROOT + os.pathsep + os.environ.get(
    'ANSIBLE_COLLECTIONS_PATH', '')

pytest_plugins = ['tests.helpers.fixtures']

# The test servers run as postgres, so their directories' parents must be open to
# it (tests/helpers/fixtures.py adds o+x). Under pytest's shared
# /tmp/pytest-of-<user>, any other pytest starting meanwhile (a Molecule scenario's
# verify step, beside this run in `make test`) sets that directory back to 0700 and
# the next server start fails with "Permission denied". So each run gets a temporary
# directory of its own, removed when every test passed and kept for a look otherwise.
_OWN_BASETEMP = None


def pytest_configure(config):
    global _OWN_BASETEMP
    if config.option.basetemp is None:
        _OWN_BASETEMP = tempfile.mkdtemp(prefix='pgha-pytest-')
        config.option.basetemp = _OWN_BASETEMP


def pytest_sessionfinish(session, exitstatus):
    if _OWN_BASETEMP and exitstatus == 0:
        shutil.rmtree(_OWN_BASETEMP, ignore_errors=True)
    elif _OWN_BASETEMP:
        session.config.get_terminal_writer().line('test directories kept in %s' % _OWN_BASETEMP)


def pytest_unconfigure(config):
    # Only the symlink to this checkout lives there; rmtree removes a symlink, never what it points to.
    shutil.rmtree(_COLLECTIONS_ROOT, ignore_errors=True)
