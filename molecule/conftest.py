# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the Molecule verifiers (pytest with testinfra).

Molecule's testinfra verifier runs ``pytest --connection=ansible
--ansible-inventory=<the scenario's inventory>`` on ``molecule/<scenario>/tests``
and ``molecule/resources/tests`` (base config, verifier
additional_files_or_dirs); this file sits above both, so pytest loads it for
every scenario. testinfra's ``host`` fixture is parametrized over the
inventory's hosts (the scenario's gateways, one per image), and pytest runs all
tests of a module for one host before the next, in file order, so a module
can be a sequence (remove an exception, probe, restore, probe).

The gateways are reached with the ``community.docker.nsenter`` connection of
the Molecule inventory. testinfra's ansible backend has no fast path for that
connection type: every ``host.run`` would go through the ``ansible`` command
(1.2 s on an idle machine, several seconds on a busy one). The ``host``
fixture below keeps the ansible backend (inventory, ``host.ansible`` for
module calls, variables) and runs commands the way the connection does: one
``nsenter`` into the container's namespaces, with the PID that the
inventory's own ``ansible_nsenter_pid`` resolves to. Wire checks of a group
run in one call of ``smtp_probe.py run`` (every submission first, then all
outcomes awaited together), each step then reported by its own parametrized
test.
"""

import base64
import json
import re

import pytest
import testinfra.host
from testinfra.backend.ansible import AnsibleBackend

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PROBE = "/opt/mailgw-test/smtp_probe.py"
PROBE_TIMEOUT = 40


class NsenterBackend(AnsibleBackend):
    """testinfra's ansible backend, with commands run through nsenter as the
    community.docker.nsenter connection does (a clean environment: the
    container's PATH, not the controller's)."""

    def __init__(self, hostname, pid, **kwargs):
        super().__init__(hostname, **kwargs)
        self.pid = pid

    def run(self, command, *args, **kwargs):
        command = self.get_command(command, *args)
        return self.run_local(
            "nsenter --target=%s --ipc --mount --net --pid --uts -- env -i PATH=%s HOME=/root LC_ALL=C.UTF-8 "
            "/bin/sh -c %s", str(self.pid), PATH, command)


@pytest.fixture(scope="module")
def host(_testinfra_host):
    """testinfra's host (one per inventory host), on nsenter where the inventory says so."""
    backend = _testinfra_host.backend
    if not isinstance(backend, AnsibleBackend) or \
            backend.get_variables().get("ansible_connection") != "community.docker.nsenter":
        return _testinfra_host
    pid = _testinfra_host.ansible("ansible.builtin.debug", "var=ansible_nsenter_pid")["ansible_nsenter_pid"]
    return testinfra.host.Host(NsenterBackend(backend.host, int(pid), ansible_inventory=backend.ansible_inventory))


class Gateway:
    """A gateway container of the scenario, seen through testinfra's host."""

    def __init__(self, host):
        self.host = host
        self.name = host.backend.host
        self.vars = host.ansible.get_variables()

    def run(self, command, *args):
        """Run a shell command (args are quoted); fail the test unless rc is 0."""
        result = self.host.run(command, *args)
        assert result.rc == 0, "%s failed (rc %s): %s %s" % (
            result.command, result.rc, result.stdout, result.stderr)
        return result.stdout

    def postconf(self, *names):
        """{name: raw value} of main.cf parameters (postconf -h, not expanded)."""
        values = self.run("postconf -h " + " ".join(names)).splitlines()
        assert len(values) == len(names), "postconf -h %s: %r" % (" ".join(names), values)
        return dict(zip(names, values))

    def postmap_query(self, key, table):
        """postmap -q KEY TABLE: the value, or None when the key is not found."""
        result = self.host.run("postmap -q %s %s", key, table)
        assert result.rc in (0, 1), "postmap -q %s %s: rc %s %s" % (key, table, result.rc, result.stderr)
        return result.stdout.strip() if result.rc == 0 else None

    def module(self, module_name, /, **args):
        """Run a module (for example mailgw.postfix_tls.tls_policy) on the gateway, not in check mode."""
        return self.host.ansible(module_name, json.dumps(args), check=False)

    def queue(self):
        """The Postfix queue: a list of postqueue -j records."""
        out = self.run("postqueue -j")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def queued(self, recipients):
        """[(queue name, address, delay reason)] of the queued mail for these recipients."""
        return sorted((entry.get("queue_name"), rcpt.get("address"), rcpt.get("delay_reason", ""))
                      for entry in self.queue() for rcpt in entry.get("recipients", [])
                      if rcpt.get("address") in recipients)

    def listening(self):
        """{(address, port)} of every TCP socket listening in the gateway's namespace."""
        found = set()
        for line in self.run("ss -Hltn").splitlines():
            fields = line.split()
            match = re.match(r"^\[?(.*?)\]?:(\d+)$", fields[3]) if len(fields) >= 4 else None
            if match:
                found.add((match.group(1), int(match.group(2))))
        return found

    def run_steps(self, steps, timeout=PROBE_TIMEOUT):
        """Run smtp_probe.py steps in the gateway's namespace (one call); see StepResults."""
        encoded = base64.b64encode(json.dumps(steps).encode("utf-8")).decode("ascii")
        out = self.run("python3 %s run --timeout %s --steps-base64 %s", PROBE, str(timeout), encoded)
        report = json.loads(out)
        return StepResults(report["results"])


class StepResults:
    """Outcome of one smtp_probe.py run, looked up by step name."""

    def __init__(self, results):
        self.results = results

    def recipients(self):
        """The unique recipient address of every submission of the run."""
        return {r["rcpt"] for r in self.results if r.get("rcpt")}

    def check(self, name):
        """Fail the calling test with the probe's own words unless step NAME passed."""
        found = [r for r in self.results if r["name"] == name]
        assert found, "no result for step %r (steps: %s)" % (name, [r["name"] for r in self.results])
        result = found[0]
        detail = result["detail"]
        if "session" in result:
            detail += "; session: %s" % json.dumps(result["session"], sort_keys=True)
        assert result["ok"], detail


@pytest.fixture(scope="module")
def gateway(host):
    """The gateway under test (one per inventory host; see Gateway)."""
    return Gateway(host)
