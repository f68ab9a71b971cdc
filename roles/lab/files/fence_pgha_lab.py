"""fence_pgha_lab: a fence agent for the pgha.cluster lab. It turns a lab
container off and on through the lab's power switch (pgha_lab_power.py on the
podman host, reached over a Unix socket mounted into the containers), as
fence_ipmilan does through a BMC. Lab only: it fences nothing else.

Options come on stdin (key=value, one per line: how Pacemaker calls fence
agents) or on the command line (-o ACTION -n PLUG [-s SOCKET]).
Exit status: 0 done (status: on), 2 status off, 1 failure.
"""
import argparse
import socket
import sys
import time

DEFAULT_SOCKET = '/run/pgha-lab-power/power.sock'
ACTIONS = ('on', 'off', 'reboot', 'status', 'monitor', 'list', 'metadata', 'validate-all')

METADATA = '''<?xml version="1.0" ?>
<resource-agent name="fence_pgha_lab" shortdesc="Fence agent for the pgha.cluster lab's containers">
<longdesc>Turns a container of the pgha.cluster lab off and on through the lab's power switch,
a Unix socket served by the podman host. For the lab only.</longdesc>
<parameters>
  <parameter name="action" unique="0" required="1">
    <getopt mixed="-o, --action=[action]" />
    <content type="string" default="reboot" />
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="1" obsoletes="port">
    <getopt mixed="-n, --plug=[name]" />
    <content type="string" />
    <shortdesc lang="en">Name of the lab container to fence</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0" deprecated="1">
    <getopt mixed="-n, --plug=[name]" />
    <content type="string" />
    <shortdesc lang="en">Name of the lab container to fence</shortdesc>
  </parameter>
  <parameter name="socket" unique="0" required="0">
    <getopt mixed="-s, --socket=[path]" />
    <content type="string" default="{socket}" />
    <shortdesc lang="en">Path of the lab power switch's socket</shortdesc>
  </parameter>
  <parameter name="timeout" unique="0" required="0">
    <getopt mixed="-t, --timeout=[seconds]" />
    <content type="second" default="30" />
    <shortdesc lang="en">Seconds to wait for the power switch</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off" />
  <action name="reboot" />
  <action name="status" />
  <action name="monitor" />
  <action name="list" />
  <action name="metadata" />
  <action name="validate-all" />
</actions>
</resource-agent>
'''.format(socket=DEFAULT_SOCKET)


def ask(path, line, timeout):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(path)
        client.sendall((line + '\n').encode())
        answer = b''
        while not answer.endswith(b'\n'):
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk
    words = answer.decode().split()
    if not words or words[0] != 'ok':
        raise RuntimeError(answer.decode().strip() or 'no answer from the power switch')
    return words[1:]


def options_from_stdin(stream):
    options = {}
    for line in stream:
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        options[key.strip()] = value.strip()
    return options


def run(options):
    """The agent's work for one set of options; its exit status."""
    action = options.get('action', options.get('option', 'reboot'))
    if action not in ACTIONS:
        print('fence_pgha_lab: unknown action %r' % action, file=sys.stderr)
        return 1
    if action == 'metadata':
        sys.stdout.write(METADATA)
        return 0
    path = options.get('socket') or DEFAULT_SOCKET
    timeout = float(options.get('timeout') or 30)
    plug = options.get('plug') or options.get('port')
    try:
        if action in ('monitor', 'list'):
            names = ask(path, 'list', timeout)
            if action == 'list':
                for name in names:
                    print('%s,' % name)
            return 0
        if not plug:
            print('fence_pgha_lab: plug (the container to fence) is required', file=sys.stderr)
            return 1
        if action == 'validate-all':
            return 0 if plug in ask(path, 'list', timeout) else 1
        if action == 'status':
            state = ask(path, 'status ' + plug, timeout)[0]
            print('Status: %s' % state.upper())
            return 0 if state == 'on' else 2
        if action in ('off', 'reboot'):
            ask(path, 'off ' + plug, timeout)
        if action in ('on', 'reboot'):
            if action == 'reboot':
                time.sleep(1)
            ask(path, 'on ' + plug, timeout)
        print('Success: %s' % ('Powered OFF' if action == 'off' else 'Powered ON'))
        return 0
    except (OSError, RuntimeError) as error:
        print('fence_pgha_lab: %s %s failed: %s' % (action, plug or '', error), file=sys.stderr)
        return 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        return run(options_from_stdin(sys.stdin))
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('-o', '--action', default='reboot')
    parser.add_argument('-n', '--plug')
    parser.add_argument('-s', '--socket', default=DEFAULT_SOCKET)
    parser.add_argument('-t', '--timeout', default='30')
    args = parser.parse_args(argv)
    return run({key: value for key, value in vars(args).items() if value is not None})


if __name__ == '__main__':
    sys.exit(main())
