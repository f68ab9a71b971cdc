"""Render the measured comparison: docs/comparison.md and a chart.

Input: the JSON files playbooks/compare.yml writes, one per solution and
settings profile (docs/comparison/results/<ha>-<profile>.json). Output: the
Markdown report from playbooks/templates/comparison.md.j2 and a PNG chart of
the write outage per solution and fault class (median bar, worst marker).

    python3 tools/comparison_report.py --results docs/comparison/results \
        --solutions playbooks/vars/solutions --output docs/comparison.md

Nothing here measures anything: every number printed comes from the JSON.
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

import jinja2
import yaml

FAULT_CLASSES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'playbooks', 'faults', 'classes.yml')


def _fault_classes():
    with open(FAULT_CLASSES) as handle:
        return yaml.safe_load(handle)


_CLASSES = _fault_classes()
FAULT_ORDER = _CLASSES['fault_classes']
# A fault that needs a descriptor key (agent_kill: agent_services) does not apply
# to a solution without it; compare.yml skips it there.
FAULT_NEEDS = _CLASSES.get('fault_needs', {})


def load_solutions(directory):
    """Every solution descriptor (playbooks/vars/solutions/<name>.yml): the
    report's facts (report:), title, whether it is deployable and why not, in
    the descriptors' order; for a deployable one also which profile holds the
    collection's defaults (no overrides), whether it has a status command of
    its own, and which profiles promise that no acknowledged write is lost."""
    solutions = {}
    for path in glob.glob(os.path.join(directory, '*.yml')):
        with open(path) as handle:
            descriptor = yaml.safe_load(handle)['pgha_solution']
        fact = dict(descriptor.get('report', {}))
        for key in ('title', 'deployable', 'reason', 'automatic_failover', 'order', 'agent_unit_runs_postgresql'):
            if key in descriptor:
                fact[key] = descriptor[key]
        profiles = descriptor.get('profiles', [])
        fact['defaults_profile'] = next((p['name'] for p in profiles if not p.get('overrides')), None)
        fact['status_command'] = bool(descriptor.get('monitor_primary_command'))
        fact['faults_not_applicable'] = [fault for fault, key in FAULT_NEEDS.items() if not descriptor.get(key)]
        fact['no_loss_profiles'] = [p['name'] for p in profiles
                                    if _promises_no_loss(descriptor.get('expect_no_loss', False), p.get('overrides') or {})]
        solutions[descriptor['name']] = fact
    return dict(sorted(solutions.items(), key=lambda item: (item[1].get('order', 999), item[0])))


def _promises_no_loss(expression, overrides):
    """The descriptor's expect_no_loss under a profile's overrides, evaluated the
    way the drill evaluates it (Ansible's templating, over the role defaults its
    `default()` filters name), so the report and the drill cannot disagree."""
    if isinstance(expression, bool):
        return expression
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template
    value = Templar(loader=DataLoader(), variables=dict(overrides)).template(trust_as_template(str(expression)))
    return str(value).strip().lower() in ('true', 'yes', 'on', '1')


def load_results(results_dir):
    """One result per solution and profile: <ha>-<profile>.json merged with any
    <ha>-<profile>.<tag>.json (more runs of the same settings)."""
    merged = {}
    for path in sorted(glob.glob(os.path.join(results_dir, '*.json'))):
        with open(path) as handle:
            result = json.load(handle)
        result.setdefault('parts', [_part(result, path)])
        # merged runs are renumbered per fault; each drill keeps where it came from
        result['drills'] = [dict(drill, source='%s run %s' % (os.path.basename(path), drill.get('run', '?')))
                            for drill in result.get('drills', [])]
        key = (result['ha'], result.get('profile', 'default'))
        if key in merged:
            merged[key] = _merge(merged[key], result, path)
        else:
            merged[key] = result
    if not merged:
        raise SystemExit('no result files in %s' % results_dir)
    return [_latest_deployment(result) for result in merged.values()]


def _latest_deployment(result):
    """The deployment's numbers of the latest run that recorded them: the roles change between
    runs of the same settings, and a user gets the deployment of the latest code. The other
    runs' idempotent re-runs are kept as a range (rerun_seconds_range)."""
    measured = [part for part in result['parts'] if part.get('deploy')]
    if not measured:
        return result
    latest = max(measured, key=lambda part: part.get('started') or '')
    reruns = [part['deploy']['rerun_seconds'] for part in measured if part['deploy'].get('rerun_seconds') is not None]
    deploy = dict(latest['deploy'], measured_by=latest['file'], measured_at=latest.get('started'))
    if len(reruns) > 1:
        deploy['rerun_seconds_range'] = [min(reruns), max(reruns)]
        deploy['reruns_measured'] = len(reruns)
    return dict(result, deploy=deploy)


def set_aside_superseded_drills(result, fact):
    """Where PostgreSQL runs inside the HA agent's systemd unit (the descriptor's
    agent_unit_runs_postgresql: Patroni, PAF), agent_kill runs from before the drill
    recorded agent_kill_whom signalled every process of that unit, PostgreSQL too:
    kept in the JSON, not counted with runs that killed the agent alone."""
    if not fact.get('agent_unit_runs_postgresql'):
        return result
    kept, aside = [], []
    for drill in result.get('drills', []):
        whole_unit = drill.get('fault') == 'agent_kill' and drill.get('agent_kill_whom') != 'main'
        (aside if whole_unit else kept).append(drill)
    return dict(result, drills=kept, set_aside=aside)


def _part(result, path):
    """Where and when one compare.yml run measured (a report line each)."""
    return {'file': os.path.basename(path), 'started': result.get('started'), 'finished': result.get('finished'),
            'machine': result.get('machine', {}), 'drills': len(result.get('drills', [])),
            'deploy': result.get('deploy', {})}


def _merge(first, other, path):
    """The drills of two runs of one solution and profile; their settings must match."""
    if first.get('settings') != other.get('settings') or first.get('probe') != other.get('probe'):
        raise SystemExit('%s measured %s (%s) with other settings or probe than %s: not merged'
                         % (os.path.basename(path), other['ha'], other.get('profile'),
                            ', '.join(p['file'] for p in first['parts'])))
    runs = {}
    for drill in first['drills']:
        runs[drill['fault']] = max(runs.get(drill['fault'], 0), drill.get('run', 0))
    added = [dict(drill, run=drill.get('run', 0) + runs.get(drill['fault'], 0)) for drill in other['drills']]
    # the machine comes from the earliest run; the deployment's numbers are set
    # from the latest one afterwards (_latest_deployment)
    earliest = min(first, other, key=lambda r: r.get('started') or '')
    return dict(earliest, drills=first['drills'] + added, parts=first['parts'] + other['parts'],
                started=earliest.get('started'), finished=max(first.get('finished') or '', other.get('finished') or ''))


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _worst(values):
    values = [v for v in values if v is not None]
    return round(max(values), 2) if values else None


def _seconds(value):
    return None if value in (None, '', 'None') else float(value)


def _total(values):
    """Sum of the values that were measured; None when none was."""
    values = [int(v) for v in values if v not in (None, '', 'None')]
    return sum(values) if values else None


def _fault_key(fault):
    return FAULT_ORDER.index(fault) if fault in FAULT_ORDER else 99


def _write_outage(drill):
    """The drill's write outage, and whether writes never resumed after the fault. The probe's
    max_gap is the longest gap between two acknowledged writes: when no write followed the
    fault it is an earlier, tiny gap, and the outage lasted at least from the last write to the
    end of the probe (trailing_gap)."""
    gap = _seconds(drill.get('max_gap'))
    trailing = _seconds(drill.get('trailing_gap'))
    if _seconds(drill.get('fault_to_first_write')) is None and trailing is not None and (gap is None or trailing > gap):
        return trailing, True
    return gap, False


def _true(value):
    return value in (True, 'True', 'true')


def _reverted(drill):
    """The old primary took the role back from the node promoted meanwhile. Drills from
    before the drill recorded it are recognised by the same rule: another node was
    promoted, yet the primary at the end is the one from before the fault."""
    if 'reverted_to_old_primary' in drill:
        return _true(drill['reverted_to_old_primary'])
    return _true(drill.get('promoted_elsewhere')) and drill.get('new_primary') == drill.get('primary_before')


def _lost_count(drill):
    """Acknowledged writes missing at the end; None when unverified. A reverted drill from
    before the drill counted its writes again on the old primary read them back from the
    node promoted meanwhile, whose history was then discarded: unverified."""
    if _reverted(drill) and 'reverted_to_old_primary' not in drill:
        return None
    return drill.get('lost_count')


def summarise(result):
    """One row per fault class: median and worst of every measured quantity."""
    rows = []
    faults = sorted({d['fault'] for d in result.get('drills', [])}, key=_fault_key)
    for fault in faults:
        drills = [d for d in result['drills'] if d['fault'] == fault]
        outages = [_write_outage(d) for d in drills]
        gaps = [gap for gap, never_resumed in outages]
        recover = [d.get('fault_to_first_write') for d in drills]
        rejoin = [d.get('rejoin_seconds') for d in drills]
        cut_off = fault == 'dcs_partition'
        rows.append({
            'fault': fault,
            'runs': len(drills),
            'rto_median': _median(gaps),
            'rto_worst': _worst(gaps),
            # Runs in which no write followed the fault: their outage is a lower bound.
            'unrecovered': sum(1 for gap, never_resumed in outages if never_resumed),
            'recovery_median': _median(recover),
            'recovery_worst': _worst(recover),
            'lost': sum(int(_lost_count(d) or 0) for d in drills),
            # Runs whose writes were never read back (a drill that failed before the check).
            'unverified': sum(1 for d in drills if _lost_count(d) is None),
            'acknowledged': sum(int(d.get('acknowledged') or 0) for d in drills),
            # Two primaries seen by the probe, plus an old primary that came back still a primary.
            'split_brain': sum(int(d.get('split_brain_count') or 0) + (1 if d.get('split_brain_after_restore') else 0)
                               for d in drills),
            # The old primary took the role back from the node promoted meanwhile.
            'reverted': sum(1 for d in drills if _reverted(d)),
            # The cluster turned the broken host off (fencing) before the drill undid the fault.
            'fenced': sum(1 for d in drills if _true(d.get('target_fenced'))),
            # Runs that recorded it (drills from before the record have no such field).
            'fenced_recorded': sum(1 for d in drills if d.get('target_fenced') not in (None, 'None')),
            # Only where another node was promoted meanwhile: with no failover the old primary rightly stays one.
            'restored_primary_worst': _worst([_seconds(d.get('restored_primary_seconds')) for d in drills
                                              if d.get('promoted_elsewhere', True)]),
            # dcs_partition: how long the primary cut off from its coordination still took writes.
            'fenced_worst': _worst([_seconds(d.get('old_primary_writable_seconds')) for d in drills]) if cut_off else None,
            'never_fenced': sum(1 for d in drills if d.get('old_primary_writable_at_end')) if cut_off else 0,
            # The solution's own status: seconds until it named the new primary.
            'monitor_shown_median': _median([_seconds((d.get('monitor') or {}).get('new_primary_shown'))
                                             for d in drills]),
            'rejoin_median': _median(rejoin),
            # A reverted cluster is not whole: the node promoted meanwhile holds a newer history.
            'rejoined': sum(1 for d in drills if d.get('rejoined') and not _reverted(d)),
            'rejoin_methods': sorted({'none: the old primary took the role back' if _reverted(d) else d.get('rejoin_method')
                                      for d in drills if d.get('rejoin_method') or _reverted(d)}),
            'failed': sum(1 for d in drills if d.get('error')),
            'stale_reads': _total([d.get('stale_reads') for d in drills]),
            # Of those, the ones later than the bound after writes came back (drills from
            # before the count have none: shown only when every drill has it).
            'stale_reads_after_recovery': _total([d.get('stale_reads_after_recovery') for d in drills])
            if all(d.get('stale_reads_after_recovery') not in (None, '', 'None') for d in drills) else None,
            'reads': _total([(d.get('reads') or {}).get('succeeded') for d in drills]),
        })
    return rows


# The study's scores, 1 (poor) to 5 (excellent). Every rule reads the measured
# evidence of the collection's defaults (the profile without overrides), so a
# solution is judged as this collection deploys it; SCORE_RULES says the same
# in words for the report, built from the same bands.
FAILOVER_BANDS = ((5, 6, 10), (4, 10, 15), (3, 20, 30))  # (score, median at most, worst at most) of host_crash
MONITORING_BANDS = ((5, 10), (4, 20), (3, 40))  # (score, median seconds at most) until the status named the new primary
SCORE_RULES = {
    'redundancy': 'no standby after deployment: 1. Otherwise 2, plus 1 with two or more streaming standbys, plus 1 when '
                  'the old primary (or crashed standby) rejoined in every drill, plus 1 when a profile that promises no '
                  'loss of acknowledged writes (expect_no_loss) lost none over its measured host crashes.',
    'failover': 'manual only: 1. Automatic: from the host-crash write outage, %s, else 2 (also when not measured); then '
                'minus 1 for any split-brain observation, minus 1 for any acknowledged write lost (asynchronous '
                'replication included), minus 1 when writes never resumed in a drill or a drill had no measurement; '
                'never below 1.' % ', '.join('%d for a median of at most %g s and a worst of at most %g s' % band
                                             for band in FAILOVER_BANDS),
    'monitoring': 'no status tool of its own (SQL only): 1. Otherwise from the median time between a host crash and '
                  'its status first naming the new primary (polled every 0.5 s during the drills): %s, else 2; not '
                  'scored when that time was not measured.' % ', '.join('%d within %g s' % band for band in MONITORING_BANDS),
    'open_source': 'closed source: 1; an open-source licence but no maintained release: 2; open source and maintained '
                   'but installed from outside the distribution: 4; open source and installed from the distribution\'s '
                   'own packages (Debian 12 here): 5.',
}
REQUIREMENTS = ('redundancy', 'failover', 'monitoring', 'open_source')


def _rows(summaries, fault=None):
    return [row for s in summaries for row in s['rows'] if fault is None or row['fault'] == fault]


def _failover_band(crash):
    if crash is None or crash['rto_median'] is None:
        return 2
    return next((points for points, median, worst in FAILOVER_BANDS
                 if crash['rto_median'] <= median and crash['rto_worst'] <= worst and not crash['unrecovered']), 2)


def _failover_score(fact, defaults, no_loss):
    """Score and the deductions behind it (for the evidence column)."""
    if not fact.get('automatic_failover'):
        return 1, []
    crash = defaults['by_fault'].get('host_crash')
    points = _failover_band(crash)
    rows = defaults['rows']
    deductions = []
    split = sum(row['split_brain'] for row in rows)
    if split:
        deductions.append('%d split-brain observation(s)' % split)
    lost = sum(row['lost'] for row in rows) + sum(row['lost'] for s in no_loss for row in s['rows'])
    if lost:
        deductions.append('%d acknowledged write(s) lost' % lost)
    stuck = [row['fault'] for row in rows if row['unrecovered'] or row['rto_median'] is None]
    if stuck:
        deductions.append('no write after the fault or no measurement in %s' % ', '.join(stuck))
    return max(1, points - len(deductions)), deductions


def _redundancy_score(defaults, no_loss):
    replicas = defaults['deploy'].get('replicas', 0)
    if not replicas:
        return 1
    rows = defaults['rows']
    rejoined_always = bool(rows) and all(row['rejoined'] == row['runs'] for row in rows)
    no_loss_crashes = _rows(no_loss, 'host_crash')
    kept_every_write = bool(no_loss_crashes) and all(row['lost'] == 0 and not row['unverified'] for row in no_loss_crashes)
    return 2 + (replicas >= 2) + rejoined_always + kept_every_write


def _monitoring_score(fact, shown):
    if not fact.get('status_command'):
        return 1
    if shown is None:
        return None
    return next((points for points, seconds in MONITORING_BANDS if shown <= seconds), 2)


def _open_source_score(fact):
    if not fact.get('open_source'):
        return 1
    if fact.get('maintained') is False:
        return 2
    return 5 if fact.get('distribution_packages') else 4


def _defaults_group(fact, groups):
    """The solution's measured group of the collection's defaults, or None."""
    return next((g for g in groups if g['profile'] == fact.get('defaults_profile')), None)


def score(fact, summaries):
    """The study's four requirements for one solution (its descriptor facts), each
    with its score (None: not scored) and the evidence behind it. `summaries` are
    the solution's measured groups."""
    open_source = {'score': _open_source_score(fact), 'evidence': fact.get('license', '?')}
    defaults = _defaults_group(fact, summaries)
    if defaults is None:
        # Not measured with the collection's defaults: the study's description only.
        how = 'not measured' if fact.get('deployable') else 'not deployed here'
        return {
            'redundancy': {'score': None, 'evidence': '%s (%s)' % (fact.get('redundancy', '?'), how)},
            'failover': {'score': None, 'evidence': '%s (%s)' % (fact.get('failover_how', '?'), how)},
            'monitoring': {'score': None, 'evidence': '%s (%s)' % (fact.get('monitoring', '?'), how)},
            'open_source': open_source,
        }
    no_loss = [s for s in summaries if s['profile'] in fact.get('no_loss_profiles', [])]
    crash = defaults['by_fault'].get('host_crash')
    applicable = [fault for fault in FAULT_ORDER if fault not in fact.get('faults_not_applicable', [])]
    measured = '%d of %d fault classes measured' % (len(defaults['rows']), len(applicable))
    if len(applicable) < len(FAULT_ORDER):
        measured += ' (%s do not apply)' % ', '.join(f for f in FAULT_ORDER if f not in applicable)
    if crash is not None and crash['rto_median'] is not None:
        outage = 'median write outage %.1f s, worst %.1f s over %d host crash(es)' % (
            crash['rto_median'], crash['rto_worst'], crash['runs'])
    else:
        outage = 'host crash not measured'
    points, deductions = _failover_score(fact, defaults, no_loss)
    if fact.get('automatic_failover'):
        failover = 'automatic, %s' % outage
    else:
        failover = 'manual only; %s when the failover playbook runs right after the crash' % outage
    failover += '; %s; %s' % ('; '.join(deductions) or 'no split brain, no acknowledged write lost', measured)
    replicas = defaults['deploy'].get('replicas', 0)
    redundancy = '%s; %d streaming replica(s) after deployment; rejoined in %d of %d drill(s)' % (
        fact.get('redundancy', '?'), replicas, sum(row['rejoined'] for row in defaults['rows']),
        sum(row['runs'] for row in defaults['rows']))
    for s in no_loss:
        row = s['by_fault'].get('host_crash')
        if row is not None:
            redundancy += '; %s profile: %d of %d acknowledged write(s) lost over %d host crash(es)' % (
                s['profile'], row['lost'], row['acknowledged'], row['runs'])
    shown = crash['monitor_shown_median'] if crash else None
    monitoring = fact.get('monitoring', '?')
    if fact.get('status_command'):
        monitoring += ('; its status named the new primary %.1f s after a host crash (median)' % shown
                       if shown is not None else '; time to report a host crash not measured')
    return {
        'redundancy': {'score': _redundancy_score(defaults, no_loss), 'evidence': redundancy},
        'failover': {'score': points, 'evidence': failover},
        'monitoring': {'score': _monitoring_score(fact, shown), 'evidence': monitoring},
        'open_source': open_source,
    }


def which_one_when(solutions):
    """Short, generated advice: every sentence is a ranking or a count of the
    measured evidence of the collection's defaults."""
    advice = []
    measured = [s for s in solutions if s['measured_defaults']]
    automatic = [s for s in measured if s['facts'].get('automatic_failover') and s['crash'] is not None
                 and s['crash']['rto_median'] is not None]
    automatic.sort(key=lambda s: (s['crash']['rto_median'], s['crash']['rto_worst']))
    if automatic:
        advice.append('Shortest write outage after a host crash with the collection\'s defaults: %s.' % ', then '.join(
            '%s (median %.1f s, worst %.1f s, %d run(s))' % (s['title'], s['crash']['rto_median'], s['crash']['rto_worst'],
                                                             s['crash']['runs']) for s in automatic))
    kept = [s for s in measured if s['no_loss_crash'] is not None and s['no_loss_crash']['lost'] == 0]
    if kept:
        advice.append('When no acknowledged write may be lost: %s, measured with a synchronous standby over %s.' % (
            ' or '.join(s['title'] for s in kept),
            ', '.join('%d host crash(es) at a median %.1f s outage (%s)' % (
                s['no_loss_crash']['runs'], s['no_loss_crash']['rto_median'], s['ha']) for s in kept)))
    broken = [s for s in measured if s['split_brain'] or s['lost']]
    for s in broken:
        advice.append('%s with the collection\'s defaults: %s; read its rows before choosing it where that matters.' % (
            s['title'], ', '.join(part for part in (
                '%d split-brain observation(s) (%s)' % (s['split_brain'], ', '.join(s['split_brain_faults']))
                if s['split_brain'] else '',
                '%d acknowledged write(s) lost (%s)' % (s['lost'], ', '.join(s['lost_faults'])) if s['lost'] else '')
                if part)))
    for s in measured:
        if s['facts'].get('lab_limits'):
            advice.append('%s was measured without something it needs in production: %s' % (
                s['title'], s['facts']['lab_limits']))
    shown = sorted((s for s in measured if s['shown'] is not None), key=lambda s: s['shown'])
    if shown:
        advice.append('Quickest to report a failover in its own status: %s.' % ', then '.join(
            '%s (%.1f s)' % (s['title'], s['shown']) for s in shown))
    manual = [s for s in measured if not s['facts'].get('automatic_failover')]
    for s in manual:
        restored = ('restored writes in a median %.1f s' % s['crash']['rto_median']
                    if s['crash'] and s['crash']['rto_median'] is not None else 'was not measured after a host crash')
        advice.append('Without automatic failover, %s leaves every failover to a person; the collection\'s failover '
                      'playbook, run right after a host crash, %s.' % (s['title'], restored))
    return advice


def _solution_summary(ha, fact, mine):
    """What which_one_when and the scores read for one solution."""
    defaults = _defaults_group(fact, mine)
    rows = defaults['rows'] if defaults else []
    no_loss_crash = next((g['by_fault']['host_crash'] for g in mine
                          if g['profile'] in fact.get('no_loss_profiles', []) and 'host_crash' in g['by_fault']), None)
    crash = defaults['by_fault'].get('host_crash') if defaults else None
    return {
        'ha': ha, 'title': fact.get('title', ha), 'facts': fact, 'measured': bool(mine),
        'measured_defaults': defaults is not None, 'crash': crash, 'no_loss_crash': no_loss_crash,
        'shown': crash['monitor_shown_median'] if crash else None,
        'split_brain': sum(row['split_brain'] for row in rows),
        'split_brain_faults': [row['fault'] for row in rows if row['split_brain']],
        'lost': sum(row['lost'] for row in rows),
        'lost_faults': [row['fault'] for row in rows if row['lost']],
        'score': score(fact, mine),
    }


def plot(groups, path):
    """The fault matrix: one row per solution and profile, one column per fault
    class; each cell shows the median / worst write outage, coloured by the
    median (log scale), with lost writes (L), split-brain observations (S),
    failed drills (F) and outages that are lower bounds (≥) marked; grey where
    the fault does not apply to the solution, blank where it was not run."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    faults = sorted({row['fault'] for group in groups for row in group['rows']}, key=_fault_key)
    labels = ['%s (%s)' % (group['ha'], group['profile']) for group in groups]
    fig, ax = plt.subplots(figsize=(2.0 + 1.45 * len(faults), 1.2 + 0.5 * len(groups)))
    norm = LogNorm(vmin=1, vmax=120)
    cmap = plt.get_cmap('RdYlGn_r')
    for y, group in enumerate(groups):
        for x, fault in enumerate(faults):
            row = group['by_fault'].get(fault)
            if row is None:
                if fault in group.get('not_applicable', []):
                    ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, color='#EEEEEE'))
                    ax.text(x, y, 'does not apply', ha='center', va='center', fontsize=7, color='#777777')
                continue
            marks = ''.join(mark for mark, count in (('L', row['lost']), ('S', row['split_brain']), ('F', row['failed']))
                            if count)
            if row['rto_median'] is None:
                colour, text = '#BBBBBB', 'no measurement'
            else:
                colour = cmap(norm(min(max(row['rto_median'], 1), 120)))
                # at least: no write followed the fault in some run
                text = '%s%.3g / %.3g' % ('≥ ' if row['unrecovered'] else '', row['rto_median'], row['rto_worst'])
            ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, color=colour))
            ax.text(x, y, text + ('\n' + marks if marks else ''), ha='center', va='center', fontsize=7)
    ax.set_xlim(-0.5, len(faults) - 0.5)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.set_xticks(range(len(faults)))
    ax.set_xticklabels([fault.replace('_', ' ') for fault in faults], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_title('Write outage (s), median / worst; ≥ no write after the fault in a run;\nL lost writes, S split brain, F failed drill', fontsize=9, pad=24)
    colourbar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.025, pad=0.01)
    colourbar.set_label('median write outage (s)', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_FATAL = re.compile(r'fatal: \[[^\]]+\]: FAILED! => ')
_MESSAGE = re.compile(r'"msg": "((?:[^"\\]|\\.)*)"')
_RETRYING = re.compile(r'FAILED - RETRYING: \[([^\]]+)\]: (.+?) \(\d+ retries left\)')


def failure_reason(error):
    """The reason a drill failed, from the last lines of its output that compare.yml keeps.

    The message of the last failed task when it has one (the drill's own verdict), else
    the task that gave up after its retries, else the kept lines as they are.
    """
    fatal = list(_FATAL.finditer(error))
    if fatal:
        message = _MESSAGE.search(error, fatal[-1].end())
        if message and message.group(1).strip():
            return message.group(1).strip()
        retrying = _RETRYING.findall(error[:fatal[-1].start()])
        if retrying:
            host, task = retrying[-1]
            return '%s on %s: gave up after its retries' % (task, host)
    return error.strip()


def build_context(runs, facts):
    groups = []
    runs = [set_aside_superseded_drills(result, facts.get(result['ha'], {})) for result in runs]
    for result in runs:
        rows = summarise(result)
        groups.append({
            'ha': result['ha'],
            'profile': result.get('profile', 'default'),
            'settings': result.get('settings', {}),
            'deploy': result.get('deploy', {}),
            'rows': rows,
            'by_fault': {row['fault']: row for row in rows},
            'errors': [dict(d, reason=failure_reason(d['error'])) for d in result.get('drills', []) if d.get('error')],
            'set_aside': result.get('set_aside', []),
            'machine': result.get('machine', {}),
            'started': result.get('started'),
            'finished': result.get('finished'),
            'parts': result.get('parts', []),
        })
    for group in groups:
        fact = facts.get(group['ha'], {})
        group['not_applicable'] = fact.get('faults_not_applicable', [])
        group['lab_limits'] = fact.get('lab_limits')
    order = list(facts)
    # Per solution: the solution's stock settings, then this collection's tuned
    # defaults, then any other profile by name.
    profile_order = ['stock', 'default', 'tuned']
    groups.sort(key=lambda g: (order.index(g['ha']) if g['ha'] in order else 99,
                               profile_order.index(g['profile']) if g['profile'] in profile_order else 99, g['profile']))
    # Every system of the study has a row in the four-requirements table,
    # measured or not; the measured ones carry their evidence and scores.
    measured = {g['ha'] for g in groups}
    solutions = [_solution_summary(ha, facts.get(ha, {}), [g for g in groups if g['ha'] == ha])
                 for ha in order + sorted(measured - set(order))]
    faults = sorted({row['fault'] for g in groups for row in g['rows']}, key=_fault_key)
    return {'groups': groups, 'solutions': solutions, 'runs': runs, 'faults': faults,
            'rules': SCORE_RULES, 'requirements': REQUIREMENTS, 'advice': which_one_when(solutions)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--results', required=True, help='directory of <ha>-<profile>.json files')
    parser.add_argument('--solutions', required=True, help='directory of the solution descriptors (playbooks/vars/solutions)')
    parser.add_argument('--template', default=os.path.join(os.path.dirname(__file__), '..', 'playbooks',
                                                           'templates', 'comparison.md.j2'))
    parser.add_argument('--output', required=True, help='Markdown report to write')
    parser.add_argument('--chart', help='PNG chart to write (default: next to the report)')
    args = parser.parse_args(argv)

    facts = load_solutions(args.solutions)
    context = build_context(load_results(args.results), facts)
    chart = args.chart or os.path.splitext(args.output)[0] + '.png'
    context['chart'] = os.path.relpath(chart, os.path.dirname(os.path.abspath(args.output)))
    context['results_dir'] = os.path.relpath(args.results, os.path.dirname(os.path.abspath(args.output)))
    plot(context['groups'], chart)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(os.path.abspath(args.template))),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    report = env.get_template(os.path.basename(args.template)).render(**context)
    with open(args.output, 'w') as handle:
        handle.write(report)
    print('wrote %s and %s' % (args.output, chart))


if __name__ == '__main__':
    sys.exit(main())
