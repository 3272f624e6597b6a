# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls benchmarks (run through bench/run, see bench/README.md).

Sections:
  policy    N policy entries: one tls_policy task (entries:) versus one
            lineinfile per entry plus a postmap handler; apply, no-op re-run,
            one entry changed; postmap runs counted with a PATH shim.
  postconf  30 main.cf parameters: one postconf task (params:) versus 30
            `command: postconf -e` tasks; apply and re-run.
  role      roles/enforce_tls on containers (--network none) over the
            nsenter connection (or podman): converge, no-op and a one-task
            floor (ping) on one host and on a fleet (forks = hosts),
            playbooks/check-drift on the fleet, and the no-op curve over
            1..32 hosts at forks 8 (issue #16 "Fleet cost").
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
# workload.rendered_lines uses the collection's own grammar
sys.path.insert(1, os.environ.get('COLLECTIONS_DIR') or os.path.join(ROOT, '.cache', 'collections'))

import module_direct  # noqa: E402
import playbook_runner as pr  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402

IMAGE = os.environ.get('BENCH_IMAGE', 'localhost/mailgw-postfix:bookworm')

# Fleet size of issue #16's scaling goal: 8 hosts with forks 8 (on 2 CPUs the
# controller and the containers share the CPUs, so more forks mostly queue).
DEFAULT_HOSTS = 8
# The scaling curve: no-op wall time for these fleet sizes at fixed forks.
DEFAULT_CURVE = [1, 4, 8, 16, 32]
CURVE_FORKS = 8

# The per-entry lineinfile side costs about half a CPU second per entry and
# run, so it is measured at one capped N and extrapolated above it (marked ~):
# its cost per entry does not fall with N (each entry is one module run on a
# growing file), so the extrapolated ratios are conservative.
# `--naive-sizes 500` measures N = 500 directly (adds about 5 minutes).
PROFILES = {
    'full': dict(module_ns=[100, 500, 1000, 10000], naive_ns=[200], naive_cap=200,
                 direct_repeats=3, hosts=DEFAULT_HOSTS, role_policies=200, curve=DEFAULT_CURVE,
                 repeats=3),
    'quick': dict(module_ns=[100, 1000], naive_ns=[50], naive_cap=50,
                  direct_repeats=1, hosts=4, role_policies=50, curve=[1, 4], repeats=1),
}

# Targets from the issue (goals; reported, never asserted).
TARGET_APPLY_10K = 3.0
TARGET_NOOP_10K = 1.0
TARGET_RATIO_500 = 50.0


def log(msg):
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


# -- machine ---------------------------------------------------------------------

def _cmd_out(cmd, default=''):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=60, check=False).stdout.decode('utf-8', 'replace').strip()
    except (OSError, subprocess.SubprocessError):
        return default


def machine_info():
    cpu = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                mem_kb = int(line.split()[1])
    os_name = ''
    try:
        with open('/etc/os-release') as f:
            for line in f:
                if line.startswith('PRETTY_NAME='):
                    os_name = line.split('=', 1)[1].strip().strip('"')
    except OSError:
        pass
    ansible_version = _cmd_out(['ansible', '--version']).splitlines()
    return dict(
        nproc=os.cpu_count(),
        memory_gib=round(mem_kb / 1024.0 / 1024.0, 1),
        cpu_model=cpu or platform.processor(),
        kernel=platform.release(),
        os=os_name,
        controller_python=platform.python_version(),
        target_python=_cmd_out([pr.LOCAL_PYTHON, '--version']).replace('Python ', ''),
        ansible_core=ansible_version[0] if ansible_version else '',
        postfix_host=_cmd_out(['postconf', '-d', '-h', 'mail_version']),
        podman=_cmd_out(['podman', '--version']).replace('podman version ', ''),
        git_commit=_cmd_out(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD']),
        git_dirty=bool(_cmd_out(['git', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no'])),
        tree=module_direct.tree(),
        tree_label=os.environ.get('BENCH_TREE_LABEL', ''),
        date=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
    )


# Variables a shell here may set that an operator's controller and a gateway's
# Python do not have, and that change what is measured: with PYTHONUNBUFFERED,
# a Python that reads its program from stdin (a pipelined module with
# `-c local`: the local connection passes the controller's environment on)
# reads it one byte per read(2), 0.45 s for the 0.9 MB of a 10,000-entry
# task; PYTHONDONTWRITEBYTECODE makes every ansible-playbook compile the
# collection's plugins again.  Removed for every run unless --inherit-python-env.
OPERATOR_UNSET = ('PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE')


def operator_environment():
    """Removes OPERATOR_UNSET from this process's environment (inherited by every
    playbook and module run); returns what was removed."""
    return dict((name, os.environ.pop(name)) for name in OPERATOR_UNSET if name in os.environ)


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# -- helpers ---------------------------------------------------------------------

def run_summary(run, action=None):
    """The common fields of one measured playbook run."""
    per_task = [r for r in run['tasks'] if action is None or r['action'].endswith(action)]
    failed = [r for r in run['tasks'] if r['status'] in ('failed', 'unreachable')]
    out = dict(
        rc=run['rc'],
        timed_out=run['timed_out'],
        wall=round(run['wall'], 3),
        cpu=round(run['cpu'], 3),
        task_seconds=round(sum(r['seconds'] or 0 for r in per_task), 3) if per_task else None,
        changed=any(r['changed'] for r in per_task),
        postmap_builds=len(pr.postmap_builds(run)),
        postmap_calls=pr.count_calls(run, 'postmap'),
        postconf_calls=pr.count_calls(run, 'postconf'),
        log=run['log'],
    )
    ran = [r['postmap_ran'] for r in per_task if 'postmap_ran' in r]
    if ran:
        out['postmap_ran'] = any(ran)
    if failed:
        out['error'] = failed[0].get('msg', '')[:500]
    return out


def direct_runs(name, make_args, repeats, env, timeout, label):
    """Run a module directly `repeats` times; make_args(i) -> (args_file, ready dir).
    Returns the median seconds and the last result (or the failure)."""
    times = []
    cpus = []
    last = None
    for i in range(repeats):
        args_file = make_args(i)
        res = module_direct.run_module(name, args_file, timeout, env=env)
        last = res
        if res['timed_out'] or res['rc'] != 0:
            what = 'TIMED OUT after %ss' % timeout if res['timed_out'] else 'failed'
            detail = (res['result'] or {}).get('msg', res['stderr'])[:300]
            log('  %s: direct run %s (rc=%s) %s' % (label, what, res['rc'], detail))
            break
        times.append(res['seconds'])
        cpus.append(res['cpu'])
    out = dict(seconds=round(statistics.median(times), 3) if times else None,
               cpu=round(statistics.median(cpus), 3) if cpus else None,
               runs=len(times), timed_out=bool(last and last['timed_out']),
               rc=last['rc'] if last else None)
    if last and last['result']:
        out['changed'] = last['result'].get('changed')
        if 'postmap_ran' in last['result']:
            out['postmap_ran'] = last['result']['postmap_ran']
        if last['result'].get('failed'):
            out['error'] = str(last['result'].get('msg'))[:500]
    return out


# single-host converges measured (each on a fresh container), the median reported
CONVERGE_REPEATS = 3


def median_run(summaries, key=None):
    """The run with the median wall time (or KEY(run)) (failed runs first, so a failure
    shows), with every run's wall and CPU time under 'repeats'."""
    failed = [r for r in summaries if r['rc'] != 0]
    ranked = sorted(summaries, key=key or (lambda r: r['wall']))
    pick = dict(failed[0] if failed else ranked[(len(ranked) - 1) // 2])
    pick['repeats'] = [dict(wall=r['wall'], cpu=r['cpu'], rc=r['rc']) for r in summaries]
    return pick


def dump_table(config_dir):
    """Sorted `postmap -s` of the built index: the table as Postfix sees it."""
    out = _cmd_out(['postmap', '-c', config_dir, '-s', 'hash:%s/tls_policy' % config_dir])
    return sorted(out.splitlines())


class Bench:

    def __init__(self, opts, profile):
        self.opts = opts
        self.profile = profile
        self.workdir = tempfile.mkdtemp(prefix='mailgw-bench-')
        self.shim_dir = pr.make_shims(os.path.join(self.workdir, 'shim'))
        self.runner = pr.Runner(self.workdir, self.shim_dir, pipelining=not opts.no_pipelining,
                                verbose=opts.verbose)
        self.containers = []
        self.results = dict(profile=opts.profile_name, machine=machine_info(),
                            settings=dict(profile, pipelining=not opts.no_pipelining, image=IMAGE),
                            load_before=loadavg())

    # -- policy -------------------------------------------------------------------

    def direct_env(self, call_log):
        env = dict(os.environ)
        env['PATH'] = self.shim_dir + os.pathsep + env.get('PATH', '')
        env['BENCH_CALL_LOG'] = call_log
        return env

    def policy(self):
        p = self.profile
        out = dict(module={}, lineinfile={}, identical_tables={})
        self.results['policy'] = out
        for n in p['module_ns']:
            out['module'][str(n)] = self.policy_module(n)
        for n in p['naive_ns']:
            out['lineinfile'][str(n)] = self.policy_lineinfile(n)
            mod_dir = os.path.join(self.workdir, 'policy-module-%d' % n)
            naive_dir = os.path.join(self.workdir, 'policy-lineinfile-%d' % n)
            if os.path.isdir(mod_dir) and os.path.isdir(naive_dir):
                a, b = dump_table(mod_dir), dump_table(naive_dir)
                out['identical_tables'][str(n)] = bool(a) and a == b
                if a != b:
                    log('  WARNING: N=%d: the two approaches built different tables' % n)

    def policy_module(self, n):
        timeout = self.opts.timeout
        entries = workload.policy_entries(n)
        res = dict(n=n)
        # Module alone, run as Ansible runs it on the target (python MODULE ARGS).
        base = os.path.join(self.workdir, 'direct-%d' % n)
        call_log = base + '.calls'
        open(call_log, 'w').close()
        env = self.direct_env(call_log)
        dirs = []

        def fresh(i):
            d = '%s-%d' % (base, i)
            workload.write_config_dir(d)
            dirs.append(d)
            return module_direct.write_args(d + '.json', dict(entries=entries, config_dir=d,
                                                              path=d + '/tls_policy', map_type='hash'))
        log('policy N=%d: tls_policy run directly (module time)' % n)
        res['direct_apply'] = direct_runs('tls_policy', fresh, self.profile['direct_repeats'], env,
                                          self.opts.direct_timeout, 'N=%d apply' % n)
        largest = n == max(self.profile['module_ns'])
        if res['direct_apply']['timed_out'] or res['direct_apply']['seconds'] is None:
            res['skipped'] = ('the module did not finish in %ss when run directly (rc=%s); see the README'
                              % (self.opts.direct_timeout, res['direct_apply']['rc']))
            self.kill_leftovers(base)
            return res
        res['direct_noop'] = direct_runs('tls_policy', lambda i: dirs[0] + '.json',
                                         self.profile['direct_repeats'], env, self.opts.direct_timeout,
                                         'N=%d no-op' % n)
        if largest:
            log('policy N=%d: phases of the module, apply and no-op' % n)
            args_file = fresh(99)
            res['phases_apply'] = self.phases(args_file)
            res['phases_noop'] = self.phases(args_file)

        # Through ansible-playbook, connection local.
        d = os.path.join(self.workdir, 'policy-module-%d' % n)
        workload.write_config_dir(d)
        vars_file = workload._dump(d + '.vars.json', dict(bench_config_dir=d, bench_entries=entries))
        play = workload.module_playbook(d + '.play.json', vars_file)
        log('policy N=%d: one tls_policy task, apply / no-op / one entry changed' % n)
        res['apply'] = run_summary(self.runner.run('tls_policy-%d-apply' % n, play, timeout=timeout),
                                   'tls_policy')
        if res['apply']['rc'] != 0:
            return res
        res['noop'] = run_summary(self.runner.run('tls_policy-%d-noop' % n, play, timeout=timeout),
                                  'tls_policy')
        changed = [dict(e) for e in entries]
        changed[1] = dict(changed[1], level='encrypt', match=None)
        vars2 = workload._dump(d + '.vars2.json', dict(bench_config_dir=d, bench_entries=changed))
        play2 = workload.module_playbook(d + '.play2.json', vars2)
        res['one_changed'] = run_summary(self.runner.run('tls_policy-%d-one' % n, play2, timeout=timeout),
                                         'tls_policy')
        # Leave the table as the lineinfile side builds it, for the comparison.
        self.runner.run('tls_policy-%d-restore' % n, play, timeout=timeout)
        if self.policies_supported():
            res['policies'] = self.policy_module_policies(n, entries, env, d)
        if self.policies_supported('policies_src'):
            res['policies_src'] = self.policy_module_policies(n, entries, env, d, shape='policies_src')
        return res

    def policies_supported(self, shape='policies'):
        """Whether tls_policy takes SHAPE: policies (destination -> policy string) or
        policies_src (a file on the target in the table's format)."""
        known = self.__dict__.setdefault('_shapes_supported', {})
        if shape not in known:
            d = os.path.join(self.workdir, '%s-probe' % shape)
            workload.write_config_dir(d)
            value = {} if shape == 'policies' else workload.write_table_source(d + '.source', {})
            args = module_direct.write_args(d + '.json', {shape: value, 'config_dir': d, 'path': d + '/tls_policy',
                                                          'map_type': 'hash'})
            res = module_direct.run_module('tls_policy', args, self.opts.direct_timeout)
            msg = str((res['result'] or {}).get('msg', ''))
            known[shape] = not ('Unsupported parameters' in msg and shape in msg)
            self.results.setdefault('policy', {})['%s_supported' % shape] = known[shape]
            if not known[shape]:
                log('policy: tls_policy has no %s: option at this commit; it is not measured' % shape)
        return known[shape]

    def policy_module_policies(self, n, entries, env, entries_dir, shape='policies'):
        """The same table through policies: (the mapping tls_policy_values gives) or
        policies_src: (that mapping written as a table source file on the target), module
        alone and through ansible-playbook, apply and no-op."""
        timeout = self.opts.timeout
        mapping = workload.policy_values(entries)
        base = os.path.join(self.workdir, 'direct-%s-%d' % (shape, n))
        dirs = []
        if shape == 'policies_src':
            value = workload.write_table_source(base + '.source', mapping)
        else:
            value = mapping

        def fresh(i):
            d = '%s-%d' % (base, i)
            workload.write_config_dir(d)
            dirs.append(d)
            return module_direct.write_args(d + '.json', {shape: value, 'config_dir': d,
                                                          'path': d + '/tls_policy', 'map_type': 'hash'})
        res = dict(n=n)
        log('policy N=%d: tls_policy with %s: run directly (module time)' % (n, shape))
        res['direct_apply'] = direct_runs('tls_policy', fresh, self.profile['direct_repeats'], env,
                                          self.opts.direct_timeout, 'N=%d %s apply' % (n, shape))
        if res['direct_apply']['seconds'] is None:
            return res
        res['direct_noop'] = direct_runs('tls_policy', lambda i: dirs[0] + '.json',
                                         self.profile['direct_repeats'], env, self.opts.direct_timeout,
                                         'N=%d %s no-op' % (n, shape))
        d = os.path.join(self.workdir, 'policy-%s-%d' % (shape, n))
        workload.write_config_dir(d)
        vars_file = workload._dump(d + '.vars.json', dict(bench_config_dir=d, bench_policies=value))
        play = workload.policies_playbook(d + '.play.json', vars_file, shape=shape)
        log('policy N=%d: one tls_policy task with %s:, apply / no-op' % (n, shape))
        res['apply'] = run_summary(self.runner.run('tls_policy-%s-%d-apply' % (shape, n), play, timeout=timeout),
                                   'tls_policy')
        if res['apply']['rc'] != 0:
            return res
        res['noop'] = run_summary(self.runner.run('tls_policy-%s-%d-noop' % (shape, n), play, timeout=timeout),
                                  'tls_policy')
        a, b = dump_table(entries_dir), dump_table(d)
        res['identical_table'] = bool(a) and a == b
        if a != b:
            log('  WARNING: N=%d: entries: and %s: built different tables' % (n, shape))
        return res

    def phases(self, args_file):
        """bench/phases.py on one args file: wall and CPU time per phase of the module."""
        out = args_file + '.phases.json'
        if os.path.exists(out):
            os.unlink(out)
        cmd = [sys.executable, os.path.join(HERE, 'phases.py'), args_file, '--json', out]
        env = self.direct_env(os.devnull)
        env['PYTHONPATH'] = module_direct.collections_dir()
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                           timeout=self.opts.direct_timeout, check=False)
        except subprocess.TimeoutExpired:
            return dict(timed_out=True)
        if not os.path.exists(out):
            return None
        with open(out) as f:
            return json.load(f)

    def policy_lineinfile(self, n):
        entries = workload.policy_entries(n)
        d = os.path.join(self.workdir, 'policy-lineinfile-%d' % n)
        workload.write_config_dir(d)
        vars_file = workload._dump(d + '.vars.json', dict(bench_config_dir=d,
                                                          bench_lines=workload.rendered_lines(entries)))
        play = workload.lineinfile_playbook(d + '.play.json', vars_file)
        timeout = self.opts.timeout + 3 * n
        res = dict(n=n)
        for phase in ('apply', 'noop'):
            log('policy N=%d: lineinfile per entry + postmap handler, %s' % (n, phase))
            run = self.runner.run('lineinfile-%d-%s' % (n, phase), play, timeout=timeout)
            s = run_summary(run)
            s['lineinfile_seconds'] = pr.task_seconds(run, action='lineinfile')
            s['handler_seconds'] = pr.task_seconds(run, action='command') or 0.0
            s['task_seconds'] = round((s['lineinfile_seconds'] or 0) + s['handler_seconds'], 3)
            s['per_entry'] = round(s['lineinfile_seconds'] / n, 4) if s['lineinfile_seconds'] else None
            recs = pr.task_records(run, action='lineinfile')
            s['items_changed'] = recs[0]['items_changed'] if recs else None
            res[phase] = s
            if run['rc'] != 0:
                break
        return res

    def kill_leftovers(self, prefix):
        """Processes still working on a config dir after a timeout (postmap)."""
        out = _cmd_out(['pgrep', '-f', prefix])
        for pid in out.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    # -- postconf -----------------------------------------------------------------

    def postconf(self):
        params = workload.MAIN_CF_PARAMS
        out = dict(count=len(params))
        self.results['postconf'] = out
        timeout = self.opts.timeout
        # module alone
        base = os.path.join(self.workdir, 'postconf-direct')
        call_log = base + '.calls'
        open(call_log, 'w').close()
        dirs = []

        def fresh(i):
            d = '%s-%d' % (base, i)
            workload.write_config_dir(d)
            dirs.append(d)
            return module_direct.write_args(d + '.json', dict(params=dict(params), config_dir=d))
        log('postconf: module run directly')
        env = self.direct_env(call_log)
        out['direct_apply'] = direct_runs('postconf', fresh, self.profile['direct_repeats'], env,
                                          self.opts.direct_timeout, 'postconf apply')
        # The no-op comes later on a gateway, not in the second main.cf was written
        # (workload.settle_config_dir: Postfix would wait for the file to settle).
        workload.settle_config_dir(dirs[0])
        out['direct_noop'] = direct_runs('postconf', lambda i: dirs[0] + '.json',
                                         self.profile['direct_repeats'], env, self.opts.direct_timeout,
                                         'postconf no-op')

        d = os.path.join(self.workdir, 'postconf-module')
        workload.write_config_dir(d)
        vars_file = workload._dump(d + '.vars.json', dict(bench_config_dir=d, bench_params=dict(params)))
        play = workload.postconf_module_playbook(d + '.play.json', vars_file)
        log('postconf: one task with params:, apply / no-op')
        out['module_apply'] = run_summary(self.runner.run('postconf-apply', play, timeout=timeout), 'postconf')
        workload.settle_config_dir(d)
        out['module_noop'] = run_summary(self.runner.run('postconf-noop', play, timeout=timeout), 'postconf')

        c = os.path.join(self.workdir, 'postconf-command')
        workload.write_config_dir(c)
        vars_file = workload._dump(c + '.vars.json', dict(bench_config_dir=c))
        play = workload.postconf_command_playbook(c + '.play.json', vars_file, params)
        for phase in ('apply', 'rerun'):
            workload.settle_config_dir(c)
            log('postconf: %d command: postconf -e tasks, %s' % (len(params), phase))
            run = self.runner.run('postconf-command-%s' % phase, play, timeout=timeout)
            s = run_summary(run, 'command')
            s['tasks_changed'] = sum(1 for r in run['tasks'] if r['changed'])
            out['command_' + phase] = s
        a = _cmd_out(['postconf', '-c', d, '-n'] + [k for k, v in params]).splitlines()
        b = _cmd_out(['postconf', '-c', c, '-n'] + [k for k, v in params]).splitlines()
        out['identical_main_cf'] = bool(a) and a == b

    # -- role ---------------------------------------------------------------------

    def start_containers(self, count, parallel=8):
        """count containers, started `parallel` at a time; returns [(name, pid)].
        The PID (for the nsenter connection) is looked up once, here."""
        if subprocess.run(['podman', 'image', 'exists', IMAGE], check=False).returncode != 0:
            raise RuntimeError('image %s is missing: run ./run images' % IMAGE)
        tag = 'mailgw-bench-%d' % os.getpid()
        names = ['%s-%d' % (tag, i) for i in range(count)]
        for i in range(0, count, parallel):
            procs = []
            for name in names[i:i + parallel]:
                # No network at all: both connections enter the container from this host.
                cmd = ['podman', 'run', '-d', '--name', name, '--network', 'none',
                       '--label', 'mailgw-bench=%d' % os.getpid(), IMAGE]
                self.containers.append(name)
                procs.append((name, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
            for name, proc in procs:
                err = proc.communicate()[1]
                if proc.returncode != 0:
                    raise RuntimeError('podman run %s failed: %s' % (name, err.decode().strip()))
        out = _cmd_out(['podman', 'container', 'inspect', '-f', '{{.State.Pid}}'] + names).split()
        if len(out) != count or not all(x.isdigit() and int(x) > 0 for x in out):
            raise RuntimeError('podman container inspect gave no PID for every container: %s' % out)
        pids = [int(x) for x in out]
        # Postfix up in each (the role reloads a running Postfix).
        pending = list(zip(names, pids))
        deadline = time.time() + 120
        while pending and time.time() < deadline:
            procs = [(name, pid, subprocess.Popen(['nsenter', '-t', str(pid), '-a', 'postfix', 'status'],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                     for name, pid in pending]
            pending = [(name, pid) for name, pid, proc in procs if proc.wait() != 0]
            if pending:
                time.sleep(0.5)
        if pending:
            raise RuntimeError('Postfix did not start in %s' % ', '.join(n for n, p in pending))
        return list(zip(names, pids))

    def remove_containers(self):
        if not self.containers:
            return
        names, self.containers = self.containers, []
        subprocess.run(['podman', 'rm', '-f', '-t', '0'] + names, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def inventory(self, label, containers):
        """Group gateways with the containers [(name, pid)] and the role's variables."""
        hosts = [('gw-%02d' % int(name.rsplit('-', 1)[1]), name, pid) for name, pid in containers]
        return workload.fleet_inventory(os.path.join(self.workdir, 'inventory-%s.json' % label), hosts,
                                        self.role_group_vars, self.opts.connection)

    def role_run(self, label, phase, containers, forks, playbook=None, command=None):
        inv = self.inventory('%s-%s' % (label, phase), containers)
        count = len(containers)
        log('role: %s (%d host%s, forks %d), %s' % (label, count, 's' if count > 1 else '', forks, phase))
        run = self.runner.run('role-%s-%s' % (label, phase), playbook, inventory=inv, connection=None,
                              forks=forks, timeout=self.opts.timeout * 3, command=command)
        return self.role_summary(run, count, forks)

    def check_drift(self, label, containers, forks):
        report_dir = os.path.join(self.workdir, 'drift-%s' % label)
        s = self.role_run(label, 'check-drift', containers, forks,
                          command=[os.path.join(module_direct.tree(), 'playbooks', 'check-drift'),
                                   '--report-dir', report_dir])
        s['verdict'] = {0: 'converged', 2: 'drift', 1: 'failed'}.get(s['rc'], 'rc=%s' % s['rc'])
        return s

    def role(self):
        hosts = self.opts.hosts or self.profile['hosts']
        curve = self.profile['curve']
        curve_forks = self.opts.curve_forks
        total = max([1 + hosts] + curve)
        out = dict(hosts=hosts, policies=self.profile['role_policies'], connection=self.opts.connection,
                   curve_forks=curve_forks, containers=total)
        self.results['role'] = out
        if os.geteuid() != 0:
            raise RuntimeError('the nsenter connection (and the start-up check) enter the containers as root: '
                               'run bench/run as root (the containers are root podman\'s)')
        self.role_group_vars = workload.role_vars(self.profile['role_policies'])
        role_play = workload.role_playbook(os.path.join(self.workdir, 'role.play.json'))
        # the same no-op without the preflight (enforce_tls_preflight: off): one read fewer
        quiet_play = workload.role_playbook(os.path.join(self.workdir, 'role-no-preflight.play.json'),
                                            {'enforce_tls_preflight': 'off'})
        ping_play = workload.ping_playbook(os.path.join(self.workdir, 'ping.play.json'))
        log('role: starting %d containers from %s (--network none), 8 at a time' % (total, IMAGE))
        t0 = time.monotonic()
        containers = self.start_containers(total)
        out['container_start_seconds'] = round(time.monotonic() - t0, 1)
        first = containers[0][0]
        out['container_postfix'] = _cmd_out(['podman', 'exec', first, 'postconf', '-h', 'mail_version'])
        out['container_python'] = _cmd_out(['podman', 'exec', first, 'python3', '--version']).replace('Python ', '')
        # single: c0; fleet: c1..c<hosts>; the curve uses c0..c<k-1> once every container converged
        repeats = self.profile['repeats']
        out['repeats'] = repeats
        # The single host's converge needs a fresh container each time: c0 and, when there
        # are enough, the last two containers (the rest converge finds them converged); the
        # median by wall time without the reload handlers (the goal's measure) is reported.
        rest_pool = containers[1 + hosts:]
        spare = rest_pool[-(CONVERGE_REPEATS - 1):] if len(rest_pool) >= CONVERGE_REPEATS - 1 else []
        # The same converge with enforce_tls_preflight: off, on fresh containers of its own
        # (the preflight's probes are network work that grows with the destinations a run
        # makes stricter, not the role's machinery); only when the rest pool has them.
        quiet_pool = (rest_pool[-(2 * CONVERGE_REPEATS - 1):-(CONVERGE_REPEATS - 1)]
                      if len(rest_pool) >= 2 * CONVERGE_REPEATS - 1 else [])
        groups = (('single', containers[:1], 1), ('fleet', containers[1:1 + hosts], hosts))
        runs = {}
        for label, group, forks in groups:
            section = dict(hosts=len(group), forks=forks)
            out[label] = section
            if label == 'single':
                section['converge'] = median_run(
                    [self.role_run(label, 'converge', [c], forks, role_play) for c in group + spare],
                    key=lambda r: r['wall'] - (r.get('handler_seconds') or 0.0))
                if quiet_pool:
                    section['converge_preflight_off'] = median_run(
                        [self.role_run(label, 'converge-preflight-off', [c], forks, quiet_play) for c in quiet_pool],
                        key=lambda r: r['wall'] - (r.get('handler_seconds') or 0.0))
            else:
                section['converge'] = self.role_run(label, 'converge', group, forks, role_play)
            runs[label] = dict(noop=[], floor=[], check_drift=[], noop_preflight_off=[])
        # The short runs the goals compare, repeated (the median is reported) and
        # interleaved round by round, the single host's and the fleet's one after the
        # other: one run each swings with the load of a shared machine, and a ratio of
        # two runs of the same round (fleet_rounds) compares them at the same load.
        for dummy in range(repeats):
            for label, group, forks in groups:
                measured = runs[label]
                measured['noop'].append(self.role_run(label, 'noop', group, forks, role_play))
                measured['floor'].append(self.role_run(label, 'floor', group, forks, ping_play))
                if label == 'single':
                    measured['noop_preflight_off'].append(
                        self.role_run(label, 'noop-preflight-off', group, forks, quiet_play))
                if label == 'fleet':
                    measured['check_drift'].append(self.check_drift(label, group, forks))
        for label, group, forks in groups:
            for phase, measured in runs[label].items():
                if measured:
                    out[label][phase] = median_run(measured)
        out['fleet_rounds'] = [round(f['wall'] / s1['wall'], 2)
                               for s1, f in zip(runs['single']['noop'], runs['fleet']['noop'])
                               if s1['rc'] == 0 and f['rc'] == 0 and s1['wall']]
        # check-drift against the fleet's no-op of the same round (run just before it)
        out['check_drift_rounds'] = [round(c['wall'] / f['wall'], 2)
                                     for f, c in zip(runs['fleet']['noop'], runs['fleet']['check_drift'])
                                     if f['rc'] == 0 and c.get('verdict') == 'converged' and f['wall']]
        rest = containers[1 + hosts:]
        if rest:
            out['rest_converge'] = self.role_run('rest', 'converge', rest, curve_forks, role_play)
        out['curve'] = []
        for k in curve:
            point = self.role_run('curve-%d' % k, 'noop', containers[:k], curve_forks, role_play)
            point['hosts'] = k
            out['curve'].append(point)
        self.remove_containers()

    @staticmethod
    def slowest_tasks(run, limit=4):
        """The tasks with the largest mean time per host (where a role run spends its time)."""
        by_task = {}
        for rec in run['tasks']:
            if rec['seconds'] is None:
                continue
            by_task.setdefault(rec['task'], []).append(rec['seconds'])
        ranked = sorted(((statistics.mean(v), k) for k, v in by_task.items()), reverse=True)[:limit]
        return [dict(task=k.split(' : ', 1)[-1], mean_seconds=round(v, 2)) for v, k in ranked]

    @staticmethod
    def role_summary(run, count, forks):
        per_host = pr.per_host_seconds(run)
        counts = pr.host_counts(run)
        stats = run['stats']
        tls = pr.task_records(run, action='tls_policy')

        def mean(key):
            return round(statistics.mean(c[key] for c in counts.values()), 2) if counts else None
        s = dict(
            rc=run['rc'], timed_out=run['timed_out'], hosts=count, forks=forks,
            wall=round(run['wall'], 2), cpu=round(run['cpu'], 2),
            wall_per_host=round(run['wall'] / count, 2),
            mean_host_task_seconds=round(statistics.mean(h['task_seconds'] for h in per_host.values()), 2)
            if per_host else None,
            max_host_task_seconds=round(max(h['task_seconds'] for h in per_host.values()), 2)
            if per_host else None,
            changed_per_host=dict((h, st.get('changed')) for h, st in stats.items()),
            failed_hosts=sorted(h for h, st in stats.items() if st.get('failures') or st.get('unreachable')),
            tasks_per_host=mean('executed'), skipped_per_host=mean('skipped'),
            round_trips_per_host=mean('round_trips'), changed_tasks_per_host=mean('changed'),
            handler_seconds=mean('handler_seconds'), reload_seconds=mean('reload_seconds'),
            host_counts=counts,
            tls_policy_seconds=round(statistics.mean(r['seconds'] for r in tls if r['seconds']), 2)
            if tls else None,
            postmap_ran_hosts=sum(1 for r in tls if r.get('postmap_ran')),
            slowest_tasks=Bench.slowest_tasks(run),
            execs=pr.exec_summary(run, count),
            log=run['log'],
        )
        if run['rc'] != 0:
            failed = [r for r in run['tasks'] if r['status'] in ('failed', 'unreachable')]
            if failed:
                s['error'] = '%s: %s' % (failed[0]['task'], failed[0].get('msg', '')[:400])
        return s

    # -- driver -------------------------------------------------------------------

    def baseline(self):
        play = workload.empty_playbook(os.path.join(self.workdir, 'empty.json'))
        runs = [self.runner.run('baseline-empty', play, timeout=120) for dummy in range(2)]
        self.results['baseline_empty_playbook'] = round(min(r['wall'] for r in runs), 3)
        self.results['baseline_empty_playbook_cpu'] = round(min(r['cpu'] for r in runs), 3)

    def run(self, sections):
        started = time.monotonic()
        try:
            self.baseline()
            for name in sections:
                t = time.monotonic()
                try:
                    getattr(self, name)()
                except Exception as e:  # report what was measured, and why the rest is missing
                    log('%s: FAILED: %s' % (name, e))
                    self.results.setdefault('errors', {})[name] = str(e)
                self.results.setdefault('section_seconds', {})[name] = round(time.monotonic() - t, 1)
        finally:
            self.remove_containers()
        self.results['total_seconds'] = round(time.monotonic() - started, 1)
        self.results['load_after'] = loadavg()
        return self.results

    def cleanup(self):
        self.remove_containers()
        if not self.opts.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def use_tree(tree, label):
    """Measure the collection in tree: an ansible_collections path of its own,
    for Ansible (ANSIBLE_COLLECTIONS_PATH), the direct module runs and the grammar."""
    if not os.path.isfile(os.path.join(tree, 'galaxy.yml')):
        raise SystemExit('bench/run: --tree %s is not a checkout of the collection (no galaxy.yml)' % tree)
    top = tempfile.mkdtemp(prefix='mailgw-bench-tree-')
    os.makedirs(os.path.join(top, 'ansible_collections', 'mailgw'))
    os.symlink(tree, os.path.join(top, 'ansible_collections', 'mailgw', 'postfix_tls'))
    os.environ.update(BENCH_TREE=tree, BENCH_TREE_LABEL=label or tree, COLLECTIONS_DIR=top,
                      ANSIBLE_COLLECTIONS_PATH=top, ANSIBLE_ROLES_PATH=os.path.join(tree, 'roles'))
    sys.path.insert(0, top)
    return top


def main(argv=None):
    parser = argparse.ArgumentParser(prog='bench/run', description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='smaller sizes (about 3 minutes)')
    parser.add_argument('--only', action='append', choices=['policy', 'postconf', 'role'],
                        help='run only this section (repeatable)')
    parser.add_argument('--hosts', type=int,
                        help='fleet size, forks = hosts (default 8; quick: 4); at least 2')
    parser.add_argument('--curve', help='fleet sizes of the no-op scaling curve (default 1,4,8,16,32; '
                        'quick: 1,4); "none" for no curve')
    parser.add_argument('--curve-forks', type=int, default=CURVE_FORKS,
                        help='forks for the curve (default %d)' % CURVE_FORKS)
    parser.add_argument('--repeats', type=int,
                        help='runs of each role no-op, floor and check-drift (median reported; default 3, quick 1)')
    parser.add_argument('--connection', choices=['nsenter', 'nsenter-pipelined', 'podman'], default='nsenter',
                        help='how Ansible enters the containers: community.docker.nsenter with the PID '
                        'in the inventory (default; as the demo and Molecule; it does not pipeline: five '
                        'commands per module run), nsenter-pipelined (the same with pipelining, '
                        'bench/connection_plugins: one command per module run, as ssh with pipelining) or '
                        'containers.podman.podman (podman exec, as the figures before issue #16)')
    parser.add_argument('--sizes', help='comma-separated N for tls_policy, e.g. 100,1000')
    parser.add_argument('--naive-sizes', help='comma-separated N for the lineinfile side')
    parser.add_argument('--role-policies', type=int, help='policy entries given to the role')
    parser.add_argument('--no-pipelining', action='store_true', help='run with ANSIBLE_PIPELINING=False')
    parser.add_argument('--timeout', type=int, default=300, help='seconds per playbook run before it is killed')
    parser.add_argument('--direct-timeout', type=int, default=120,
                        help='seconds per direct module run before it is killed')
    parser.add_argument('--tree', help='measure the collection in this directory (e.g. a `git archive` of '
                        'another commit) instead of this work tree; the bench code stays this one')
    parser.add_argument('--tree-label', default='', help='what --tree is, for the report (e.g. "HEAD 7088962")')
    parser.add_argument('--keep', action='store_true', help='keep the work directory (logs, tables)')
    parser.add_argument('--inherit-python-env', action='store_true',
                        help='keep PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE from this shell for every '
                        'run (by default they are removed, see OPERATOR_UNSET)')
    parser.add_argument('--verbose', action='store_true')
    parser.add_argument('--output', default=os.path.join(HERE, 'results'))
    opts = parser.parse_args(argv)
    opts.profile_name = 'quick' if opts.quick else 'full'
    profile = dict(PROFILES[opts.profile_name])
    if opts.sizes:
        profile['module_ns'] = [int(x) for x in opts.sizes.split(',')]
        opts.profile_name = 'custom'
    if opts.naive_sizes:
        profile['naive_ns'] = [int(x) for x in opts.naive_sizes.split(',')]
        profile['naive_cap'] = max(profile['naive_ns'])
        opts.profile_name = 'custom'
    if opts.role_policies is not None:
        profile['role_policies'] = opts.role_policies
        opts.profile_name = 'custom'
    if opts.hosts is not None and opts.hosts < 2:
        parser.error('--hosts must be at least 2')
    if opts.curve:
        try:
            profile['curve'] = [] if opts.curve == 'none' else [int(x) for x in opts.curve.split(',')]
        except ValueError:
            parser.error('--curve: comma-separated host counts, e.g. 1,4,8, or none (got %r)' % opts.curve)
        if any(k < 1 for k in profile['curve']):
            parser.error('--curve: host counts must be at least 1 (got %r)' % opts.curve)
        opts.profile_name = 'custom'
    if opts.hosts is not None:
        profile['hosts'] = opts.hosts
    if opts.repeats is not None:
        if opts.repeats < 1:
            parser.error('--repeats must be at least 1')
        profile['repeats'] = opts.repeats
    sections = opts.only or ['policy', 'postconf', 'role']
    removed = {} if opts.inherit_python_env else operator_environment()
    tree_top = use_tree(os.path.abspath(opts.tree), opts.tree_label) if opts.tree else None

    bench = Bench(opts, profile)
    bench.results['machine']['python_env_removed'] = removed

    def on_signal(signum, frame):
        raise KeyboardInterrupt('signal %d' % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    log('work directory %s, profile %s, sections %s' % (bench.workdir, opts.profile_name, ', '.join(sections)))
    try:
        results = bench.run(sections)
    except KeyboardInterrupt as e:
        bench.cleanup()
        log('interrupted (%s); containers and the work directory were removed' % (e or 'Ctrl-C'))
        return 130
    finally:
        bench.cleanup()
        if tree_top:
            shutil.rmtree(tree_top, ignore_errors=True)   # the symlink only, not the tree
    results['targets'] = dict(apply_10k_seconds=TARGET_APPLY_10K, noop_10k_seconds=TARGET_NOOP_10K,
                              ratio_at_500=TARGET_RATIO_500)
    results['summary'] = report.summarize(results)
    os.makedirs(opts.output, exist_ok=True)
    latest = os.path.join(opts.output, 'latest.json')
    with open(latest, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    stamped = os.path.join(opts.output, 'bench-%s-%s.json' % (opts.profile_name, time.strftime('%Y%m%d-%H%M%S')))
    shutil.copyfile(latest, stamped)
    text = report.render(results)
    with open(os.path.join(opts.output, 'latest.md'), 'w') as f:
        f.write(report.render_markdown(results))
    print()
    print(text)
    print('results: %s (markdown: %s)' % (latest, os.path.join(opts.output, 'latest.md')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
