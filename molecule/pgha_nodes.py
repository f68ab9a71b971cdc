"""Commands the scenarios' verify tests run on lab nodes as the postgres account.

molecule/conftest.py puts this directory on pytest's path (prepend import
mode), so a scenario's tests import it as ``pgha_nodes``. Every argument is
quoted for the shell, so SQL may hold quotes, ``$`` (dollar quoting) and backquotes.
"""
import shlex


def run_as_postgres(node, command):
    """Run a shell command on a testinfra host as postgres (quoted for ``sh -c``)."""
    return node.run('runuser -u postgres -- sh -c %s' % shlex.quote(command))


def psql(node, sql, database='postgres', environment='', connection=''):
    """One statement through psql as postgres (unaligned, tuples only); fails the test on an error.

    ``environment`` is prefixed to the command (``PGPASSFILE=...``), ``connection``
    adds options such as ``-h 127.0.0.1 -p 9999``; without them psql uses the local socket.
    """
    words = ['cd /tmp &&', environment, 'psql -XAtq -v ON_ERROR_STOP=1', connection,
             '-d', shlex.quote(database), '-c', shlex.quote(sql)]
    cmd = run_as_postgres(node, ' '.join(word for word in words if word))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def member_name(name):
    """A lab node's application_name and slot name (the lab's names hold only letters, digits and '-')."""
    return name.replace('-', '_')
