# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run ansible-playbook for a benchmark step and collect what was measured:
wall time, per host and task timings (bench/callback/bench_timing.py) and
every postmap/postconf invocation on the controller (a PATH shim that logs
its arguments and execs the real binary)."""

import collections
import json
import os
import resource
import shutil
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SHIMMED = ('postmap', 'postconf')
LOCAL_PYTHON = '/usr/bin/python3'

SHIM = """#!/bin/sh
# bench/run: log the call, then run the real %(name)s
printf '%%s\\n' "%(name)s $*" >> "${BENCH_CALL_LOG:-/dev/null}"
exec %(real)s "$@"
"""

# nsenter, as the connection community.docker.nsenter runs it (through the shell, found
# in PATH): each command Ansible runs on a container host, and the CPU time of it and
# everything it started there (the module, postconf, posttls-finger: what the gateway
# pays), from bash's `times` (second line: its waited-for children). Builtins only, so
# that the shim itself costs one bash: one file per command in $BENCH_EXEC_DIR named
# PID.RANDOM.WHAT, WHAT being python (a module run), tee (a file transfer) or the first
# word of the shell command (echo, umask: the temporary directory, chmod, rm).
NSENTER_SHIM = r"""#!/bin/bash
# bench/run: run the real nsenter, then note its CPU time and what it ran
%(real)s "$@"
rc=$?
if [ -n "$BENCH_EXEC_DIR" ]; then
  all="$*"
  case "$all" in
    *" -- tee "*) what=tee ;;
    *" -- /bin/sh -c "*python*) what=python ;;
    *" -- /bin/sh -c "*) what=${all##* -- /bin/sh -c }; what=${what#( }; what=${what%%%% *} ;;
    *) what=other ;;
  esac
  { times; } > "$BENCH_EXEC_DIR/$$.$RANDOM.${what//[^a-z0-9]/_}"
fi
exit $rc
"""


# The role's handlers that reload or restart Postfix (before 2026-12-06 the reload was a task
# of its own after a check and a status task; since then one postfix_service task does all three).
RELOAD_TASKS = ('Check and reload Postfix', 'Reload Postfix', 'Restart Postfix', 'Stop Postfix', 'Start Postfix')


def make_shims(directory):
    """Write postmap/postconf wrappers into directory (put it first in PATH)."""
    os.makedirs(directory, exist_ok=True)
    for name in SHIMMED:
        real = shutil.which(name, path='/usr/sbin:/usr/local/sbin:/sbin:/usr/bin:/bin')
        if not real:
            raise SystemExit('bench: %s not found (install postfix on this host)' % name)
        path = os.path.join(directory, name)
        with open(path, 'w') as f:
            f.write(SHIM % dict(name=name, real=real))
        os.chmod(path, 0o755)
    real = shutil.which('nsenter', path='/usr/bin:/bin:/usr/sbin:/sbin')
    if real:
        path = os.path.join(directory, 'nsenter')
        with open(path, 'w') as f:
            f.write(NSENTER_SHIM % dict(real=real))
        os.chmod(path, 0o755)
    return directory


class Runner:
    """Runs playbooks with the benchmark's environment; one log dir per session."""

    def __init__(self, workdir, shim_dir, pipelining=True, verbose=False):
        self.workdir = workdir
        self.shim_dir = shim_dir
        self.pipelining = pipelining
        self.verbose = verbose
        self.counter = 0
        self.logdir = os.path.join(workdir, 'logs')
        os.makedirs(self.logdir, exist_ok=True)

    def env(self, extra=None):
        env = dict(os.environ)
        env.update({
            'PATH': self.shim_dir + os.pathsep + env.get('PATH', ''),
            'ANSIBLE_CALLBACK_PLUGINS': os.path.join(HERE, 'callback'),
            'ANSIBLE_CALLBACKS_ENABLED': 'bench_timing',
            # --connection nsenter-pipelined (bench/connection_plugins/nsenter_pipelined.py)
            'ANSIBLE_CONNECTION_PLUGINS': os.path.join(HERE, 'connection_plugins'),
            'ANSIBLE_PIPELINING': 'True' if self.pipelining else 'False',
            'ANSIBLE_HOST_KEY_CHECKING': 'False',
            'ANSIBLE_RETRY_FILES_ENABLED': 'False',
            'ANSIBLE_LOCAL_TEMP': os.path.join(self.workdir, 'ansible-local'),
            'ANSIBLE_REMOTE_TEMP': '/tmp/.ansible-bench',
            'ANSIBLE_DISPLAY_OK_HOSTS': 'False',
            'ANSIBLE_DISPLAY_SKIPPED_HOSTS': 'False',
            'ANSIBLE_NOCOLOR': '1',
        })
        env.update(extra or {})
        return env

    def run(self, label, playbook, inventory='localhost,', connection='local', forks=None,
            extra_args=(), timeout=600, command=None, extra_env=None):
        """Returns a dict: label, rc, wall, timed_out, tasks (callback records),
        stats, calls (postmap/postconf argument lists), log.  command replaces
        ansible-playbook (e.g. [playbooks/check-drift, --report-dir, DIR]); the
        arguments after it are the same."""
        self.counter += 1
        stem = '%02d-%s' % (self.counter, label.replace(' ', '_').replace('/', '_'))
        timing_file = os.path.join(self.logdir, stem + '.timing.json')
        call_log = os.path.join(self.logdir, stem + '.calls')
        log = os.path.join(self.logdir, stem + '.log')
        open(call_log, 'w').close()
        cmd = list(command or ['ansible-playbook']) + ['-i', inventory] + ([playbook] if playbook else [])
        if connection:
            cmd += ['-c', connection]
        if forks:
            cmd += ['-f', str(forks)]
        if connection == 'local':
            # The target's system Python, as on a gateway (not the controller's venv).
            cmd += ['-e', 'ansible_python_interpreter=%s' % LOCAL_PYTHON]
        cmd += list(extra_args)
        exec_dir = os.path.join(self.logdir, stem + '.execs')
        os.makedirs(exec_dir, exist_ok=True)
        env = self.env(dict(extra_env or {}, BENCH_TIMING_FILE=timing_file, BENCH_CALL_LOG=call_log,
                            BENCH_EXEC_DIR=exec_dir))
        start = time.monotonic()
        cpu_start = children_cpu()
        timed_out = False
        with open(log, 'wb') as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                # The whole process group: ansible-playbook, its workers and the
                # module (and anything the module started).
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            except BaseException:
                # Interrupted (Ctrl-C, SIGTERM): do not leave the playbook running.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        wall = time.monotonic() - start
        cpu = children_cpu() - cpu_start
        timing = {}
        if os.path.exists(timing_file):
            with open(timing_file) as f:
                timing = json.load(f)
        with open(call_log) as f:
            calls = [line.split() for line in f.read().splitlines() if line.strip()]
        result = dict(label=label, rc=rc, wall=wall, cpu=cpu, timed_out=timed_out,
                      tasks=timing.get('tasks', []), stats=timing.get('stats', {}),
                      calls=calls, execs=read_execs(exec_dir), log=log)
        if self.verbose or rc != 0:
            tail = tail_of(log)
            flag = ' TIMED OUT' if timed_out else ''
            print('  [%s] rc=%s wall=%.1fs%s%s' % (label, rc, wall, flag, ('\n' + tail) if rc != 0 else ''))
        return result


def children_cpu():
    """User + system CPU seconds of every waited-for descendant so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def read_execs(directory):
    """The commands the nsenter shim noted (NSENTER_SHIM): [(what, CPU seconds)]."""
    out = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            lines = f.read().splitlines()
        seconds = 0.0
        for field in (lines[1].split() if len(lines) > 1 else []):
            minutes, rest = field.rstrip('s').split('m', 1)
            seconds += int(minutes) * 60 + float(rest)
        out.append((name.split('.', 2)[-1], seconds))
    return out


def exec_summary(run, hosts):
    """From the nsenter shim: commands per host (all, and module runs), and the CPU
    time the container side took (the commands and everything they started there),
    all and per host; None without nsenter (the podman or local connection)."""
    execs = run.get('execs') or []
    if not execs:
        return None
    gateway = sum(cpu for dummy, cpu in execs)
    kinds = collections.Counter(what for what, dummy in execs)
    return dict(
        execs_per_host=round(len(execs) / float(hosts), 2),
        module_runs_per_host=round(kinds['python'] / float(hosts), 2),
        kinds=dict(sorted(kinds.items())),
        gateway_cpu=round(gateway, 2),
        gateway_cpu_per_host=round(gateway / hosts, 3),
        controller_cpu=round(run['cpu'] - gateway, 2),
    )


def tail_of(path, lines=15):
    try:
        with open(path, 'rb') as f:
            data = f.read().decode('utf-8', 'replace').splitlines()
    except OSError:
        return ''
    return '\n'.join('    | ' + line for line in data[-lines:])


# -- reading a run ---------------------------------------------------------------

def task_records(run, name=None, action=None, host=None):
    out = []
    for rec in run['tasks']:
        if name is not None and rec['task'] != name:
            continue
        if action is not None and not rec['action'].endswith(action):
            continue
        if host is not None and rec['host'] != host:
            continue
        out.append(rec)
    return out


def task_seconds(run, name=None, action=None, host=None):
    """Sum of the durations of the matching task results (None if none ran)."""
    recs = [r for r in task_records(run, name, action, host) if r['seconds'] is not None]
    if not recs:
        return None
    return sum(r['seconds'] for r in recs)


def per_host_seconds(run):
    """Per host: the sum of its task durations, and its first start to last end."""
    hosts = {}
    for rec in run['tasks']:
        if rec['seconds'] is None:
            continue
        h = hosts.setdefault(rec['host'], dict(task_seconds=0.0, first=rec['start'], last=rec['end'], tasks=0, changed=0))
        h['task_seconds'] += rec['seconds']
        h['first'] = min(h['first'], rec['start'])
        h['last'] = max(h['last'], rec['end'])
        h['tasks'] += 1
        h['changed'] += 1 if rec['changed'] else 0
    for h in hosts.values():
        h['span'] = h['last'] - h['first']
    return hosts


# Actions that run on the controller only (no module execution on the host).
CONTROLLER_ONLY = frozenset((
    'set_fact', 'assert', 'debug', 'meta', 'fail', 'include_tasks', 'import_tasks', 'include_role',
    'import_role', 'include_vars', 'add_host', 'group_by', 'set_stats', 'pause',
    'validate_argument_spec', 'noop',
))


def short_action(action):
    """ansible.builtin.set_fact / ansible.legacy.set_fact / set_fact -> set_fact"""
    return (action or '').rsplit('.', 1)[-1]


def host_counts(run):
    """Per host, from the callback records: tasks executed (ok, changed or failed),
    skipped, changed, and round trips (module executions on the host: results of
    tasks whose action is not controller-only, one per loop item)."""
    hosts = {}
    for rec in run['tasks']:
        h = hosts.setdefault(rec['host'], dict(executed=0, skipped=0, changed=0, round_trips=0,
                                               handler_seconds=0.0, reload_seconds=0.0))
        if rec['status'] == 'skipped':
            h['skipped'] += 1
            continue
        h['executed'] += 1
        h['changed'] += 1 if rec['changed'] else 0
        if short_action(rec['action']) not in CONTROLLER_ONLY and rec['status'] != 'unreachable':
            h['round_trips'] += rec['items'] if rec.get('items') else 1
        if rec.get('handler') and rec['seconds'] is not None:
            h['handler_seconds'] += rec['seconds']
            if rec['task'].split(' : ', 1)[-1].startswith(RELOAD_TASKS):
                h['reload_seconds'] += rec['seconds']
    return hosts


def postmap_builds(run):
    """postmap invocations that build an index (not -q / -s lookups)."""
    return [c for c in run['calls'] if c and c[0] == 'postmap' and '-q' not in c and '-s' not in c]


def count_calls(run, name):
    return sum(1 for c in run['calls'] if c and c[0] == name)
