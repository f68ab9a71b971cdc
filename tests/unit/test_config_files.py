"""The config_files module on real files in a temporary directory.

Each case asserts what is on disk afterwards (content, mode, which paths exist),
not only what the module reported.
"""
import grp
import os
import pwd
import stat

from tests.helpers.fixtures import run_module

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def _dir(path, mode='0750'):
    return {'path': str(path), 'owner': OWNER, 'group': GROUP, 'mode': mode}


def _file(path, content, mode='0640', **extra):
    return dict({'path': str(path), 'content': content, 'owner': OWNER, 'group': GROUP, 'mode': mode}, **extra)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_then_finds_everything_in_place(tmp_path):
    conf = tmp_path / 'conf'
    args = {'directories': [_dir(conf), _dir(conf / 'sub', '0700')],
            'files': [_file(conf / 'a.yml', 'a: 1\n'), _file(conf / 'sub' / 'b', 'no newline', '0600')]}
    first = run_module('config_files', args)
    assert first.changed
    assert first['changes'] == {str(conf): ['created'], str(conf / 'sub'): ['created'],
                                str(conf / 'a.yml'): ['created'], str(conf / 'sub' / 'b'): ['created']}
    assert (conf / 'a.yml').read_text() == 'a: 1\n'
    assert (conf / 'sub' / 'b').read_bytes() == b'no newline'
    assert _mode(conf) == 0o750 and _mode(conf / 'sub') == 0o700
    assert _mode(conf / 'a.yml') == 0o640 and _mode(conf / 'sub' / 'b') == 0o600

    again = run_module('config_files', args)
    assert not again.changed and again['changes'] == {}


def test_check_mode_reports_and_writes_nothing(tmp_path):
    existing = tmp_path / 'existing.conf'
    existing.write_text('old\n')
    os.chmod(existing, 0o644)
    result = run_module('config_files', {
        'directories': [_dir(tmp_path / 'new')],
        'files': [_file(existing, 'new\n'), _file(tmp_path / 'new' / 'f', 'x')]}, check_mode=True, diff=True)
    assert result.changed
    assert result['changes'][str(existing)] == ['content', 'mode']
    assert existing.read_text() == 'old\n' and _mode(existing) == 0o644
    assert not (tmp_path / 'new').exists()
    shown = [d for d in result['diff'] if d['before_header'] == str(existing)][0]
    assert 'old\n' in shown['before'] and 'new\n' in shown['after']


def test_attribute_change_keeps_the_content_and_the_file(tmp_path):
    target = tmp_path / 'unit'
    target.write_text('[Service]\n')
    os.chmod(target, 0o600)
    inode = os.stat(target).st_ino
    result = run_module('config_files', {'files': [_file(target, '[Service]\n', '0644')]})
    assert result['changes'] == {str(target): ['mode']}
    assert _mode(target) == 0o644 and os.stat(target).st_ino == inode


def test_new_content_replaces_the_file_whole(tmp_path):
    target = tmp_path / 'settings.json'
    target.write_text('{"a": 1}')
    result = run_module('config_files', {'files': [_file(target, '{"a": 2}', '0640')]})
    assert result['changes'] == {str(target): ['content', 'mode']}
    assert target.read_text() == '{"a": 2}' and _mode(target) == 0o640
    # no temporary file left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ['settings.json']


def test_every_problem_is_named_and_nothing_changes(tmp_path):
    kept = tmp_path / 'kept'
    kept.write_text('kept\n')
    (tmp_path / 'link').symlink_to(kept)
    (tmp_path / 'adir').mkdir()
    result = run_module('config_files', {
        'directories': [_dir(tmp_path / 'made'), _dir(tmp_path / 'missing' / 'deeper')],
        'files': [
            _file(kept, 'replaced\n'),
            _file('relative/path', 'x'),
            _file(tmp_path / 'made' / 'f', 'x', owner='no-such-user-pgha'),
            _file(tmp_path / 'g', 'x', group='no-such-group-pgha'),
            _file(tmp_path / 'h', 'x', mode='644x'),
            _file(tmp_path / 'link', 'x'),
            _file(tmp_path / 'adir', 'x'),
            _file(tmp_path / 'nodir' / 'f', 'x'),
            _file(kept, 'twice\n'),
            _file(tmp_path / 'v', 'x', validate='true'),
        ]})
    assert result.failed
    message = result['msg']
    for expected in ('relative/path: the path is not absolute', "user 'no-such-user-pgha' does not exist",
                     "group 'no-such-group-pgha' does not exist", "mode '644x' is not an octal string",
                     'link: is a symbolic link', 'adir: exists and is not a regular file',
                     'nodir/f: its directory', 'missing/deeper: its directory', 'kept: listed more than once',
                     'the validate command has no %s'):
        assert expected in message, expected
    assert kept.read_text() == 'kept\n'
    assert not (tmp_path / 'made').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['adir', 'kept', 'link']


def test_rejected_content_changes_nothing(tmp_path):
    config = tmp_path / 'haproxy.cfg'
    config.write_text('good\n')
    other = tmp_path / 'other'
    result = run_module('config_files', {
        'directories': [_dir(tmp_path / 'dropin')],
        'files': [_file(other, 'other\n'),
                  _file(config, 'bad\n', validate="grep -q '^good$' %s")]})
    assert result.failed
    assert 'haproxy.cfg' in result['msg'] and 'rejected the new content' in result['msg']
    assert config.read_text() == 'good\n'
    assert not other.exists() and not (tmp_path / 'dropin').exists()


def test_accepted_content_is_written(tmp_path):
    config = tmp_path / 'haproxy.cfg'
    config.write_text('old\n')
    result = run_module('config_files', {'files': [_file(config, 'good\n', validate="grep -q '^good$' %s")]})
    assert result.changed and config.read_text() == 'good\n'


def test_a_hidden_file_shows_that_it_changes_but_not_its_content(tmp_path):
    secret = tmp_path / 'patroni.yml'
    secret.write_text('password: old-Secret\n')
    result = run_module('config_files', {'files': [_file(secret, 'password: new-Secret\n', diff=False)]},
                        check_mode=True, diff=True)
    shown = repr(result['diff'])
    assert 'Secret' not in shown and 'content: not shown, changed' in shown


def test_check_mode_warns_where_an_earlier_task_would_have_made_the_user_or_directory(tmp_path):
    """A package installed earlier in the run creates users and directories; in check mode it did not run."""
    args = {'files': [_file(tmp_path / 'etc' / 'pgha.conf', 'x\n', owner='no-such-user-pgha'),
                      _file(tmp_path / 'g', 'x', group='no-such-group-pgha')]}
    result = run_module('config_files', args, check_mode=True)
    assert not result.failed and result.changed
    assert set(result['changes']) == {str(tmp_path / 'etc' / 'pgha.conf'), str(tmp_path / 'g')}
    assert len(result['warnings']) == 3
    assert list(tmp_path.iterdir()) == []
    assert run_module('config_files', args).failed


def test_check_mode_still_refuses_what_no_earlier_task_can_fix(tmp_path):
    result = run_module('config_files', {'files': [_file('relative', 'x')]}, check_mode=True)
    assert result.failed and 'not absolute' in result['msg']


def test_absent_files_and_links_are_removed_and_a_directory_is_refused(tmp_path):
    old_script = tmp_path / 'old-guard'
    old_script.write_text('#!/bin/sh\n')
    old_link = tmp_path / 'old-link'
    old_link.symlink_to(tmp_path / 'nowhere')
    args = {'absent': [str(old_script), str(old_link), str(tmp_path / 'never-there')]}
    checked = run_module('config_files', args, check_mode=True)
    assert checked['changes'] == {str(old_script): ['removed'], str(old_link): ['removed']}
    assert old_script.exists() and os.path.lexists(old_link)
    assert run_module('config_files', args)['changes'] == {str(old_script): ['removed'], str(old_link): ['removed']}
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert run_module('config_files', args)['changes'] == {}

    (tmp_path / 'adir').mkdir()
    kept = tmp_path / 'kept'
    kept.write_text('x')
    refused = run_module('config_files', {'absent': [str(kept), str(tmp_path / 'adir')]})
    assert refused.failed and 'adir: is a directory' in refused['msg'] and kept.exists()


def test_links_are_made_and_repointed_and_a_file_in_the_way_is_refused(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'stale').symlink_to('/opt/old/stale')
    args = {'links': [{'path': str(bin_dir / 'patroni'), 'src': '/opt/venv/bin/patroni'},
                      {'path': str(bin_dir / 'stale'), 'src': '/opt/venv/bin/stale'}]}
    checked = run_module('config_files', args, check_mode=True, diff=True)
    assert checked['changes'] == {str(bin_dir / 'patroni'): ['created'], str(bin_dir / 'stale'): ['target']}
    assert os.readlink(bin_dir / 'stale') == '/opt/old/stale' and not os.path.lexists(bin_dir / 'patroni')
    assert 'link to /opt/old/stale' in repr(checked['diff'])
    run_module('config_files', args)
    assert os.readlink(bin_dir / 'patroni') == '/opt/venv/bin/patroni'
    assert os.readlink(bin_dir / 'stale') == '/opt/venv/bin/stale'
    assert sorted(p.name for p in bin_dir.iterdir()) == ['patroni', 'stale']
    assert run_module('config_files', args)['changes'] == {}

    (bin_dir / 'real').write_text('#!/bin/sh\n')
    refused = run_module('config_files', {'links': [{'path': str(bin_dir / 'real'), 'src': '/opt/venv/bin/real'}]})
    assert refused.failed and 'exists and is not a symbolic link' in refused['msg']
    assert (bin_dir / 'real').read_text() == '#!/bin/sh\n'
