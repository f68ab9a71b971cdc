"""The plug-in contract: one role and one descriptor per HA solution.

Walks every descriptor in playbooks/vars/solutions/ and fails when a solution
lacks an entry point, an argument spec or a descriptor key, when a key is
unknown, or when anything under playbooks/ outside the descriptors and the
solutions' own deploy plays names a solution (generic code must not).
"""
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(REPO, 'playbooks')
DESCRIPTORS = os.path.join(PLAYBOOKS, 'vars', 'solutions')
ENTRY_POINTS = ['main', 'status', 'switchover', 'failover', 'rejoin']

COMMON_KEYS = {'name', 'order', 'title', 'deployable', 'report'}
DEPLOYABLE_KEYS = COMMON_KEYS | {'role', 'deploy_playbook', 'endpoints', 'automatic_failover', 'rejoin', 'rejoin_method',
                                 'drill_failover_vars', 'expect_no_loss', 'profiles'}
OPTIONAL_DEPLOYABLE_KEYS = {'agent_services', 'monitor_primary_command', 'coordination_ports', 'metrics_endpoints',
                            'agent_unit_runs_postgresql', 'clear_failures', 'virtual_ip'}
NOT_DEPLOYABLE_KEYS = COMMON_KEYS | {'reason'}
REPORT_KEYS = {'license', 'open_source', 'versions', 'redundancy', 'monitoring', 'failover_how'}
OPTIONAL_REPORT_KEYS = {'sources', 'distribution_packages', 'maintained', 'lab_limits'}
PROFILE_KEYS = {'name', 'overrides', 'report_keys'}
OPTIONAL_PROFILE_KEYS = {'drill_duration'}
# Lines that name a solution's word for something else: the default choice of
# ha, and PostgreSQL's replication state 'streaming'.
NOT_A_SOLUTION = [re.compile(r'^pgha_default_ha: '), re.compile(r"'state', 'equalto', 'streaming'")]


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


FAULTS = set(load(os.path.join(PLAYBOOKS, 'faults', 'classes.yml'))['fault_classes'])


def descriptors():
    return {os.path.splitext(os.path.basename(p))[0]: load(p)['pgha_solution']
            for p in sorted(glob.glob(os.path.join(DESCRIPTORS, '*.yml')))}


SOLUTIONS = descriptors()
DEPLOYABLE = sorted(name for name, d in SOLUTIONS.items() if d.get('deployable'))


def test_the_study_and_the_deployable_solutions_are_all_there():
    assert {'streaming', 'patroni'} <= set(DEPLOYABLE)
    # Every system the study reviewed has a descriptor, the excluded ones too.
    assert {'streaming', 'patroni', 'repmgr', 'pgpool', 'paf', 'pgcluster', 'raima', 'efm'} <= set(SOLUTIONS)


@pytest.mark.parametrize('name', sorted(SOLUTIONS))
def test_descriptor_keys(name):
    descriptor = SOLUTIONS[name]
    assert descriptor['name'] == name, 'the file name and pgha_solution.name differ'
    expected = DEPLOYABLE_KEYS if descriptor.get('deployable') else NOT_DEPLOYABLE_KEYS
    keys = set(descriptor)
    assert not expected - keys, 'missing keys: %s' % sorted(expected - keys)
    optional = OPTIONAL_DEPLOYABLE_KEYS if descriptor.get('deployable') else set()
    assert not keys - expected - optional, 'unknown keys: %s' % sorted(keys - expected - optional)
    report = set(descriptor['report'])
    assert not REPORT_KEYS - report, 'missing report keys: %s' % sorted(REPORT_KEYS - report)
    assert not report - REPORT_KEYS - OPTIONAL_REPORT_KEYS, 'unknown report keys: %s' % sorted(report - REPORT_KEYS - OPTIONAL_REPORT_KEYS)
    if not descriptor.get('deployable') and descriptor['name'] in ('pgcluster', 'raima', 'efm'):
        assert descriptor['report'].get('sources'), 'an excluded system states its sources'


@pytest.mark.parametrize('name', DEPLOYABLE)
def test_deployable_solution_has_every_entry_point_with_an_argument_spec(name):
    descriptor = SOLUTIONS[name]
    role = os.path.join(REPO, 'roles', descriptor['role'])
    specs = load(os.path.join(role, 'meta', 'argument_specs.yml'))['argument_specs']
    for entry_point in ENTRY_POINTS:
        assert os.path.isfile(os.path.join(role, 'tasks', entry_point + '.yml')), 'no tasks/%s.yml' % entry_point
        assert entry_point in specs, 'no argument spec for the entry point %s' % entry_point
    # The optional entry point the drill runs last when the manager counts failures per member.
    if descriptor.get('clear_failures'):
        assert os.path.isfile(os.path.join(role, 'tasks', 'clear_failures.yml')), 'no tasks/clear_failures.yml'
        assert 'clear_failures' in specs, 'no argument spec for the entry point clear_failures'
    assert isinstance(descriptor.get('clear_failures', False), bool)
    # The generic inputs every role of the contract takes.
    for option in ('candidate', 'rejoin_member'):
        variable = '%s_%s' % (descriptor['role'], option)
        assert variable in specs['switchover' if option == 'candidate' else 'rejoin']['options'], variable
        assert variable in load(os.path.join(role, 'defaults', 'main.yml')), variable


@pytest.mark.parametrize('name', DEPLOYABLE)
def test_deployable_solution_settings(name):
    descriptor = SOLUTIONS[name]
    if descriptor['deploy_playbook']:
        assert os.path.isfile(os.path.join(PLAYBOOKS, descriptor['deploy_playbook']))
        assert descriptor['deploy_playbook'] == 'deploy/%s.yml' % name
    assert descriptor['endpoints']['write'], 'clients need a write endpoint'
    # endpoints are libpq connection strings only; scrape URLs are metrics_endpoints
    assert set(descriptor['endpoints']) <= {'write', 'read'}
    # the postgresql role's exporter, on the members that enable it (a Jinja expression over the inventory)
    metrics = descriptor.get('metrics_endpoints', '')
    assert isinstance(metrics, str) and (not metrics or 'pgha.cluster.exporter_url' in metrics), metrics
    assert descriptor['rejoin'] in ('automatic', 'operator')
    assert isinstance(descriptor['automatic_failover'], bool)
    assert set(descriptor['drill_failover_vars']) <= FAULTS
    # agent_kill stops these units on the primary; an automatic failover needs an agent.
    agents = descriptor.get('agent_services', [])
    assert isinstance(agents, list) and all(isinstance(u, str) and u and ' ' not in u for u in agents)
    assert agents or not descriptor['automatic_failover'], 'automatic failover without an agent to kill'
    # dcs_partition drops these between the primary and the other members: PORT/tcp or PORT/udp.
    ports = descriptor.get('coordination_ports', [])
    assert isinstance(ports, list)
    for port in ports:
        assert re.fullmatch(r'(\d+|\{\{ [a-z_]+ \| default\(\d+\) \}\})/(tcp|udp)', port), port
    # the address clients reach the primary (or the pooler) through: one inventory variable
    virtual_ip = descriptor.get('virtual_ip', '')
    assert not virtual_ip or re.fullmatch(r'\{\{ [a-z_]+ \}\}', virtual_ip), virtual_ip
    assert descriptor['profiles'], 'compare.yml needs at least one settings profile'
    defaults = load(os.path.join(REPO, 'roles', descriptor['role'], 'defaults', 'main.yml'))
    for profile in descriptor['profiles']:
        keys = set(profile)
        assert not PROFILE_KEYS - keys and not keys - PROFILE_KEYS - OPTIONAL_PROFILE_KEYS, profile
        for key in profile['overrides']:
            assert key in defaults, '%s is not a variable of the role %s' % (key, descriptor['role'])
        # A report key may also be a variable of the role its prefix names (compare.yml
        # reads that role's defaults too): pacemaker_fence_agent for paf.
        for key in profile['report_keys']:
            prefix_defaults = os.path.join(REPO, 'roles', key.split('_')[0], 'defaults', 'main.yml')
            assert key in defaults or (os.path.isfile(prefix_defaults) and key in load(prefix_defaults)), \
                '%s is not a variable of the role %s or of the role its prefix names' % (key, descriptor['role'])


def test_generic_playbooks_name_no_solution():
    """Adding a solution needs its role, its descriptor and at most deploy/<ha>.yml: nothing else under
    playbooks/ may mention a solution (comments aside)."""
    names = sorted(SOLUTIONS)
    pattern = re.compile(r'\b(%s)\b' % '|'.join(names))
    offenders = []
    for path in glob.glob(os.path.join(PLAYBOOKS, '**', '*'), recursive=True):
        relative = os.path.relpath(path, PLAYBOOKS)
        if os.path.isdir(path) or relative.startswith('vars/solutions/'):
            continue
        if relative.startswith('deploy/') and os.path.splitext(os.path.basename(path))[0] in names:
            continue
        assert not pattern.search(relative), 'a per-solution file outside the contract: %s' % relative
        with open(path) as handle:
            for number, line in enumerate(handle, 1):
                code = line.split('#', 1)[0]
                if pattern.search(code) and not any(allowed.search(code) for allowed in NOT_A_SOLUTION):
                    offenders.append('%s:%d: %s' % (relative, number, line.strip()))
    assert not offenders, '\n'.join(offenders)


def test_every_fault_need_is_a_fault_and_an_optional_descriptor_key():
    """compare.yml skips a fault for a solution whose descriptor lacks the key the fault needs."""
    needs = load(os.path.join(PLAYBOOKS, 'faults', 'classes.yml'))['fault_needs']
    assert set(needs) <= FAULTS
    assert set(needs.values()) <= OPTIONAL_DEPLOYABLE_KEYS


@pytest.mark.parametrize('name', DEPLOYABLE)
def test_deployable_solution_has_one_profile_with_the_collections_defaults(name):
    """The report scores a solution from its profile without overrides."""
    defaults = [p['name'] for p in SOLUTIONS[name]['profiles'] if not p.get('overrides')]
    assert len(defaults) == 1, 'profiles without overrides: %s' % defaults


def test_metrics_endpoints_evaluate_over_the_inventory(tmp_path):
    """metrics_endpoints, evaluated by Ansible as drill.yml loads a descriptor (vars_files): one scrape URL per
    member that enables the exporter, with its own port; nothing for the others."""
    with_metrics = sorted(name for name in DEPLOYABLE if 'metrics_endpoints' in SOLUTIONS[name])
    assert with_metrics, 'no descriptor lists metrics endpoints: the test would check nothing'
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(yaml.safe_dump({'all': {'children': {'database_nodes': {'hosts': {
        'db-1': {'ansible_host': '192.0.2.11', 'postgresql_exporter_enabled': True},
        'db-2': {'ansible_host': '192.0.2.12', 'postgresql_exporter_enabled': 'true', 'postgresql_exporter_port': 9200},
        'db-3': {'ansible_host': '192.0.2.13'}}}}}}))
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([
        {'name': name, 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
         'vars_files': [os.path.join(DESCRIPTORS, name + '.yml')],
         'tasks': [{'name': 'metrics', 'ansible.builtin.debug': {'msg': '{{ pgha_solution.metrics_endpoints }}'}}]}
        for name in with_metrics]))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json', ANSIBLE_NOCOLOR='1')
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inventory),
                             str(playbook)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the JSON document, after the lines of ansible.cfg's profile_tasks callback
    start = re.search(r'^\{$', result.stdout, re.M).start()
    plays = json.JSONDecoder().raw_decode(result.stdout[start:])[0]['plays']
    assert [play['play']['name'] for play in plays] == with_metrics
    for play in plays:
        msg = play['tasks'][0]['hosts']['localhost']['msg']
        assert msg == ['http://192.0.2.11:9187/metrics', 'http://192.0.2.12:9200/metrics'], (play['play']['name'], msg)


# The postgresql role's inputs that belong to the user: a role passing its own copy of one
# through include_role vars would be outranked by an extra var of the same name.
POSTGRESQL_USER_INPUTS = {'postgresql_settings', 'postgresql_extra_packages', 'postgresql_hba_extra',
                          'postgresql_users', 'postgresql_databases'}


def postgresql_includes():
    """Every include_role/import_role of the postgresql role in the roles' tasks, with its vars."""
    for path, _tasks_from, variables, name in role_includes('postgresql'):
        yield path, name, variables


def test_roles_pass_their_needs_to_the_postgresql_role_as_requirements():
    includes = list(postgresql_includes())
    assert any('postgresql_ha_requirements' in include[2] for include in includes), includes
    passed = [(path, name, sorted(POSTGRESQL_USER_INPUTS & set(variables))) for path, name, variables in includes
              if POSTGRESQL_USER_INPUTS & set(variables)]
    assert not passed, 'pass these through postgresql_ha_requirements (docs/architecture.md): %s' % passed


@pytest.mark.parametrize('name', [name for name in DEPLOYABLE if SOLUTIONS[name]['deploy_playbook']])
def test_an_own_deploy_play_runs_the_solutions_checks_before_anything_else(name):
    """A solution with its own deploy play (Patroni: etcd first) runs its role's validate entry point in the first
    play, so bad input stops the run before another role changes a host; the entry point has an argument spec."""
    descriptor = SOLUTIONS[name]
    plays = load(os.path.join(PLAYBOOKS, descriptor['deploy_playbook']))
    first = plays[0]
    assert not first.get('roles'), 'the first play runs a role before the checks: %s' % first.get('roles')
    includes = [task.get('ansible.builtin.include_role') or task.get('ansible.builtin.import_role') or {}
                for task in first.get('tasks') or []]
    assert {'name': 'pgha.cluster.' + descriptor['role'], 'tasks_from': 'validate'} in includes, first
    role = os.path.join(REPO, 'roles', descriptor['role'])
    assert os.path.isfile(os.path.join(role, 'tasks', 'validate.yml'))
    specs = load(os.path.join(role, 'meta', 'argument_specs.yml'))['argument_specs']
    assert specs['validate']['options'] == specs['main']['options']


def role_includes(role_name):
    """Every include_role/import_role of a role in the roles' tasks: (path, tasks_from, vars, task name)."""
    for path in sorted(glob.glob(os.path.join(REPO, 'roles', '*', 'tasks', '*.yml'))):
        stack = list(load(path) or [])
        while stack:
            task = stack.pop()
            if not isinstance(task, dict):
                continue
            for key in ('block', 'rescue', 'always'):
                stack.extend(task.get(key) or [])
            for action in ('ansible.builtin.include_role', 'ansible.builtin.import_role', 'include_role', 'import_role'):
                include = task.get(action)
                if isinstance(include, dict) and include.get('name') in ('pgha.cluster.' + role_name, role_name):
                    yield os.path.relpath(path, REPO), include.get('tasks_from'), task.get('vars') or {}, task.get('name')


def test_roles_that_run_the_fence_refuse_its_inputs_they_set_themselves():
    """An extra var outranks the fence inputs an HA role passes: each role that runs the primary_fence role checks,
    in its validate.yml, exactly the inputs it passes (roles/primary_fence/tasks/owned_inputs.yml)."""
    includes = list(role_includes('primary_fence'))
    runs = {path.split(os.sep)[1]: variables for path, tasks_from, variables, _name in includes if not tasks_from}
    checks = {path.split(os.sep)[1]: variables for path, tasks_from, variables, _name in includes
              if tasks_from == 'owned_inputs.yml' and path.endswith(os.path.join('tasks', 'validate.yml'))}
    assert runs, includes
    for role, variables in runs.items():
        passed = sorted(name[len('primary_fence_'):] for name in variables)
        assert role in checks, '%s runs the fence without checking its inputs in validate.yml' % role
        assert sorted(checks[role]['primary_fence_owned_inputs']) == passed, role
        assert checks[role]['primary_fence_owner_prefix'] == role


def requirement_inputs(role):
    """The keys of every `inputs` mapping next to a `solution` key in a role's tasks and vars files."""
    found = set()
    for path in glob.glob(os.path.join(REPO, 'roles', role, '*', '*.yml')):
        stack = [load(path)]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if 'solution' in item and isinstance(item.get('inputs'), dict):
                    found |= set(item['inputs'])
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return found


# Passed to the postgresql role for what they are, not to overrule a user's choice: the
# certificate names (PAF's virtual IP; the user's own names are kept) and the requirements.
NOT_AN_OVERRULED_INPUT = {'postgresql_ha_requirements', 'postgresql_tls_subject_alt_names'}


def test_include_vars_the_postgresql_role_could_be_outranked_on_are_named_in_the_requirements():
    """An extra var outranks an include var: each postgresql role input an HA role passes to the role's main
    steps as an include var is also named, with its value, in postgresql_ha_requirements.inputs, which the
    postgresql role checks (docs/architecture.md)."""
    missing = []
    for path, tasks_from, variables, _name in role_includes('postgresql'):
        if tasks_from not in (None, 'validate.yml', '{{ paf_postgresql_step }}'):
            continue
        role = path.split(os.sep)[1]
        named = requirement_inputs(role)
        missing += [(path, name) for name in set(variables) - NOT_AN_OVERRULED_INPUT - named]
    assert not missing, missing
