"""The filters and lookups the roles, drills and playbooks share."""
import grp
import hashlib
import os
import pwd

import pytest
from ansible.errors import AnsibleError

from ansible_collections.pgha.cluster.plugins.filter.members import (
    dpkg_installed, exporter_url, file_in_place, lsn_to_int, member_address, member_name, pgpass_entry)
from ansible_collections.pgha.cluster.plugins.module_utils.pgpass import pgpass_split
from ansible_collections.pgha.cluster.plugins.lookup.playbook_command import playbook_command
from ansible_collections.pgha.cluster.plugins.lookup.solutions import load_descriptors

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('lsn, value', [('0/0', 0), ('0/3000060', 0x3000060), ('16/B374D848', 0x16B374D848),
                                        ('1/0', 1 << 32), (42, 42)])
def test_lsn_to_int(lsn, value):
    assert lsn_to_int(lsn) == value


def test_lsn_order_crosses_the_32_bit_boundary():
    assert lsn_to_int('1/0') > lsn_to_int('0/FFFFFFFF')


@pytest.mark.parametrize('bad', ['', '0/', '/1', 'G/1', '12345', None])
def test_lsn_to_int_rejects_what_is_not_an_lsn(bad):
    with pytest.raises(AnsibleError, match='not a PostgreSQL LSN'):
        lsn_to_int(bad)


@pytest.mark.parametrize('name, expected', [('db-1', 'db_1'), ('DB-1.example.org', 'db_1_example_org'),
                                            ('pg1', 'pg1'), ('x' * 80, 'x' * 63)])
def test_member_name(name, expected):
    assert member_name(name) == expected


def test_member_address_order_of_preference():
    facts = {'default_ipv4': {'address': '10.0.0.7'}}
    assert member_address({'patroni_address': '192.0.2.1', 'ansible_host': '192.0.2.2', 'ansible_facts': facts},
                          'patroni_address') == '192.0.2.1'
    # ansible_host counts only as an IP address: a name may resolve on the controller alone.
    assert member_address({'ansible_host': '192.0.2.2', 'ansible_facts': facts}, 'patroni_address') == '192.0.2.2'
    assert member_address({'ansible_host': '2001:db8::5'}, 'etcd_address') == '2001:db8::5'
    assert member_address({'ansible_host': 'db-1.example.org', 'ansible_facts': facts}, 'etcd_address') == '10.0.0.7'
    assert member_address({'inventory_hostname': 'db-1'}, 'x', fallback_to_name=True) == 'db-1'
    assert member_address({}, 'x', default='down') == 'down'


def test_member_address_names_the_variable_to_set():
    with pytest.raises(AnsibleError, match='set etcd_address'):
        member_address({'inventory_hostname': 'db-1', 'ansible_host': 'db-1.example.org'}, 'etcd_address')


FACTS = {'default_ipv4': {'address': '10.0.0.7'}}


@pytest.mark.parametrize('host_vars, url', [
    # no exporter on the host: no URL (the descriptors drop the empty ones)
    ({'ansible_facts': FACTS}, ''),
    ({'postgresql_exporter_enabled': False, 'ansible_facts': FACTS}, ''),
    ({'postgresql_exporter_enabled': 'false', 'ansible_facts': FACTS}, ''),
    # the role's default address: the member's
    ({'postgresql_exporter_enabled': True, 'ansible_facts': FACTS}, 'http://10.0.0.7:9187/metrics'),
    ({'postgresql_exporter_enabled': 'yes', 'postgresql_address': '192.0.2.1', 'ansible_facts': FACTS,
      'postgresql_exporter_port': '9200'}, 'http://192.0.2.1:9200/metrics'),
    # an address of its own; a wildcard is no address to scrape
    ({'postgresql_exporter_enabled': True, 'postgresql_exporter_listen_address': '192.0.2.9', 'ansible_facts': FACTS},
     'http://192.0.2.9:9187/metrics'),
    ({'postgresql_exporter_enabled': True, 'postgresql_exporter_listen_address': '0.0.0.0', 'ansible_facts': FACTS},
     'http://10.0.0.7:9187/metrics'),
    ({'postgresql_exporter_enabled': True, 'postgresql_exporter_listen_address': '::', 'ansible_host': '2001:db8::5'},
     'http://[2001:db8::5]:9187/metrics'),
    # a host that is down keeps its inventory name
    ({'postgresql_exporter_enabled': True, 'inventory_hostname': 'db-1'}, 'http://db-1:9187/metrics'),
])
def test_exporter_url(host_vars, url):
    assert exporter_url(host_vars) == url


@pytest.mark.parametrize('host_vars, message', [
    ({'postgresql_exporter_enabled': 'maybe', 'inventory_hostname': 'db-1'}, 'postgresql_exporter_enabled of host db-1'),
    ({'postgresql_exporter_enabled': True, 'inventory_hostname': 'db-1', 'postgresql_exporter_port': 'http'},
     'postgresql_exporter_port of host db-1'),
])
def test_exporter_url_names_a_bad_variable(host_vars, message):
    with pytest.raises(AnsibleError, match=message):
        exporter_url(host_vars)


def test_descriptors_load_and_match_their_file_names():
    descriptors = load_descriptors()
    assert descriptors['patroni']['role'] == 'patroni'
    assert not descriptors['efm']['deployable']


def test_a_descriptor_whose_name_differs_from_its_file_is_refused(tmp_path):
    (tmp_path / 'one.yml').write_text('pgha_solution:\n  name: two\n')
    with pytest.raises(AnsibleError, match="file name says 'one'"):
        load_descriptors(str(tmp_path))


def test_playbook_command_forwards_this_runs_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'secrets.yml').write_text('a: 1\n')
    cli = {'inventory': ('ignored',), 'vault_ids': ('prod@/etc/vault-prod',), 'vault_password_files': ('pw.txt',),
           'become': True, 'become_user': 'root', 'become_method': 'sudo', 'remote_user': 'admin', 'forks': 5,
           'check': True, 'diff': False, 'extra_vars': ('@secrets.yml', 'ha=patroni')}
    argv = playbook_command('drill.yml', cli, inventory_sources=['/inv/hosts.yml'], extra_vars=[{'fault': 'host_crash'}, 'x=1'])
    assert argv[0].endswith('ansible-playbook')
    assert argv[1] == str(tmp_path / 'drill.yml')
    joined = ' '.join(argv)
    assert '-i /inv/hosts.yml' in joined and 'ignored' not in joined
    assert '--vault-id prod@/etc/vault-prod' in joined
    assert '--vault-password-file %s' % (tmp_path / 'pw.txt') in joined
    assert '--become --become-method sudo --become-user root --user admin --forks 5 --check' in joined
    assert '--diff' not in joined
    # This run's extra vars first (a file reference made absolute), then the nested run's own: later -e wins.
    assert argv[-8:] == ['-e', '@%s' % (tmp_path / 'secrets.yml'), '-e', 'ha=patroni', '-e', '{"fault": "host_crash"}', '-e', 'x=1']


def test_playbook_command_passes_this_runs_configuration_and_collections(tmp_path, monkeypatch):
    """ansible.builtin.command runs the nested playbook in the playbook's directory, where the
    checkout's ansible.cfg is not found: the nested run is told which configuration and which
    collection paths to use, so it loads the same copy of the collection as this run."""
    monkeypatch.chdir(tmp_path)
    argv = playbook_command('site.yml', {}, config_file='ansible.cfg', collection_paths=['.cache/collections', '/usr/share/c'])
    assert argv[0].endswith('env')
    assert argv[1:3] == ['ANSIBLE_CONFIG=%s' % (tmp_path / 'ansible.cfg'),
                         'ANSIBLE_COLLECTIONS_PATH=%s:/usr/share/c' % (tmp_path / '.cache/collections')]
    assert argv[3].endswith('ansible-playbook') and argv[4] == str(tmp_path / 'site.yml')
    # No configuration file (ansible's defaults) and no paths: no env prefix.
    assert playbook_command('site.yml', {})[0].endswith('ansible-playbook')


def test_playbook_command_refuses_a_password_prompt():
    with pytest.raises(AnsibleError, match='cannot answer a password prompt'):
        playbook_command('site.yml', {'ask_vault_pass': True})


def test_monitor_report_times_the_tooling_view_after_the_fault():
    from ansible_collections.pgha.cluster.plugins.filter.monitor import monitor_report
    log = '\n'.join(['99.0 db-1', '100.5 db-1', '101.0', '103.2 db_2', '104.0 db-2', ''])
    report = monitor_report(log, 100.0, 'db-1')
    assert report == {'polls': 4, 'unanswered': 0, 'old_primary_dropped': 1.0, 'new_primary_shown': 3.2,
                      'new_primary': 'db_2'}
    # A poll the tooling did not answer says nothing: the old primary is not "dropped" by it.
    silent = monitor_report('100.1 ?\n100.2 ?\n102.0 db_2\n', 100.0, 'db-1')
    assert silent['unanswered'] == 2 and silent['old_primary_dropped'] == 2.0
    # A switchover the tooling shows in one poll: both at once.
    assert monitor_report('100.4 db_2\n', 100.0, 'db-1')['old_primary_dropped'] == 0.4
    # Nothing changed (an agent restarted in time): never dropped, no new primary.
    still = monitor_report('101.0 db1\n102.0 db1\n', '100', 'db1')
    assert still['old_primary_dropped'] is None and still['new_primary_shown'] is None and still['polls'] == 2
    assert monitor_report('101.0 db1\n', None, 'db1')['polls'] == 0


def test_monitor_report_refuses_a_bad_time():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.pgha.cluster.plugins.filter.monitor import monitor_report
    with pytest.raises(AnsibleFilterError):
        monitor_report('soon db1\n', 100.0, 'db1')


def test_file_in_place_matches_find_on_real_files(tmp_path):
    """find's checksum is the SHA-1 of the file's bytes; the filter compares the wanted text with it."""
    path = tmp_path / 'server.crt'
    path.write_text('-----BEGIN CERTIFICATE-----\nabc\n')
    path.chmod(0o644)
    stat = path.stat()
    found = [{'path': str(path), 'checksum': hashlib.sha1(path.read_bytes()).hexdigest(),
              'pw_name': pwd.getpwuid(stat.st_uid).pw_name, 'gr_name': grp.getgrgid(stat.st_gid).gr_name,
              'mode': '0644'}]
    owner, group = found[0]['pw_name'], found[0]['gr_name']
    content = '-----BEGIN CERTIFICATE-----\nabc\n'
    assert file_in_place(found, str(path), content, owner, group, '0644') is True
    assert file_in_place(found, str(path), content.rstrip('\n'), owner, group, '0644') is False
    assert file_in_place(found, str(path), content, owner, group, '0600') is False
    assert file_in_place(found, str(path), content, 'nobody-else', group, '0644') is False
    assert file_in_place(found, str(path), content, owner, 'nogroup-else', '0644') is False
    assert file_in_place(found, str(tmp_path / 'server.key'), content, owner, group, '0644') is False
    assert file_in_place(found, str(path), None, owner, group, '0644') is False
    assert file_in_place([], str(path), content, owner, group, '0644') is False


def test_dpkg_installed_keeps_only_fully_installed_packages():
    # what dpkg-query --showformat '${Package} ${db:Status-Abbrev}\n' prints (status abbreviations
    # end with a space: no error flag)
    lines = ['etcd-client ii ', 'etcd-server ii ', 'haproxy rc ', 'patroni iU ', 'python3-yaml iF ', 'ydiff iiR', '']
    assert dpkg_installed(lines) == ['etcd-client', 'etcd-server']
    assert dpkg_installed([]) == [] and dpkg_installed(None) == []


def test_pgpass_entry_escapes_every_field_and_reads_back():
    fields = ['10.0.0.1', 5432, '*', 'repl\\user', 'pa:ss\\wo:rd']
    line = pgpass_entry(fields)
    assert line == '10.0.0.1:5432:*:repl\\\\user:pa\\:ss\\\\wo\\:rd'
    assert pgpass_split(line) == [str(field) for field in fields]


def test_pgpass_entry_writes_a_pcppass_line_of_four_fields():
    assert pgpass_entry(['*', 9898, 'pcp', 'se:cret']) == '*:9898:pcp:se\\:cret'


@pytest.mark.parametrize('fields', ['host:5432:*:user:password', ['h', 5432, '*', 'user'][:3],
                                    ['h', 5432, '*', 'user', 'password', 'extra'], ['h', 5432, '*', 'user', None]])
def test_pgpass_entry_refuses_what_is_not_a_line(fields):
    with pytest.raises(AnsibleError, match='pgpass_entry'):
        pgpass_entry(fields)
