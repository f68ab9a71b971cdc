"""pgpool_node input validation: bad input fails before any PCP command runs."""
import pytest

from tests.helpers.fixtures import run_module


@pytest.mark.parametrize('args, words', [
    (dict(node_id=1, state='primary'), ['switchover', 'explicitly']),
    (dict(node_id=1, state='detached', switchover=True), ['switchover=true', 'state=primary']),
    (dict(node_id=-1), ['node_id=-1']),
    (dict(node_id=0, pcp_port=80), ['pcp_port=80', '1024-65535']),
    (dict(node_id=0, pcp_timeout=0), ['pcp_timeout']),
    (dict(node_id=0, pcp_password='x-Secret-1'), ['pcp_password needs pcp_user']),
    (dict(node_id=0, pcp_passfile='/nonexistent/pcppass'), ['pcp_passfile', 'does not exist']),
    (dict(node_id=0, pcp_user='u', pcp_password='x-Secret-1', pcp_passfile='/etc/hostname'),
     ['mutually exclusive']),
])
def test_bad_input_fails_before_pcp(args, words):
    result = run_module('pgpool_node', args)
    assert result.failed
    for word in words:
        assert word in result['msg']
    assert 'x-Secret-1' not in str(result)
