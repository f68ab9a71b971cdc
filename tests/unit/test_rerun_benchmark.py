"""The deployment benchmark's reading of ansible-playbook's play recaps."""
import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks', 'rerun.py')
SPEC = importlib.util.spec_from_file_location('rerun_benchmark', SCRIPT)
rerun = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(rerun)

OUTPUT = """
PLAY RECAP *********************************************************************
localhost                  : ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
pg1                        : ok=81   changed=2    unreachable=0    failed=0    skipped=76   rescued=0    ignored=0
pg2                        : ok=62   changed=0    unreachable=0    failed=1    skipped=57   rescued=0    ignored=0

TASKS RECAP ********************************************************************
pg3                        : ok=99   changed=9    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
"""


def test_counts_are_summed_over_the_hosts_of_the_recap_only():
    assert rerun.recap_counts(OUTPUT) == {'ok': 144, 'changed': 2, 'unreachable': 0, 'failed': 1, 'skipped': 133}


def test_every_play_recap_counts():
    assert rerun.recap_counts(OUTPUT + OUTPUT)['changed'] == 4


def test_no_recap_counts_nothing():
    assert rerun.recap_counts('ERROR! the playbook could not be found\n') == {
        'ok': 0, 'changed': 0, 'unreachable': 0, 'failed': 0, 'skipped': 0}
