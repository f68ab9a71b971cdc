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
import statistics
import sys

import jinja2
import yaml

FAULT_CLASSES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'playbooks', 'faults', 'classes.yml')


def _fault_order():
    with open(FAULT_CLASSES) as handle:
        return yaml.safe_load(handle)['fault_classes']


FAULT_ORDER = _fault_order()


def load_solutions(directory):
    """Every solution descriptor (playbooks/vars/solutions/<name>.yml): the
    report's facts (report:), title, whether it is deployable and why not, in
    the descriptors' order."""
    solutions = {}
    for path in glob.glob(os.path.join(directory, '*.yml')):
        with open(path) as handle:
            descriptor = yaml.safe_load(handle)['pgha_solution']
        fact = dict(descriptor.get('report', {}))
        for key in ('title', 'deployable', 'reason', 'automatic_failover', 'order'):
            if key in descriptor:
                fact[key] = descriptor[key]
        solutions[descriptor['name']] = fact
    return dict(sorted(solutions.items(), key=lambda item: (item[1].get('order', 999), item[0])))


def load_results(results_dir):
    """One result per solution and profile: <ha>-<profile>.json merged with any
    <ha>-<profile>.<tag>.json (more runs of the same settings)."""
    merged = {}
    for path in sorted(glob.glob(os.path.join(results_dir, '*.json'))):
        with open(path) as handle:
            result = json.load(handle)
        result.setdefault('parts', [_part(result, path)])
        key = (result['ha'], result.get('profile', 'default'))
        if key in merged:
            merged[key] = _merge(merged[key], result, path)
        else:
            merged[key] = result
    if not merged:
        raise SystemExit('no result files in %s' % results_dir)
    return list(merged.values())


def _part(result, path):
    """Where and when one compare.yml run measured (a report line each)."""
    return {'file': os.path.basename(path), 'started': result.get('started'), 'finished': result.get('finished'),
            'machine': result.get('machine', {}), 'drills': len(result.get('drills', []))}


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
    # the deployment's numbers and the machine come from the earliest run
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
            'lost': sum(int(d.get('lost_count') or 0) for d in drills),
            # Runs whose writes were never read back (a drill that failed before the check).
            'unverified': sum(1 for d in drills if d.get('lost_count') is None),
            'acknowledged': sum(int(d.get('acknowledged') or 0) for d in drills),
            # Two primaries seen by the probe, plus an old primary that came back still a primary.
            'split_brain': sum(int(d.get('split_brain_count') or 0) + (1 if d.get('split_brain_after_restore') else 0)
                               for d in drills),
            'restored_primary_worst': _worst([_seconds(d.get('restored_primary_seconds')) for d in drills]),
            # dcs_partition: how long the primary cut off from its coordination still took writes.
            'fenced_worst': _worst([_seconds(d.get('old_primary_writable_seconds')) for d in drills]) if cut_off else None,
            'never_fenced': sum(1 for d in drills if d.get('old_primary_writable_at_end')) if cut_off else 0,
            # The solution's own status: seconds until it named the new primary.
            'monitor_shown_median': _median([_seconds((d.get('monitor') or {}).get('new_primary_shown'))
                                             for d in drills]),
            'rejoin_median': _median(rejoin),
            'rejoined': sum(1 for d in drills if d.get('rejoined')),
            'rejoin_methods': sorted({d.get('rejoin_method') for d in drills if d.get('rejoin_method')}),
            'failed': sum(1 for d in drills if d.get('error')),
            'stale_reads': _total([d.get('stale_reads') for d in drills]),
            'reads': _total([(d.get('reads') or {}).get('succeeded') for d in drills]),
        })
    return rows


def score(ha, facts, summaries):
    """The study's four requirements, each with the evidence behind it."""
    fact = facts.get(ha, {})
    if not summaries:
        # Not measured: the study's description only (the table says why next to it).
        return {
            'redundancy': fact.get('redundancy', '?'),
            'failover': fact.get('failover_how', '?'),
            'monitoring': fact.get('monitoring', '?'),
            'open_source': fact.get('license', '?'),
        }
    crash = [row for s in summaries for row in s['rows'] if row['fault'] == 'host_crash']
    lost = sum(row['lost'] for s in summaries for row in s['rows'])
    split = sum(row['split_brain'] for s in summaries for row in s['rows'])
    best_crash = min((r['rto_median'] for r in crash if r['rto_median'] is not None), default=None)
    replicas = max((s['deploy'].get('replicas', 0) for s in summaries), default=0)
    if fact.get('automatic_failover') and best_crash is not None:
        failover = 'automatic, median write outage %.1f s after a host crash' % best_crash
    elif fact.get('automatic_failover'):
        failover = 'automatic (host crash not measured in this run)'
    elif best_crash is not None:
        failover = 'manual only; %.1f s when the failover playbook runs right after the crash' % best_crash
    else:
        failover = 'manual only'
    shown = [(row['fault'], row['monitor_shown_median']) for s in summaries for row in s['rows']
             if row['fault'] in ('host_crash', 'switchover') and row['monitor_shown_median'] is not None]
    monitoring = fact.get('monitoring', '?')
    if shown:
        monitoring += '; its status named the new primary %s' % ', '.join(
            '%.1f s after a %s (median)' % (seconds, fault.replace('_', ' ')) for fault, seconds in shown)
    return {
        'redundancy': '%s; %d streaming replica(s) after deployment' % (fact.get('redundancy', '?'), replicas),
        'failover': '%s; %d acknowledged write(s) lost, %d split-brain observation(s)' % (failover, lost, split),
        'monitoring': monitoring,
        'open_source': fact.get('license', '?'),
    }


def plot(groups, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = []
    medians = []
    worsts = []
    for group in groups:
        for row in group['rows']:
            if row['rto_median'] is None:
                continue
            labels.append('%s\n(%s)\n%s' % (group['ha'], group['profile'], row['fault']))
            medians.append(row['rto_median'])
            worsts.append(row['rto_worst'])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 4.5))
    positions = range(len(labels))
    ax.bar(positions, medians, color='#4C72B0', label='median')
    ax.scatter(positions, worsts, color='#C44E52', marker='_', s=400, linewidths=3, label='worst', zorder=3)
    ax.set_xticks(list(positions))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel('longest gap between acknowledged writes (s)')
    ax.set_title('Write outage per solution and fault')
    ax.legend()
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_context(runs, facts):
    groups = []
    for result in runs:
        rows = summarise(result)
        groups.append({
            'ha': result['ha'],
            'profile': result.get('profile', 'default'),
            'settings': result.get('settings', {}),
            'deploy': result.get('deploy', {}),
            'rows': rows,
            'by_fault': {row['fault']: row for row in rows},
            'errors': [d for d in result.get('drills', []) if d.get('error')],
            'machine': result.get('machine', {}),
            'started': result.get('started'),
            'finished': result.get('finished'),
            'parts': result.get('parts', []),
        })
    order = list(facts)
    # Per solution: the solution's stock settings, then this collection's tuned
    # defaults, then any other profile by name.
    profile_order = ['stock', 'default', 'tuned']
    groups.sort(key=lambda g: (order.index(g['ha']) if g['ha'] in order else 99,
                               profile_order.index(g['profile']) if g['profile'] in profile_order else 99, g['profile']))
    # Every system of the study has a row in the four-requirements table,
    # measured or not; the measured ones carry their evidence.
    solutions = []
    measured = {g['ha'] for g in groups}
    for ha in order + sorted(measured - set(order)):
        mine = [g for g in groups if g['ha'] == ha]
        solutions.append({'ha': ha, 'facts': facts.get(ha, {}), 'measured': bool(mine), 'score': score(ha, facts, mine)})
    faults = sorted({row['fault'] for g in groups for row in g['rows']}, key=_fault_key)
    return {'groups': groups, 'solutions': solutions, 'runs': runs, 'faults': faults}


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
