"""Move etcd's leadership off this host while it runs the PostgreSQL primary.

A host crash that takes Patroni's leader and etcd's leader at once costs an
etcd election first, and the new etcd leader then renews every lease to its
full TTL (etcd issue 9395), the dead primary's leader key included: the
replicas wait that much longer before they may take over. With etcd's leader
on another host, the crash only ends the primary's lease.

Patroni runs this as its on_start and on_role_change callback (arguments:
action, role, scope); the patroni role also runs it after a deployment with
`--role master`. It acts only for role master (or primary), reads etcd's
client URLs and Patroni's etcd TLS files from a JSON file the role writes,
and speaks etcd's v3 JSON gateway with the standard library only (no etcdctl
or YAML module needed on Patroni's hosts).
It moves the leadership only when the leader's client URL names this host's
Patroni address and another member answers; it prints one line saying what it
did. Exit status 0 unless the etcd cluster could not be read (Patroni ignores
a callback's status; the role's task reads it).
"""
import argparse
import json
import socket
import ssl
import sys
import urllib.parse
import urllib.request

TIMEOUT_SECONDS = 3


def read_settings(path):
    """The role's JSON file: etcd's client URLs, the TLS files Patroni uses for
    etcd, and the addresses other hosts know this host by."""
    with open(path) as handle:
        settings = json.load(handle)
    for key in ('cacert', 'cert', 'key'):
        settings.setdefault(key, None)
    return settings


def tls_context(settings):
    if not settings['cacert']:
        return None
    context = ssl.create_default_context(cafile=settings['cacert'])
    if settings['cert']:
        context.load_cert_chain(settings['cert'], settings['key'])
    return context


def call(endpoint, path, body, context):
    request = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as answer:
        return json.loads(answer.read().decode() or '{}')


def addresses(host):
    """The IP addresses a host name (or address) stands for."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return {host}


def url_host(url):
    return urllib.parse.urlsplit(url).hostname


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--config', default='/etc/patroni/etcd-leader-apart.json',
                        help="etcd's client URLs, TLS files and this host's addresses (written by the patroni role)")
    parser.add_argument('--role', help='the local role, when not run as a Patroni callback')
    parser.add_argument('--dry-run', action='store_true', help='say what would be done, change nothing')
    parser.add_argument('callback', nargs='*', help='action role scope, as Patroni passes them')
    args = parser.parse_args(argv)
    role = args.role or (args.callback[1] if len(args.callback) >= 2 else None)
    if role not in ('master', 'primary'):
        print('role %s: nothing to do (only the primary keeps etcd leadership away)' % role)
        return 0

    settings = read_settings(args.config)
    context = tls_context(settings)
    members = None
    leader = None
    for endpoint in settings['endpoints']:
        try:
            leader = call(endpoint, '/v3/maintenance/status', {}, context).get('leader')
            members = call(endpoint, '/v3/cluster/member/list', {}, context).get('members', [])
            break
        except (OSError, ValueError) as error:
            print('etcd endpoint %s did not answer: %s' % (endpoint, error), file=sys.stderr)
    if not members or not leader:
        print('etcd cluster not readable: leadership left as it is')
        return 1

    local = set().union(*(addresses(host) for host in settings['local_hosts'])) if settings['local_hosts'] else set()
    by_id = {str(m.get('ID')): m for m in members}
    leading = by_id.get(str(leader))
    if leading is None:
        print('etcd leader %s is not in the member list: leadership left as it is' % leader)
        return 1
    leader_hosts = set().union(*(addresses(url_host(url)) for url in leading.get('clientURLs', [])))
    if not leader_hosts & local:
        print('etcd leader %s is on another host: nothing to do' % leading.get('name'))
        return 0

    for member in sorted(members, key=lambda m: m.get('name', '')):
        urls = member.get('clientURLs', [])
        if str(member.get('ID')) == str(leader) or not urls:
            continue
        if set().union(*(addresses(url_host(url)) for url in urls)) & local:
            continue
        try:
            call(urls[0], '/v3/maintenance/status', {}, context)
        except (OSError, ValueError):
            continue
        if args.dry_run:
            print('would move etcd leadership from %s to %s' % (leading.get('name'), member.get('name')))
            return 0
        leader_url = leading['clientURLs'][0]
        try:
            call(leader_url, '/v3/maintenance/transfer-leadership', {'targetID': str(member['ID'])}, context)
        except (OSError, ValueError) as error:
            print('etcd refused to move its leadership from %s to %s: %s' % (leading.get('name'), member.get('name'), error))
            return 1
        print('moved etcd leadership from %s to %s' % (leading.get('name'), member.get('name')))
        return 0
    print('etcd leader %s is on this host and no other member answers: leadership left as it is' % leading.get('name'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
