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
  role      roles/enforce_tls converge and no-op on one container and on a
            fleet of containers (podman, --network none) with forks = hosts.
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

# Fleet size: two hosts per CPU, at least 4 (forks = hosts; the controller and
# the containers share the CPUs, so more hosts mostly queue).
DEFAULT_HOSTS = max(4, 2 * (os.cpu_count() or 2))

# The per-entry lineinfile side costs about half a CPU second per entry and
# run, so it is measured at one capped N and extrapolated above it (marked ~):
# its cost per entry does not fall with N (each entry is one module run on a
# growing file), so the extrapolated ratios are conservative.
# `--naive-sizes 500` measures N = 500 directly (adds about 5 minutes).
PROFILES = {
    'full': dict(module_ns=[100, 500, 1000, 10000], naive_ns=[200], naive_cap=200,
                 direct_repeats=3, hosts=DEFAULT_HOSTS, role_policies=200),
    'quick': dict(module_ns=[100, 1000], naive_ns=[50], naive_cap=50,
                  direct_repeats=1, hosts=4, role_policies=50),
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
        date=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
    )


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
        out['direct_noop'] = direct_runs('postconf', lambda i: dirs[0] + '.json',
                                         self.profile['direct_repeats'], env, self.opts.direct_timeout,
                                         'postconf no-op')

        d = os.path.join(self.workdir, 'postconf-module')
        workload.write_config_dir(d)
        vars_file = workload._dump(d + '.vars.json', dict(bench_config_dir=d, bench_params=dict(params)))
        play = workload.postconf_module_playbook(d + '.play.json', vars_file)
        log('postconf: one task with params:, apply / no-op')
        out['module_apply'] = run_summary(self.runner.run('postconf-apply', play, timeout=timeout), 'postconf')
        out['module_noop'] = run_summary(self.runner.run('postconf-noop', play, timeout=timeout), 'postconf')

        c = os.path.join(self.workdir, 'postconf-command')
        workload.write_config_dir(c)
        vars_file = workload._dump(c + '.vars.json', dict(bench_config_dir=c))
        play = workload.postconf_command_playbook(c + '.play.json', vars_file, params)
        for phase in ('apply', 'rerun'):
            log('postconf: %d command: postconf -e tasks, %s' % (len(params), phase))
            run = self.runner.run('postconf-command-%s' % phase, play, timeout=timeout)
            s = run_summary(run, 'command')
            s['tasks_changed'] = sum(1 for r in run['tasks'] if r['changed'])
            out['command_' + phase] = s
        a = _cmd_out(['postconf', '-c', d, '-n'] + [k for k, v in params]).splitlines()
        b = _cmd_out(['postconf', '-c', c, '-n'] + [k for k, v in params]).splitlines()
        out['identical_main_cf'] = bool(a) and a == b

    # -- role ---------------------------------------------------------------------

    def start_containers(self, count):
        if subprocess.run(['podman', 'image', 'exists', IMAGE], check=False).returncode != 0:
            raise RuntimeError('image %s is missing: run ./run images' % IMAGE)
        tag = 'mailgw-bench-%d' % os.getpid()
        names = ['%s-%d' % (tag, i) for i in range(count)]
        for name in names:
            # No network at all: the podman connection uses `podman exec`.
            cmd = ['podman', 'run', '-d', '--name', name, '--network', 'none',
                   '--label', 'mailgw-bench=%d' % os.getpid(), IMAGE]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            if proc.returncode != 0:
                raise RuntimeError('podman run %s failed: %s' % (name, proc.stderr.decode().strip()))
            self.containers.append(name)
        # Postfix up in each (the role reloads a running Postfix).
        deadline = time.time() + 60
        for name in names:
            while time.time() < deadline:
                if subprocess.run(['podman', 'exec', name, 'postfix', 'status'], check=False,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.5)
        return names

    def remove_containers(self):
        if not self.containers:
            return
        names, self.containers = self.containers, []
        subprocess.run(['podman', 'rm', '-f', '-t', '0'] + names, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def inventory(self, path, names):
        hosts = dict((n.rsplit('-', 1)[0].replace('mailgw-bench', 'gw') + '-' + n.rsplit('-', 1)[1],
                      dict(ansible_host=n)) for n in names)
        inv = {'all': {'hosts': hosts, 'vars': {
            'ansible_connection': 'containers.podman.podman',
            'ansible_python_interpreter': '/usr/bin/python3',
        }}}
        return workload._dump(path, inv)

    def role(self):
        hosts = self.opts.hosts or self.profile['hosts']
        out = dict(hosts=hosts, policies=self.profile['role_policies'])
        self.results['role'] = out
        log('role: starting %d containers from %s (--network none)' % (hosts + 1, IMAGE))
        t0 = time.monotonic()
        names = self.start_containers(hosts + 1)
        out['container_start_seconds'] = round(time.monotonic() - t0, 1)
        out['container_postfix'] = _cmd_out(['podman', 'exec', names[0], 'postconf', '-h', 'mail_version'])
        out['container_python'] = _cmd_out(['podman', 'exec', names[0], 'python3', '--version']).replace('Python ', '')
        vars_file = workload._dump(os.path.join(self.workdir, 'role.vars.json'),
                                   workload.role_vars(self.profile['role_policies']))
        play = workload.role_playbook(os.path.join(self.workdir, 'role.play.json'), vars_file)
        for label, group, forks in (('single', names[:1], 1), ('fleet', names[1:], hosts)):
            inv = self.inventory(os.path.join(self.workdir, 'inventory-%s.json' % label), group)
            section = dict(hosts=len(group), forks=forks)
            for phase in ('converge', 'noop'):
                plural = 's' if len(group) > 1 else ''
                log('role: %s (%d host%s, forks %d), %s' % (label, len(group), plural, forks, phase))
                run = self.runner.run('role-%s-%s' % (label, phase), play, inventory=inv, connection=None,
                                      forks=forks, timeout=self.opts.timeout * 3)
                section[phase] = self.role_summary(run, len(group))
            out[label] = section
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
    def role_summary(run, count):
        per_host = pr.per_host_seconds(run)
        stats = run['stats']
        tls = pr.task_records(run, action='tls_policy')
        s = dict(
            rc=run['rc'], timed_out=run['timed_out'], wall=round(run['wall'], 2), cpu=round(run['cpu'], 2),
            wall_per_host=round(run['wall'] / count, 2),
            mean_host_task_seconds=round(statistics.mean(h['task_seconds'] for h in per_host.values()), 2)
            if per_host else None,
            max_host_task_seconds=round(max(h['task_seconds'] for h in per_host.values()), 2)
            if per_host else None,
            changed_per_host=dict((h, st.get('changed')) for h, st in stats.items()),
            failed_hosts=sorted(h for h, st in stats.items() if st.get('failures') or st.get('unreachable')),
            tls_policy_seconds=round(statistics.mean(r['seconds'] for r in tls if r['seconds']), 2)
            if tls else None,
            postmap_ran_hosts=sum(1 for r in tls if r.get('postmap_ran')),
            slowest_tasks=Bench.slowest_tasks(run),
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog='bench/run', description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='smaller sizes (about 3 minutes)')
    parser.add_argument('--only', action='append', choices=['policy', 'postconf', 'role'],
                        help='run only this section (repeatable)')
    parser.add_argument('--hosts', type=int,
                        help='fleet size (default: 2 per CPU, at least 4; quick: 4); at least 4')
    parser.add_argument('--sizes', help='comma-separated N for tls_policy, e.g. 100,1000')
    parser.add_argument('--naive-sizes', help='comma-separated N for the lineinfile side')
    parser.add_argument('--role-policies', type=int, help='policy entries given to the role')
    parser.add_argument('--no-pipelining', action='store_true', help='run with ANSIBLE_PIPELINING=False')
    parser.add_argument('--timeout', type=int, default=300, help='seconds per playbook run before it is killed')
    parser.add_argument('--direct-timeout', type=int, default=120,
                        help='seconds per direct module run before it is killed')
    parser.add_argument('--keep', action='store_true', help='keep the work directory (logs, tables)')
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
    if opts.hosts is not None and opts.hosts < 4:
        parser.error('--hosts must be at least 4')
    sections = opts.only or ['policy', 'postconf', 'role']

    bench = Bench(opts, profile)

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
