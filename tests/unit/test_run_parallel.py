"""tools/run_parallel.py: the lane runner behind `make test`."""
import os
import subprocess
import sys
import time

TOOL = os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'run_parallel.py')


def run(tmp_path, *args):
    return subprocess.run([sys.executable, TOOL, '--log-dir', str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_all_pass_and_logs_are_kept(tmp_path):
    result = run(tmp_path, '--jobs', '2', 'one=echo first', 'two=echo second', 'three=echo third')
    assert result.returncode == 0, result.stdout
    assert (tmp_path / 'three.log').read_text() == 'third\n'
    assert result.stdout.count(' passed in ') == 3


def test_failure_stops_new_jobs_and_shows_the_log(tmp_path):
    result = run(tmp_path, '--jobs', '1', 'broken=echo the reason; exit 3', 'later=touch %s' % (tmp_path / 'ran'))
    assert result.returncode == 1
    assert 'broken FAILED (exit 3)' in result.stdout
    assert 'the reason' in result.stdout
    assert 'not started' in result.stdout
    assert not (tmp_path / 'ran').exists()


def test_running_jobs_finish_after_a_failure(tmp_path):
    marker = tmp_path / 'finished'
    result = run(tmp_path, '--jobs', '2', 'slow=sleep 2 && touch %s' % marker, 'broken=false')
    assert result.returncode == 1
    assert marker.exists()


def test_a_job_past_its_timeout_is_ended(tmp_path):
    result = run(tmp_path, '--jobs', '1', '--timeout', '1', 'stuck=sleep 30')
    assert result.returncode == 1
    assert 'ran longer than 1 s' in result.stdout


def test_pipeline_failures_count(tmp_path):
    result = run(tmp_path, 'piped=false | cat')
    assert result.returncode == 1


def test_bad_job_arguments_are_refused(tmp_path):
    assert run(tmp_path, 'no-equals-sign').returncode == 2
    assert run(tmp_path, 'same=true', 'same=true').returncode == 2


def test_a_stopped_runner_ends_its_jobs(tmp_path):
    marker = tmp_path / 'survived'
    runner = subprocess.Popen([sys.executable, TOOL, '--log-dir', str(tmp_path), 'long=sleep 5 && touch %s' % marker],
                              stdout=subprocess.PIPE, text=True)
    for _attempt in range(50):
        if (tmp_path / 'long.log').exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    runner.terminate()
    output = runner.communicate(timeout=30)[0]
    assert runner.returncode == 128 + 15
    assert 'SIGTERM: ending the running jobs' in output
    time.sleep(6)
    assert not marker.exists(), 'the job outlived the runner'


def test_a_job_run_alone_has_no_neighbour(tmp_path):
    # Each job appends its start and end to one file: the alone job's lines must be adjacent.
    trace = tmp_path / 'trace'

    def job(name, seconds):
        return '%s=echo start-%s >> %s; sleep %s; echo end-%s >> %s' % (name, name, trace, seconds, name, trace)
    result = run(tmp_path, '--jobs', '2', '--alone', 'drill',
                 job('first', 1), job('drill', 1), job('after', 0.2), job('last', 0.2))
    assert result.returncode == 0, result.stdout
    lines = trace.read_text().split()
    start = lines.index('start-drill')
    assert lines[start + 1] == 'end-drill', lines
    assert lines.index('end-first') < start, lines


def test_alone_must_name_a_job(tmp_path):
    assert run(tmp_path, '--alone', 'missing', 'one=true').returncode == 2


def test_the_failure_is_named_at_the_very_end(tmp_path):
    # An Ansible log: an ignored failure, retries, then the task that failed the run.
    log = tmp_path / 'ansible-output'
    log.write_text('\n'.join([
        'TASK [Probe something optional] ****',
        'fatal: [pg1]: FAILED! => {"msg": "optional probe"}',
        '...ignoring',
        '\x1b[2m\u2502\x1b[0m TASK [paf : Wait for the promotion] ****',
        'FAILED - RETRYING: [pg1]: Wait for the promotion (120 retries left).',
        '\x1b[2m\u2502\x1b[0m \x1b[31mfatal: [pg1]: FAILED! => {"msg": "the real reason"}\x1b[0m',
        'PLAY RECAP ****',
    ]) + '\n')
    result = run(tmp_path, 'converge=cat %s; exit 2' % log)
    assert result.returncode == 1
    why = result.stdout[result.stdout.index('==> why converge failed'):]
    assert 'TASK [paf : Wait for the promotion]: fatal: [pg1]: FAILED! => {"msg": "the real reason"}' in why
    assert 'optional probe' not in why
    assert 'RETRYING' not in why
