# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ratios, target checks and the tables bench/run prints (text and markdown)."""

import statistics


def _g(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 1)


def fmt_s(v):
    if v is None:
        return '-'
    if v < 10:
        return '%.2fs' % v
    return '%.1fs' % v


def fmt_x(v, estimated=False):
    if v is None:
        return '-'
    return '%s%.0fx' % ('~' if estimated else '', v) if v >= 10 else '%s%.1fx' % ('~' if estimated else '', v)


def fmt_n(v):
    return '-' if v is None else str(v)


def summarize(res):
    """Per N: times, ratios (naive / module, at equal N; extrapolated above the cap),
    postmap counts; target verdicts."""
    out = dict(policy=[], targets=[])
    policy = res.get('policy') or {}
    base_cpu = res.get('baseline_empty_playbook_cpu') or 0.0

    def cpu(run):
        # CPU of the whole ansible-playbook run minus an empty playbook's
        if not run or run.get('cpu') is None or run.get('rc') != 0:
            return None
        return max(run['cpu'] - base_cpu, 0.001)
    naive = policy.get('lineinfile') or {}
    cap_n = max((int(n) for n in naive if _g(naive[n], 'apply', 'rc') == 0), default=None)
    cap = naive.get(str(cap_n)) if cap_n else None
    for n_str, m in sorted((policy.get('module') or {}).items(), key=lambda kv: int(kv[0])):
        n = int(n_str)
        row = dict(
            n=n,
            skipped=m.get('skipped'),
            apply=_g(m, 'apply', 'task_seconds'),
            noop=_g(m, 'noop', 'task_seconds'),
            one_changed=_g(m, 'one_changed', 'task_seconds'),
            direct_apply=_g(m, 'direct_apply', 'seconds'),
            direct_noop=_g(m, 'direct_noop', 'seconds'),
            direct_apply_cpu=_g(m, 'direct_apply', 'cpu'),
            direct_noop_cpu=_g(m, 'direct_noop', 'cpu'),
            postmap_apply=_g(m, 'apply', 'postmap_builds'),
            postmap_noop=_g(m, 'noop', 'postmap_builds'),
            postmap_one=_g(m, 'one_changed', 'postmap_builds'),
            noop_changed=_g(m, 'noop', 'changed'),
            cpu_apply=cpu(m.get('apply')),
            cpu_noop=cpu(m.get('noop')),
        )
        nv = naive.get(n_str)
        if nv and _g(nv, 'apply', 'rc') == 0:
            row.update(naive_apply=_g(nv, 'apply', 'task_seconds'), naive_noop=_g(nv, 'noop', 'task_seconds'),
                       naive_estimated=False, naive_postmap_apply=_g(nv, 'apply', 'postmap_builds'),
                       naive_cpu_apply=cpu(nv.get('apply')), naive_cpu_noop=cpu(nv.get('noop')),
                       naive_postmap_noop=_g(nv, 'noop', 'postmap_builds'))
        elif cap:
            per_apply = _g(cap, 'apply', 'per_entry')
            per_noop = _g(cap, 'noop', 'per_entry')
            handler = _g(cap, 'apply', 'handler_seconds') or 0.0
            cap_cpu_apply, cap_cpu_noop = cpu(cap.get('apply')), cpu(cap.get('noop'))
            row.update(naive_apply=per_apply * n + handler if per_apply else None,
                       naive_noop=per_noop * n if per_noop else None, naive_estimated=True,
                       naive_cpu_apply=cap_cpu_apply * n / cap_n if cap_cpu_apply else None,
                       naive_cpu_noop=cap_cpu_noop * n / cap_n if cap_cpu_noop else None)
        row['ratio_apply'] = _ratio(row.get('naive_apply'), row['apply'])
        row['ratio_noop'] = _ratio(row.get('naive_noop'), row['noop'])
        row['cpu_ratio_apply'] = _ratio(row.get('naive_cpu_apply'), row['cpu_apply'])
        row['cpu_ratio_noop'] = _ratio(row.get('naive_cpu_noop'), row['cpu_noop'])
        out['policy'].append(row)

    def target(name, goal, measured, ok):
        out['targets'].append(dict(name=name, goal=goal, measured=measured,
                                   met=None if ok is None else bool(ok)))

    rows = dict((r['n'], r) for r in out['policy'])
    big = rows.get(10000)
    if big:
        if big.get('skipped'):
            target('10,000 entries, apply, module time', '< 3 s', 'did not finish', False)
            target('10,000 entries, no-op, module time', '< 1 s', 'did not finish', False)
        else:
            da, ta = big['direct_apply'], big['apply']
            target('10,000 entries, apply, module time', '< 3 s',
                   'module %s (CPU %s), task %s' % (fmt_s(da), fmt_s(big['direct_apply_cpu']), fmt_s(ta)),
                   da is not None and da < 3.0)
            dn, tn = big['direct_noop'], big['noop']
            target('10,000 entries, no-op, module time', '< 1 s',
                   'module %s (CPU %s), task %s' % (fmt_s(dn), fmt_s(big['direct_noop_cpu']), fmt_s(tn)),
                   dn is not None and dn < 1.0)
    r500 = rows.get(500)
    if r500 and r500.get('ratio_apply') is not None:
        target('N=500 apply, lineinfile / tls_policy', '>= 50x',
               fmt_x(r500['ratio_apply'], r500.get('naive_estimated')), r500['ratio_apply'] >= 50)
        target('N=500 apply, CPU time ratio', '>= 50x',
               fmt_x(r500['cpu_ratio_apply'], r500.get('naive_estimated')),
               None if r500['cpu_ratio_apply'] is None else r500['cpu_ratio_apply'] >= 50)
        target('N=500 no-op, lineinfile / tls_policy', '-',
               fmt_x(r500['ratio_noop'], r500.get('naive_estimated')), None)
    postmap_ok = True
    measured = []
    for r in out['policy']:
        if r.get('skipped'):
            continue
        measured.append('N=%d: %s/%s/%s' % (r['n'], fmt_n(r['postmap_apply']), fmt_n(r['postmap_noop']),
                                            fmt_n(r['postmap_one'])))
        if r['postmap_apply'] != 1 or r['postmap_noop'] != 0 or r['postmap_one'] != 1:
            postmap_ok = False
    if measured:
        target('postmap runs (apply/no-op/one changed)', '1/0/1', '; '.join(measured), postmap_ok)

    pc = res.get('postconf')
    if pc:
        out['postconf'] = dict(
            module_apply=_g(pc, 'module_apply', 'task_seconds'), module_noop=_g(pc, 'module_noop', 'task_seconds'),
            direct_apply=_g(pc, 'direct_apply', 'seconds'), direct_noop=_g(pc, 'direct_noop', 'seconds'),
            command_apply=_g(pc, 'command_apply', 'task_seconds'),
            command_rerun=_g(pc, 'command_rerun', 'task_seconds'),
            module_noop_changed=_g(pc, 'module_noop', 'changed'),
            command_rerun_changed=_g(pc, 'command_rerun', 'tasks_changed'),
            cpu=dict((k, cpu(pc.get(k))) for k in ('module_apply', 'module_noop', 'command_apply', 'command_rerun')),
            postconf_calls=dict((k, _g(pc, k, 'postconf_calls'))
                                for k in ('module_apply', 'module_noop', 'command_apply', 'command_rerun')),
        )
        out['postconf']['ratio_apply'] = _ratio(out['postconf']['command_apply'], out['postconf']['module_apply'])
        out['postconf']['ratio_noop'] = _ratio(out['postconf']['command_rerun'], out['postconf']['module_noop'])
        c = out['postconf']['cpu']
        out['postconf']['cpu_ratio_apply'] = _ratio(c['command_apply'], c['module_apply'])
        out['postconf']['cpu_ratio_noop'] = _ratio(c['command_rerun'], c['module_noop'])
    out['shapes'] = shape_rows(res)
    out['role_runs'] = role_runs(res)
    out['curve'] = curve_rows(res)
    out['goals'] = fleet_goals(res, out)
    return out


# -- issue #16 "Fleet cost" --------------------------------------------------------

GOAL_NOOP_FLOOR = 3.0
GOAL_CONVERGE_NOOP = 2.0
GOAL_FLEET_SINGLE = 2.5
GOAL_BIG_NOOP_CPU = 1.0
GOAL_TASK_MODULE = 2.0
GOAL_CHECK_NOOP = 1.0


def _ratio2(a, b):
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 2)


def fmt_r(v):
    return '-' if v is None else '%.2fx' % v


def shape_rows(res):
    """Per N: the argument shapes of tls_policy, module (direct) and task times."""
    rows = []
    for n_str, m in sorted(((res.get('policy') or {}).get('module') or {}).items(), key=lambda kv: int(kv[0])):
        if m.get('skipped'):
            continue
        for shape, d in (('entries', m), ('policies', m.get('policies')), ('policies_src', m.get('policies_src'))):
            if not d:
                continue
            row = dict(n=int(n_str), shape=shape,
                       module_apply=_g(d, 'direct_apply', 'seconds'), module_apply_cpu=_g(d, 'direct_apply', 'cpu'),
                       module_noop=_g(d, 'direct_noop', 'seconds'), module_noop_cpu=_g(d, 'direct_noop', 'cpu'),
                       task_apply=_g(d, 'apply', 'task_seconds'), task_noop=_g(d, 'noop', 'task_seconds'),
                       noop_changed=_g(d, 'noop', 'changed'),
                       identical_table=d.get('identical_table') if shape != 'entries' else None)
            row['task_module_noop'] = _ratio2(row['task_noop'], row['module_noop'])
            row['task_module_apply'] = _ratio2(row['task_apply'], row['module_apply'])
            rows.append(row)
    return rows


RUN_ORDER = (('single', 'converge'), ('single', 'converge_preflight_off'), ('single', 'noop'),
             ('single', 'noop_preflight_off'), ('single', 'floor'),
             ('fleet', 'converge'), ('fleet', 'noop'), ('fleet', 'floor'), ('fleet', 'check_drift'))


def role_runs(res):
    """One row per measured role run (also the floor and check-drift)."""
    role = res.get('role') or {}
    rows = []
    items = [(label, phase, _g(role, label, phase)) for label, phase in RUN_ORDER]
    items.append(('rest', 'converge', role.get('rest_converge')))
    items += [('curve', 'noop', p) for p in role.get('curve') or []]
    for label, phase, p in items:
        if not p:
            continue
        changed = sorted(set(v for v in (p.get('changed_per_host') or {}).values()))
        rows.append(dict(
            run=label, phase=phase.replace('_', '-'), hosts=p.get('hosts'), forks=p.get('forks'), rc=p.get('rc'),
            wall=p.get('wall'), cpu=p.get('cpu'), tasks=p.get('tasks_per_host'), skipped=p.get('skipped_per_host'),
            round_trips=p.get('round_trips_per_host'), changed=','.join(str(c) for c in changed) or '-',
            handlers=p.get('handler_seconds'), verdict=p.get('verdict'), error=p.get('error'),
            execs=p.get('execs'),
            runs=('median of %d (%s-%s)' % (len(p['repeats']), fmt_s(min(r['wall'] for r in p['repeats'])),
                                            fmt_s(max(r['wall'] for r in p['repeats']))))
            if len(p.get('repeats') or []) > 1 else '',
            slowest=p.get('slowest_tasks') or []))
    return rows


def curve_rows(res):
    role = res.get('role') or {}
    points = [p for p in role.get('curve') or [] if p.get('rc') == 0]
    base = next((p for p in points if p['hosts'] == 1), None)
    rows = []
    for p in points:
        rows.append(dict(hosts=p['hosts'], forks=p.get('forks'), wall=p['wall'], cpu=p['cpu'],
                         wall_per_host=p.get('wall_per_host'),
                         vs_one=_ratio2(p['wall'], base['wall']) if base else None))
    return rows


def fleet_goals(res, summary):
    """The goals of issue #16, each with the numbers, the ratio, the target and met / not met
    (None: not measured in this run)."""
    goals = []
    role = res.get('role') or {}

    def ok(run):
        return bool(run) and run.get('rc') == 0

    def goal(name, measured, ratio, target, met, note=''):
        goals.append(dict(name=name, measured=measured, ratio=ratio, target=target,
                          met=None if met is None else bool(met), note=note))

    single, fleet = role.get('single') or {}, role.get('fleet') or {}
    noop, floor, conv = single.get('noop'), single.get('floor'), single.get('converge')
    if ok(noop) and ok(floor):
        r = _ratio2(noop['wall'], floor['wall'])
        goal('role no-op / one-task floor (ping), 1 host',
             'no-op %s, floor %s (CPU %s / %s = %s)' % (
                 fmt_s(noop['wall']), fmt_s(floor['wall']), fmt_s(noop['cpu']), fmt_s(floor['cpu']),
                 fmt_r(_ratio2(noop['cpu'], floor['cpu']))),
             r, '<= %.1fx' % GOAL_NOOP_FLOOR, r <= GOAL_NOOP_FLOOR)
    elif role:
        goal('role no-op / one-task floor (ping), 1 host', 'run failed', None, '<= %.1fx' % GOAL_NOOP_FLOOR, False)
    quiet = single.get('noop_preflight_off')
    if ok(quiet) and ok(floor):
        r = _ratio2(quiet['wall'], floor['wall'])
        goal('role no-op with enforce_tls_preflight: off / floor, 1 host',
             'no-op %s, floor %s (CPU %s / %s = %s)' % (
                 fmt_s(quiet['wall']), fmt_s(floor['wall']), fmt_s(quiet['cpu']), fmt_s(floor['cpu']),
                 fmt_r(_ratio2(quiet['cpu'], floor['cpu']))),
             r, '<= %.1fx' % GOAL_NOOP_FLOOR, r <= GOAL_NOOP_FLOOR, 'the same goal without the preflight read')

    def converge_goal(name, converge, no_op, note=''):
        handlers = converge.get('handler_seconds') or 0.0
        r = _ratio2(converge['wall'] - handlers, no_op['wall'])
        goal(name, 'converge %s, reload handlers %s, no-op %s; converge / no-op %s'
             % (fmt_s(converge['wall']), fmt_s(handlers), fmt_s(no_op['wall']),
                fmt_r(_ratio2(converge['wall'], no_op['wall']))),
             r, '<= %.1fx' % GOAL_CONVERGE_NOOP, r <= GOAL_CONVERGE_NOOP, note)

    if ok(noop) and ok(conv):
        converge_goal('(converge - reload handlers) / no-op, 1 host', conv, noop)
    elif role:
        goal('(converge - reload handlers) / no-op, 1 host', 'run failed', None, '<= %.1fx' % GOAL_CONVERGE_NOOP,
             False)
    qconv = single.get('converge_preflight_off')
    if ok(quiet) and ok(qconv):
        converge_goal('the same with enforce_tls_preflight: off, 1 host', qconv, quiet,
                      "without the preflight's probes (posttls-finger per destination made stricter)")
    fnoop = fleet.get('noop')
    if ok(fnoop) and ok(noop):
        # With 3 or more rounds the ratio is the median of the per-round ratios (the
        # single host's no-op and the fleet's run one after the other, at the same load);
        # else the ratio of the two medians.
        medians = _ratio2(fnoop['wall'], noop['wall'])
        rounds = role.get('fleet_rounds') or []
        r = round(statistics.median(rounds), 2) if len(rounds) >= 3 else medians
        per_round = ('; per round %s (median %s); ratio of the medians %s' % (
            ', '.join(fmt_r(x) for x in rounds), fmt_r(r), fmt_r(medians))) if len(rounds) >= 3 else ''
        goal('%d-host no-op (forks %d) / 1-host no-op' % (fleet.get('hosts'), fleet.get('forks')),
             '%s / %s (CPU %s / %s); %d CPUs%s' % (
                 fmt_s(fnoop['wall']), fmt_s(noop['wall']), fmt_s(fnoop['cpu']), fmt_s(noop['cpu']),
                 res['machine'].get('nproc') or 0, per_round),
             r, '<= %.1fx' % GOAL_FLEET_SINGLE, r <= GOAL_FLEET_SINGLE)
    elif role:
        goal('fleet no-op / 1-host no-op', 'run failed', None, '<= %.1fx' % GOAL_FLEET_SINGLE, False)
    fe, se = (fnoop or {}).get('execs'), (noop or {}).get('execs')
    if ok(fnoop) and ok(noop) and fe and se and fleet.get('hosts', 1) > 1:
        # What each host more costs, and on which side: the containers' share (the commands the
        # connection ran there and what they started) is the gateways' own CPU on a real fleet;
        # on this machine the containers and the controller share the same CPUs.
        extra = float(fleet['hosts'] - 1)
        per_host = (fnoop['cpu'] - noop['cpu']) / extra
        gw = (fe['gateway_cpu'] - se['gateway_cpu']) / extra
        goal('CPU of each host more in the no-op (fleet - 1 host) / (hosts - 1)',
             '%s: controller %s, containers %s; commands per host %s, module runs %s' % (
                 fmt_s(round(per_host, 3)), fmt_s(round(per_host - gw, 3)), fmt_s(round(gw, 3)),
                 fmt_n(fe['execs_per_host']), fmt_n(fe['module_runs_per_host'])),
             None, '(reported)', None,
             'on a real fleet the containers\' share runs on the gateways; here on the same %s CPUs'
             % (res['machine'].get('nproc') or 0))
    if summary.get('curve'):
        goal('no-op curve, wall by hosts at forks %s' % role.get('curve_forks'),
             ', '.join('%d: %s' % (c['hosts'], fmt_s(c['wall'])) for c in summary['curve']),
             summary['curve'][-1]['vs_one'], '(reported)', None,
             'largest / 1 host')
    big = [r for r in summary.get('shapes') or [] if r['n'] == 10000]
    if (res.get('policy') or {}).get('module', {}).get('10000') is not None:
        shapes = dict((r['shape'], r) for r in big)
        policy_res = res.get('policy') or {}
        # The goal is judged on the cheapest shape the module offers for big tables: policies_src
        # (the arguments do not grow with the table) where it exists, else policies; the others
        # are shown for comparison.
        cheapest = 'policies_src' if policy_res.get('policies_src_supported') else 'policies'
        for shape in ('policies_src', 'policies', 'entries'):
            r = shapes.get(shape)
            judged = shape == cheapest
            tag = '' if judged else ' (for comparison)'
            if not r:
                if shape == 'policies_src' and not judged:
                    continue        # a commit before policies_src: nothing to compare
                why = ('tls_policy has no %s: option at this commit' % shape
                       if shape != 'entries' and not policy_res.get('%s_supported' % shape, True)
                       else 'not measured')
                goal('10,000 %s: no-op module CPU%s' % (shape, tag), why, None, '< %.0f s' % GOAL_BIG_NOOP_CPU,
                     False if judged else None)
                goal('10,000 %s: no-op task / module time%s' % (shape, tag), why, None,
                     '<= %.1fx' % GOAL_TASK_MODULE, False if judged else None)
                continue
            cpu = r['module_noop_cpu']
            goal('10,000 %s: no-op module CPU%s' % (shape, tag),
                 'module CPU %s (wall %s)' % (fmt_s(cpu), fmt_s(r['module_noop'])), None,
                 '< %.0f s' % GOAL_BIG_NOOP_CPU, cpu is not None and cpu < GOAL_BIG_NOOP_CPU)
            ratio = r['task_module_noop']
            goal('10,000 %s: no-op task / module time%s' % (shape, tag),
                 'task %s, module %s' % (fmt_s(r['task_noop']), fmt_s(r['module_noop'])), ratio,
                 '<= %.1fx' % GOAL_TASK_MODULE, ratio is not None and ratio <= GOAL_TASK_MODULE)
            # What of the task's extra time grows with the table: (task - module) at 10,000
            # less the same at the smallest N measured (the fixed cost of any task: the module
            # payload built once per run, worker, transfer, result), against the module time.
            small = min((x for x in summary.get('shapes') or [] if x['shape'] == shape and x['n'] < 10000
                         and x.get('task_noop') is not None and x.get('module_noop') is not None),
                        key=lambda x: x['n'], default=None)
            if shape != 'entries' and small and r.get('task_noop') is not None and r.get('module_noop'):
                fixed = small['task_noop'] - small['module_noop']
                grows = (r['task_noop'] - r['module_noop']) - fixed
                goal('10,000 %s: no-op controller time that grows with the table / module time' % shape,
                     'task - module: %s at %d, %s at 10,000 (fixed per-task cost %s); module %s'
                     % (fmt_s(small['task_noop'] - small['module_noop']), small['n'],
                        fmt_s(r['task_noop'] - r['module_noop']), fmt_s(fixed), fmt_s(r['module_noop'])),
                     _ratio2(max(grows, 0.0), r['module_noop']), '(reported)', None)
    check = fleet.get('check_drift')
    if ok(check) and ok(fnoop):
        # as for the fleet: with 3 or more rounds the median of the per-round ratios (each
        # check-drift run right after the fleet's no-op, at the same load), else the medians' ratio
        medians = _ratio2(check['wall'], fnoop['wall'])
        rounds = role.get('check_drift_rounds') or []
        r = round(statistics.median(rounds), 2) if len(rounds) >= 3 else medians
        per_round = ('; per round %s (median %s); ratio of the medians %s' % (
            ', '.join(fmt_r(x) for x in rounds), fmt_r(r), fmt_r(medians))) if len(rounds) >= 3 else ''
        goal('check-drift / role no-op, %d hosts' % fleet.get('hosts'),
             'check-drift %s (%s), no-op %s; CPU %s / %s = %s%s'
             % (fmt_s(check['wall']), check.get('verdict'), fmt_s(fnoop['wall']), fmt_s(check['cpu']),
                fmt_s(fnoop['cpu']), fmt_r(_ratio2(check['cpu'], fnoop['cpu'])), per_round),
             r, '<= %.1fx' % GOAL_CHECK_NOOP, r <= GOAL_CHECK_NOOP)
    elif check is not None:
        goal('check-drift / role no-op', 'check-drift %s (rc %s)' % (check.get('verdict'), check.get('rc')), None,
             '<= %.1fx' % GOAL_CHECK_NOOP, False)
    return goals


def phase_tables(res):
    """[(n, [(phase, apply dict or None, no-op dict or None)])] for the N that has phases."""
    out = []
    for n_str, m in sorted(((res.get('policy') or {}).get('module') or {}).items(), key=lambda kv: int(kv[0])):
        apply_ = m.get('phases_apply')
        noop = m.get('phases_noop')
        if not apply_ and not noop:
            continue
        names = []
        for p in (apply_ or {}).get('phases', []) + (noop or {}).get('phases', []):
            if p['name'] not in names:
                names.append(p['name'])
        rows = []
        for name in names:
            a = [p for p in (apply_ or {}).get('phases', []) if p['name'] == name]
            b = [p for p in (noop or {}).get('phases', []) if p['name'] == name]
            rows.append((name, a[0] if a else None, b[0] if b else None))
        out.append((int(n_str), rows))
    return out


def _pc(p, key):
    return fmt_s(p[key]) if p else '-'


def exec_cell(execs):
    """commands per host (module runs per host), from the nsenter shim; - without it"""
    if not execs:
        return '-'
    return '%s (%s)' % (fmt_n(execs.get('execs_per_host')), fmt_n(execs.get('module_runs_per_host')))


def connection_name(role):
    return {'nsenter': 'community.docker.nsenter (no pipelining: five commands per module run)',
            'nsenter-pipelined': 'community.docker.nsenter with pipelining (bench/connection_plugins)',
            'podman': 'containers.podman.podman'}.get(role.get('connection') or 'podman', role.get('connection'))


VERDICT = {True: 'met', False: 'NOT MET', None: 'not measured'}


def goal_rows(res):
    return [[g['name'], g['measured'], fmt_r(g['ratio']), g['target'],
             '' if g['target'] == '(reported)' else VERDICT[g['met']]] for g in res['summary'].get('goals') or []]


def fleet_tables(res):
    """[(title, header, rows)]: the runs of the role section, the curve, the argument shapes."""
    s = res['summary']
    role = res.get('role') or {}
    tables = []
    if s.get('role_runs'):
        rows = []
        for r in s['role_runs']:
            rows.append([r['run'], r['phase'], fmt_n(r['hosts']), fmt_n(r['forks']), fmt_s(r['wall']),
                         fmt_s(r['cpu']), fmt_n(r['tasks']), fmt_n(r['skipped']), fmt_n(r['round_trips']),
                         r['changed'], fmt_s(r['handlers']) if r['handlers'] else '-',
                         exec_cell(r['execs']), fmt_s((r['execs'] or {}).get('controller_cpu')),
                         fmt_s((r['execs'] or {}).get('gateway_cpu')),
                         r['runs'],
                         (r['verdict'] or '') + ('' if r['rc'] == 0 else ' FAILED (rc %s) %s' % (r['rc'], r['error'] or ''))])
        tables.append(('enforce_tls role runs, %s policy entries, connection %s (tasks, skipped, round trips, '
                       'changed: per host, from the callback; round trips = module executions on the host; '
                       'reload = the reload handler tasks: since 489facb one postfix_service task, before it validate/status/reload); '
                       'commands = what the connection ran in the containers per host '
                       '(nsenter, counted by a PATH shim), CPU containers = the CPU time of those commands '
                       'and everything they started there (the gateways\' share), CPU controller = the rest'
                       % (role.get('policies'), connection_name(role)),
                       ['run', 'phase', 'hosts', 'forks', 'wall', 'CPU', 'tasks', 'skipped', 'round trips',
                        'changed', 'reload', 'commands (module runs)', 'CPU controller', 'CPU containers',
                        'wall of', ''], rows))
    if s.get('curve'):
        tables.append(('No-op wall time by fleet size, forks %s, %s CPUs'
                       % (role.get('curve_forks'), res['machine'].get('nproc')),
                       ['hosts', 'forks', 'wall', 'CPU', 'wall / host', 'wall / 1 host'],
                       [[str(c['hosts']), fmt_n(c['forks']), fmt_s(c['wall']), fmt_s(c['cpu']),
                         fmt_s(c['wall_per_host']), fmt_r(c['vs_one'])] for c in s['curve']]))
    if s.get('shapes'):
        tables.append(('tls_policy argument shapes: module = the module run directly (median), task = through '
                       'ansible-playbook (callback)',
                       ['N', 'shape', 'module apply', 'CPU', 'module no-op', 'CPU', 'task apply', 'task no-op',
                        'task / module no-op', 'same table'],
                       [[str(r['n']), r['shape'], fmt_s(r['module_apply']), fmt_s(r['module_apply_cpu']),
                         fmt_s(r['module_noop']), fmt_s(r['module_noop_cpu']), fmt_s(r['task_apply']),
                         fmt_s(r['task_noop']), fmt_r(r['task_module_noop']),
                         '' if r['identical_table'] is None else str(r['identical_table'])] for r in s['shapes']]))
    return tables


def text_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(row):
        return ('  ' + ' | '.join(str(x).ljust(w) for x, w in zip(row, widths))).rstrip()
    return [line(header), '  ' + '-+-'.join('-' * w for w in widths)] + [line(r) for r in rows]


def markdown_table(header, rows):
    out = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for h in header) + '|']
    for r in rows:
        out.append('| ' + ' | '.join(str(x).replace('|', '/') for x in r) + ' |')
    return out


def python_env_note(machine):
    """What bench.operator_environment removed (None: a run from before it existed)."""
    removed = machine.get('python_env_removed')
    if removed is None:
        return 'shell environment inherited'
    if not removed:
        return 'no PYTHONUNBUFFERED / PYTHONDONTWRITEBYTECODE to remove'
    return 'removed from the environment: ' + ', '.join('%s=%s' % kv for kv in sorted(removed.items()))


def render(res):
    s = res['summary']
    m = res['machine']
    lines = []
    lines.append('mailgw.postfix_tls benchmarks (%s profile), %s' % (res.get('profile'), m['date']))
    lines.append('machine: %s CPUs (%s), %s GiB RAM, %s, %s; load average %.1f before, %.1f after'
                 % (m['nproc'], m['cpu_model'], m['memory_gib'], m['os'], m['ansible_core'],
                    res.get('load_before') or 0, res.get('load_after') or 0))
    lines.append('empty playbook (baseline): %s; pipelining %s; %s'
                 % (fmt_s(res.get('baseline_empty_playbook')), res['settings'].get('pipelining'),
                    python_env_note(m)))
    if s.get('goals'):
        lines.append('')
        lines.append('Issue #16 "Fleet cost" goals (reported, never asserted)')
        lines.extend(text_table(['goal', 'measured', 'ratio', 'target', 'verdict'], goal_rows(res)))
    if s['policy']:
        lines.append('')
        lines.append('TLS policy entries: one tls_policy task (entries:) vs one lineinfile per entry + postmap handler')
        lines.append('task = Ansible task time (callback); module = the module run directly; '
                     'postmap = index builds apply/no-op/one changed; ~ = lineinfile extrapolated')
        hdr = ('%7s | %9s %9s %9s | %9s %9s | %7s | %11s %11s | %8s %8s'
               % ('N', 'apply', 'no-op', '1 changed', 'mod apply', 'mod no-op', 'postmap',
                  'lineinfile', 'li no-op', 'ratio', 'no-op'))
        lines.append(hdr)
        lines.append('-' * len(hdr))
        for r in s['policy']:
            if r.get('skipped'):
                lines.append('%7d | %s' % (r['n'], r['skipped']))
                continue
            est = r.get('naive_estimated')
            lines.append('%7d | %9s %9s %9s | %9s %9s | %7s | %11s %11s | %8s %8s' % (
                r['n'], fmt_s(r['apply']), fmt_s(r['noop']), fmt_s(r['one_changed']),
                fmt_s(r['direct_apply']), fmt_s(r['direct_noop']),
                '%s/%s/%s' % (fmt_n(r['postmap_apply']), fmt_n(r['postmap_noop']), fmt_n(r['postmap_one'])),
                ('~' if est else '') + fmt_s(r.get('naive_apply')), ('~' if est else '') + fmt_s(r.get('naive_noop')),
                fmt_x(r.get('ratio_apply'), est), fmt_x(r.get('ratio_noop'), est)))
        lines.append('')
        lines.append('CPU seconds (whole ansible-playbook run minus an empty playbook; robust on a busy machine)')
        hdr = '%7s | %9s %9s | %11s %11s | %8s %8s' % ('N', 'apply', 'no-op', 'lineinfile', 'li no-op', 'ratio', 'no-op')
        lines.append(hdr)
        lines.append('-' * len(hdr))
        for r in s['policy']:
            if r.get('skipped'):
                continue
            est = '~' if r.get('naive_estimated') else ''
            lines.append('%7d | %9s %9s | %11s %11s | %8s %8s' % (
                r['n'], fmt_s(r['cpu_apply']), fmt_s(r['cpu_noop']), est + fmt_s(r.get('naive_cpu_apply')),
                est + fmt_s(r.get('naive_cpu_noop')), fmt_x(r.get('cpu_ratio_apply'), bool(est)),
                fmt_x(r.get('cpu_ratio_noop'), bool(est))))
        naive = (res.get('policy') or {}).get('lineinfile') or {}
        for n, nv in sorted(naive.items(), key=lambda kv: int(kv[0])):
            lines.append('  lineinfile N=%s: %s per entry applied, %s per entry no-op; postmap %s/%s; '
                         'same table as tls_policy: %s'
                         % (n, fmt_s(_g(nv, 'apply', 'per_entry')), fmt_s(_g(nv, 'noop', 'per_entry')),
                            fmt_n(_g(nv, 'apply', 'postmap_builds')), fmt_n(_g(nv, 'noop', 'postmap_builds')),
                            _g(res, 'policy', 'identical_tables', n)))
    for n, rows in phase_tables(res):
        lines.append('')
        lines.append('Where the module time goes, N=%d (bench/phases.py; cpu = this process, child = postconf/postmap)' % n)
        lines.append('  %-50s | %8s %8s %8s | %8s %8s %8s' % ('phase', 'apply', 'cpu', 'child', 'no-op', 'cpu', 'child'))
        for name, a, b in rows:
            lines.append('  %-50s | %8s %8s %8s | %8s %8s %8s' % (
                name, _pc(a, 'wall'), _pc(a, 'cpu'), _pc(a, 'child_cpu'), _pc(b, 'wall'), _pc(b, 'cpu'),
                _pc(b, 'child_cpu')))
    pc = s.get('postconf')
    if pc:
        lines.append('')
        lines.append('30 main.cf parameters: one postconf task (params:) vs 30 command: postconf -e tasks')
        lines.append('  postconf module: apply %s (module %s), no-op %s (module %s, changed=%s)'
                     % (fmt_s(pc['module_apply']), fmt_s(pc['direct_apply']), fmt_s(pc['module_noop']),
                        fmt_s(pc['direct_noop']), pc['module_noop_changed']))
        lines.append('  postconf -e tasks: apply %s, re-run %s (%s of 30 tasks report changed)'
                     % (fmt_s(pc['command_apply']), fmt_s(pc['command_rerun']), fmt_n(pc['command_rerun_changed'])))
        lines.append('  ratio: apply %s, no-op %s; postconf processes: module %s/%s, command %s/%s'
                     % (fmt_x(pc['ratio_apply']), fmt_x(pc['ratio_noop']),
                        fmt_n(pc['postconf_calls']['module_apply']), fmt_n(pc['postconf_calls']['module_noop']),
                        fmt_n(pc['postconf_calls']['command_apply']), fmt_n(pc['postconf_calls']['command_rerun'])))
        c = pc['cpu']
        lines.append('  CPU seconds: module %s / %s, command %s / %s; CPU ratio apply %s, no-op %s'
                     % (fmt_s(c['module_apply']), fmt_s(c['module_noop']), fmt_s(c['command_apply']),
                        fmt_s(c['command_rerun']), fmt_x(pc['cpu_ratio_apply']), fmt_x(pc['cpu_ratio_noop'])))
        lines.append('  same main.cf values from both: %s' % _g(res, 'postconf', 'identical_main_cf'))
    for title, header, rows in fleet_tables(res):
        lines.append('')
        lines.append(title)
        lines.extend(text_table(header, rows))
    role = res.get('role')
    if role:
        for r in s['role_runs']:
            if r['slowest'] and r['phase'] in ('converge', 'noop', 'check-drift') and r['run'] != 'curve':
                lines.append('  slowest tasks, %s %s: %s' % (r['run'], r['phase'], '; '.join(
                    '%s %s' % (t['task'], fmt_s(t['mean_seconds'])) for t in r['slowest'])))
    if s['targets']:
        lines.append('')
        lines.append('Targets (goals, not assertions)')
        for t in s['targets']:
            verdict = {True: 'met', False: 'NOT MET', None: ''}[t['met']]
            lines.append('  %-40s goal %-7s measured %-44s %s' % (t['name'], t['goal'], t['measured'], verdict))
    if res.get('errors'):
        lines.append('')
        for k, v in res['errors'].items():
            lines.append('section %s failed: %s' % (k, v))
    lines.append('')
    lines.append('total %s' % fmt_s(res.get('total_seconds')))
    return '\n'.join(lines)


def render_markdown(res):
    """The same tables, for bench/README.md."""
    s = res['summary']
    m = res['machine']
    out = []
    if m.get('tree_label'):
        what = 'the collection in %s (%s; bench code of commit %s)' % (m.get('tree'), m['tree_label'], m['git_commit'])
    else:
        what = 'commit %s%s' % (m['git_commit'], ' (with uncommitted changes)' if m['git_dirty'] else '')
    out.append('Run: `bench/run%s`, %s, %s.' % (' --quick' if res.get('profile') == 'quick' else '', m['date'], what))
    out.append('')
    out.append('| machine | |')
    out.append('|---|---|')
    for k, label in (('nproc', 'CPUs (nproc)'), ('cpu_model', 'CPU'), ('memory_gib', 'memory (GiB)'),
                     ('os', 'OS'), ('kernel', 'kernel'), ('ansible_core', 'Ansible'),
                     ('controller_python', 'controller Python'), ('target_python', 'target Python (local)'),
                     ('postfix_host', 'Postfix (host)'), ('podman', 'podman')):
        out.append('| %s | %s |' % (label, m.get(k)))
    out.append('| load average before / after | %.1f / %.1f |' % (res.get('load_before') or 0,
                                                                  res.get('load_after') or 0))
    out.append('| empty playbook (baseline) | %s |' % fmt_s(res.get('baseline_empty_playbook')))
    out.append('| pipelining | %s |' % res['settings'].get('pipelining'))
    out.append('| Python environment | %s |' % python_env_note(m))
    role = res.get('role')
    if role:
        out.append('| connection, forks | %s; single 1, fleet %s, curve %s |' % (
            connection_name(role), _g(role, 'fleet', 'forks'), role.get('curve_forks')))
    if s.get('goals'):
        out.append('')
        out.append('Issue #16 "Fleet cost" goals:')
        out.append('')
        out.extend(markdown_table(['goal', 'measured', 'ratio', 'target', 'verdict'], goal_rows(res)))
    if s['policy']:
        out.append('')
        out.append('| N | apply | no-op | 1 changed | module apply | module no-op | postmap runs | '
                   'lineinfile apply | lineinfile no-op | ratio apply | ratio no-op |')
        out.append('|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|')
        for r in s['policy']:
            if r.get('skipped'):
                out.append('| %d | %s | | | | | | | | | |' % (r['n'], r['skipped']))
                continue
            est = r.get('naive_estimated')
            out.append('| %d | %s | %s | %s | %s | %s | %s/%s/%s | %s | %s | %s | %s |' % (
                r['n'], fmt_s(r['apply']), fmt_s(r['noop']), fmt_s(r['one_changed']),
                fmt_s(r['direct_apply']), fmt_s(r['direct_noop']),
                fmt_n(r['postmap_apply']), fmt_n(r['postmap_noop']), fmt_n(r['postmap_one']),
                ('~' if est else '') + fmt_s(r.get('naive_apply')), ('~' if est else '') + fmt_s(r.get('naive_noop')),
                fmt_x(r.get('ratio_apply'), est), fmt_x(r.get('ratio_noop'), est)))
    for n, rows in phase_tables(res):
        out.append('')
        out.append('Where the module time goes at N=%d (`bench/phases.py`; cpu: the module process; '
                   'child: postconf/postmap):' % n)
        out.append('')
        out.append('| phase | apply wall | apply cpu | apply child cpu | no-op wall | no-op cpu | no-op child cpu |')
        out.append('|---|---:|---:|---:|---:|---:|---:|')
        for name, a, b in rows:
            out.append('| %s | %s | %s | %s | %s | %s | %s |' % (
                name.replace('|', '/'), _pc(a, 'wall'), _pc(a, 'cpu'), _pc(a, 'child_cpu'),
                _pc(b, 'wall'), _pc(b, 'cpu'), _pc(b, 'child_cpu')))
    if s['policy']:
        out.append('')
        out.append('CPU seconds of the same runs (whole `ansible-playbook` minus an empty playbook):')
        out.append('')
        out.append('| N | apply | no-op | lineinfile apply | lineinfile no-op | CPU ratio apply | CPU ratio no-op |')
        out.append('|---:|---:|---:|---:|---:|---:|---:|')
        for r in s['policy']:
            if r.get('skipped'):
                continue
            est = '~' if r.get('naive_estimated') else ''
            out.append('| %d | %s | %s | %s | %s | %s | %s |' % (
                r['n'], fmt_s(r['cpu_apply']), fmt_s(r['cpu_noop']), est + fmt_s(r.get('naive_cpu_apply')),
                est + fmt_s(r.get('naive_cpu_noop')), fmt_x(r.get('cpu_ratio_apply'), bool(est)),
                fmt_x(r.get('cpu_ratio_noop'), bool(est))))
    pc = s.get('postconf')
    if pc:
        out.append('')
        out.append('| 30 parameters | apply | no-op / re-run | postconf processes (apply / no-op) |')
        out.append('|---|---:|---:|---:|')
        out.append('| postconf module, one task (module alone) | %s (%s) | %s (%s) | %s / %s |' % (
            fmt_s(pc['module_apply']), fmt_s(pc['direct_apply']), fmt_s(pc['module_noop']),
            fmt_s(pc['direct_noop']), fmt_n(pc['postconf_calls']['module_apply']),
            fmt_n(pc['postconf_calls']['module_noop'])))
        out.append('| 30 `command: postconf -e` tasks | %s | %s (%s changed) | %s / %s |' % (
            fmt_s(pc['command_apply']), fmt_s(pc['command_rerun']), fmt_n(pc['command_rerun_changed']),
            fmt_n(pc['postconf_calls']['command_apply']), fmt_n(pc['postconf_calls']['command_rerun'])))
        out.append('| ratio | %s | %s | |' % (fmt_x(pc['ratio_apply']), fmt_x(pc['ratio_noop'])))
        c = pc['cpu']
        out.append('| CPU seconds: module / commands (ratio) | %s / %s (%s) | %s / %s (%s) | |' % (
            fmt_s(c['module_apply']), fmt_s(c['command_apply']), fmt_x(pc['cpu_ratio_apply']),
            fmt_s(c['module_noop']), fmt_s(c['command_rerun']), fmt_x(pc['cpu_ratio_noop'])))
    role = res.get('role')
    if role:
        out.append('')
        out.append('Containers: %s (Postfix %s, Python %s), `--network none`, %d started in %ss; connection %s%s.' % (
            res['settings']['image'], role.get('container_postfix'), role.get('container_python'),
            role.get('containers') or 0, role.get('container_start_seconds'), connection_name(role),
            ' (PID written into the inventory once)' if (role.get('connection') or '').startswith('nsenter') else ''))
    for title, header, rows in fleet_tables(res):
        out.append('')
        out.append(title + ':')
        out.append('')
        out.extend(markdown_table(header, rows))
    if role:
        out.append('')
        out.append('Slowest tasks (mean per host):')
        out.append('')
        for r in s['role_runs']:
            if r['slowest'] and r['phase'] in ('converge', 'noop', 'check-drift') and r['run'] != 'curve':
                out.append('- %s %s: %s' % (r['run'], r['phase'], '; '.join(
                    '%s %s' % (t['task'], fmt_s(t['mean_seconds'])) for t in r['slowest'])))
    if s['targets']:
        out.append('')
        out.append('| target | goal | measured | |')
        out.append('|---|---|---|---|')
        for t in s['targets']:
            verdict = {True: 'met', False: '**not met**', None: ''}[t['met']]
            out.append('| %s | %s | %s | %s |' % (t['name'], t['goal'], t['measured'], verdict))
    return '\n'.join(out) + '\n'


def merge(results):
    """Several results files as one (sections of later files win): e.g. a
    `--only role` and a `--only policy` run of the same commit."""
    out = dict(results[0])
    for res in results[1:]:
        for key in ('policy', 'postconf', 'role', 'errors', 'baseline_empty_playbook',
                    'baseline_empty_playbook_cpu'):
            if key in res:
                out[key] = res[key]
        out['load_after'] = max(out.get('load_after') or 0, res.get('load_after') or 0)
        out['load_before'] = max(out.get('load_before') or 0, res.get('load_before') or 0)
        out['total_seconds'] = (out.get('total_seconds') or 0) + (res.get('total_seconds') or 0)
    return out


def main():
    """Re-render results: python bench/report.py [--markdown | --goals] RESULTS.json [MORE.json ...]
    (several files are merged, later sections win; default bench/results/latest.json)."""
    import json
    import sys
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    results = []
    for path in args or ['bench/results/latest.json']:
        with open(path) as f:
            results.append(json.load(f))
    res = merge(results)
    res['summary'] = summarize(res)
    if '--goals' in sys.argv:
        print('\n'.join(markdown_table(['goal', 'measured', 'ratio', 'target', 'verdict'], goal_rows(res))))
    elif '--markdown' in sys.argv:
        print(render_markdown(res))
    else:
        print(render(res))


if __name__ == '__main__':
    main()
