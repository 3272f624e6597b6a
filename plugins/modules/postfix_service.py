#!/usr/bin/python
# Copyright (c) 2026, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
---
module: postfix_service
short_description: Check the Postfix configuration, then reload or restart a running Postfix, in one step
version_added: 0.1.0
description:
  - Makes new settings live the way an operator does by hand, in one module call (one round
    trip) - C(postfix check), then C(postfix status), then C(postfix reload) (or C(postfix stop)
    and C(postfix start) with O(state=restarted)) when Postfix runs.
  - When C(postfix check) fails, Postfix is neither reloaded nor restarted and the task fails.
    That does not keep the new C(main.cf) out - a daemon the master starts later (a new
    C(smtpd) for the next connection) reads C(main.cf) as it is on disk - so fix the
    configuration the error names.
  - A Postfix that is not running is left stopped (unlike M(ansible.builtin.service) with
    C(state=reloaded), which starts it); it reads the new settings when it starts. RV(running)
    says which it was.
  - Every command is C(postfix -c CONFIG_DIR ...), so a secondary instance is handled like
    C(/etc/postfix).
  - Meant for handlers. It reports a change whenever it reloads or restarts (as
    M(ansible.builtin.service) does).
author:
  - mailgw.postfix_tls developers (!UNKNOWN)
options:
  state:
    description:
      - V(reloaded) - reload a running Postfix (C(postfix reload)).
      - V(restarted) - stop and start a running Postfix (C(postfix stop), C(postfix start)),
        for parameters the master reads only when it starts, such as C(inet_interfaces).
        A master that systemd started (it runs in a systemd service unit, for example Debian's
        C(postfix@-.service)) is restarted with C(systemctl restart UNIT) instead - C(postfix
        stop) would leave the unit stopped (failed or inactive) and C(postfix start) would run
        the new master outside it. RV(systemd_unit) names the unit.
      - V(checked) - check the configuration and find out whether Postfix runs, and change
        nothing else; for a Postfix that a service manager reloads (for example
        M(ansible.builtin.systemd_service) when RV(running) is true).
    type: str
    choices: [reloaded, restarted, checked]
    default: reloaded
  check:
    description:
      - Run C(postfix check) first, and stop with an error (nothing reloaded) when it fails.
      - Not run in check mode, because C(postfix check) writes (it creates missing queue
        directories and moves misplaced queue files).
    type: bool
    default: true
  config_dir:
    description: The Postfix configuration directory (C(postfix -c)).
    type: path
    default: /etc/postfix
  executable:
    description:
      - The C(postfix) command to run.
      - Default - C(postfix) found on E(PATH), C(/sbin), C(/usr/sbin) or C(/usr/local/sbin).
    type: path
notes:
  - C(postfix check) and the C(postfix) control script print their reasons (C(fatal) lines) only
    on a terminal (C(postlog) writes to stderr only then). So when C(postfix check) fails, it is
    run once more with a pseudo-terminal for its output, and the error names its C(fatal),
    C(error) and C(panic) lines (both runs are in RV(commands)). Warnings of C(postconf), which
    the script runs, come back either way and are shown as warnings, each once.
  - In a container whose main process is Postfix's master (C(postfix start-fg)), O(state=restarted)
    stops the container with it; a reload does not.
  - The systemd unit of a running master is found, for O(state=restarted) only, from the master's
    PID (C(QUEUE_DIRECTORY/pid/master.pid)), its control group (C(/proc/PID/cgroup)) and systemd's
    word that the unit has that control group (C(systemctl show -p ControlGroup)). A reload is
    C(postfix reload) with or without systemd - the master stays the same process, in its unit.
  - The C(postfix) command is for the superuser; run the task as root (C(become)).
attributes:
  check_mode:
    description:
      - Runs only C(postfix status) and reports what a real run would do (RV(outcome), and
        changed when Postfix runs and O(state) is not V(checked)).
    support: full
  diff_mode:
    description: No file is changed, so there is nothing to show.
    support: none
  platform:
    description: Needs the C(postfix) command on the target, run as root.
    support: full
    platforms: posix
seealso:
  - module: mailgw.postfix_tls.postconf
  - module: mailgw.postfix_tls.tls_policy
  - module: ansible.builtin.systemd_service
'''

EXAMPLES = r'''
# A handler for the tasks that change main.cf, master.cf or a table:
#   notify: Check and reload Postfix
- name: Check and reload Postfix
  mailgw.postfix_tls.postfix_service:
    state: reloaded

# Reload, or restart when a parameter the change wrote needs it
# (mailgw.postfix_tls.postconf reports restart_required)
- name: Listen on loopback only
  mailgw.postfix_tls.postconf:
    name: inet_interfaces
    value: 127.0.0.1
  register: listen

- name: Check and reload or restart Postfix
  mailgw.postfix_tls.postfix_service:
    state: "{{ 'restarted' if listen.restart_required else 'reloaded' }}"
  when: listen is changed

- name: Restart a secondary instance after changing inet_interfaces
  mailgw.postfix_tls.postfix_service:
    config_dir: /etc/postfix-out
    state: restarted

# Postfix under systemd: check here, reload through the unit.
- name: Check the Postfix configuration
  mailgw.postfix_tls.postfix_service:
    state: checked
  register: postfix_checked

- name: Reload Postfix through systemd
  ansible.builtin.systemd_service:
    name: postfix
    state: reloaded
  when: postfix_checked.running
'''

RETURN = r'''
running:
  description: Whether Postfix was running (C(postfix status) exit status 0).
  returned: success
  type: bool
  sample: true
outcome:
  description:
    - What was done to Postfix (in check mode, what would be done) - V(reloaded), V(restarted),
      or V(none) when it is not running or O(state=checked).
  returned: success
  type: str
  sample: reloaded
checked:
  description: Whether C(postfix check) ran (and passed).
  returned: success
  type: bool
  sample: true
msg:
  description: One line saying what happened.
  returned: always
  type: str
  sample: Postfix (/etc/postfix) was reloaded.
systemd_unit:
  description:
    - With O(state=restarted) and Postfix running, the systemd service unit its master runs in,
      which was restarted (C(systemctl restart)) instead of C(postfix stop) and C(start); null when
      systemd did not start it (or O(state) is not V(restarted)).
  returned: success
  type: str
  sample: postfix@-.service
commands:
  description: The commands run, each an argument list.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/postfix", "-c", "/etc/postfix", "check"], ["/usr/sbin/postfix", "-c", "/etc/postfix", "status"],
           ["/usr/sbin/postfix", "-c", "/etc/postfix", "reload"]]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import PostfixCommandError
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_control import PostfixControl, outcome


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['reloaded', 'restarted', 'checked'], default='reloaded'),
            check=dict(type='bool', default=True),
            config_dir=dict(type='path', default='/etc/postfix'),
            executable=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    commands = []
    postfix = PostfixControl(module, p['config_dir'], commands, p['executable'])
    checked = False
    try:
        if p['check'] and not module.check_mode:
            for warning in postfix.check():
                module.warn(warning)
            checked = True
        running = postfix.running()
        # read-only, so in check mode too: the message says how it would be restarted
        unit = postfix.systemd_unit() if running and p['state'] == 'restarted' else None
        changed, done, msg = outcome(p['config_dir'], p['state'], running, module.check_mode, unit)
        if changed and not module.check_mode:
            if done == 'restarted':
                postfix.restart(unit)
            else:
                postfix.reload()
    except PostfixCommandError as exc:
        last = commands[-1] if commands else []
        if last[-2:-1] == ['restart']:
            state = 'was not restarted by systemd; see "systemctl status %s"' % last[-1]
        elif last[-1:] == ['start']:
            state = 'was stopped and did not start again'
        else:
            state = 'was not reloaded or restarted'
        module.fail_json(msg='%s; Postfix (%s) %s.' % (exc, p['config_dir'], state),
                         rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, commands=commands)
    module.exit_json(changed=changed, running=running, outcome=done, checked=checked, msg=msg,
                     systemd_unit=unit, commands=commands)


if __name__ == '__main__':
    main()
