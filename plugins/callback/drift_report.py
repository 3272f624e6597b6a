# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
name: drift_report
type: aggregate
short_description: Write a drift report (JSON and JUnit XML) of a check-mode run
description:
  - Records every task result that reports C(changed) (in check mode, would change),
    per host, with the task name, the task's file and line, the module and the diff
    the module returned, and writes the records as JSON and as JUnit XML that CI
    systems display.
  - Failed tasks (not ignored) and unreachable hosts are recorded as errors, because
    a host whose check failed has not been shown to be converged.
  - A converged run (nothing would change, nothing failed) writes an empty C(drift)
    and C(failures) list and a JUnit file without failures or errors.
  - Also records, per host, the C(WARNING:) lines task results carry in their C(msg) (the
    C(mailgw.postfix_tls.enforce_tls) role's warnings, for example a C(master.cf) override
    that keeps a service below the levels it enforces); a converged host can still have
    them. They are in the JSON report (C(warnings)), in the JUnit report as the test case's
    C(system-out), and in the verdict line; they do not make a host drift.
  - Prints a one-line verdict per host at the end of the run. The JSON report's C(verdict) is
    the run's, one of C(failed) (a task failed or a host was unreachable), C(drift), C(warnings)
    (converged, with warnings) or C(converged).
  - Use it with C(ansible-playbook --check --diff), for example through the
    C(playbooks/check-drift) wrapper of this collection, which also turns the
    report into an exit code (0 converged, 2 drift, 1 the check itself failed; with
    C(--fail-on-warnings) 3 converged with warnings).
requirements:
  - Enable the callback, for example with
    C(ANSIBLE_CALLBACKS_ENABLED=mailgw.postfix_tls.drift_report).
options:
  json_path:
    description:
      - File to write the JSON report to. Parent directories are created.
      - Not set (the default) or empty writes no JSON report.
    type: str
    env:
      - name: MAILGW_DRIFT_REPORT_JSON
    ini:
      - section: callback_drift_report
        key: json_path
  junit_path:
    description:
      - File to write the JUnit XML report to. Parent directories are created.
      - Not set (the default) or empty writes no JUnit report.
    type: str
    env:
      - name: MAILGW_DRIFT_REPORT_JUNIT
    ini:
      - section: callback_drift_report
        key: junit_path
  suite_name:
    description:
      - Name of the JUnit C(testsuites) element; each host is a C(testsuite) in it.
    type: str
    default: drift
    env:
      - name: MAILGW_DRIFT_REPORT_SUITE
    ini:
      - section: callback_drift_report
        key: suite_name
notes:
  - In the JUnit report every task that ran on a host is a test case of that host's
    test suite; a task that would change is a C(failure) whose text is the diff, a
    failed task or an unreachable host is an C(error). Skipped tasks are not listed.
  - Diffs are only present when the run uses C(--diff) (or the play keyword C(diff=true)).
    Results of C(no_log) tasks carry no diff; the report says so.
"""

import datetime
import difflib
import json
import os
import tempfile
import xml.etree.ElementTree as ET

from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase

REPORT_FORMAT = "mailgw.postfix_tls.drift_report/1"  # "warnings" added: a new key, same format


def _res_host(result):
    host = getattr(result, "host", None)
    if host is None:
        host = result._host
    return host.get_name()


def _res_task(result):
    task = getattr(result, "task", None)
    if task is None:
        task = result._task
    return task


def _res_data(result):
    data = getattr(result, "result", None)
    if data is None:
        data = result._result
    return data


def _serialize(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, indent=4, default=to_text) + "\n"
    if value is None:
        return ""
    return to_text(value)


def render_diff(diff):
    """Render one module diff (or a list of them) as unified diff text, without colour."""
    if not diff:
        return ""
    diffs = diff if isinstance(diff, list) else [diff]
    out = []
    for one in diffs:
        if not isinstance(one, dict):
            out.append(to_text(one))
            continue
        for key, text in (("dst_binary", "diff skipped: destination file appears to be binary\n"),
                          ("src_binary", "diff skipped: source file appears to be binary\n")):
            if key in one:
                out.append(text)
        if "before" in one and "after" in one:
            before = _serialize(one["before"]).splitlines(True)
            after = _serialize(one["after"]).splitlines(True)
            for lines in (before, after):
                if lines and not lines[-1].endswith("\n"):
                    lines[-1] += "\n\\ No newline at end of file\n"
            fromfile = "before: %s" % one["before_header"] if "before_header" in one else "before"
            tofile = "after: %s" % one["after_header"] if "after_header" in one else "after"
            lines = list(difflib.unified_diff(before, after, fromfile=fromfile, tofile=tofile, fromfiledate="", tofiledate=""))
            out.extend(lines)
        if "prepared" in one:
            out.append(to_text(one["prepared"]))
    text = "".join(out)
    if text and not text.endswith("\n"):
        text += "\n"
    return text


def warning_lines(data):
    """The lines starting with "WARNING:" in a result's msg (a string or a list of them)."""
    msg = data.get("msg")
    lines = msg if isinstance(msg, list) else [msg]
    return [to_text(line).strip() for line in lines
            if isinstance(line, (str, bytes)) and to_text(line).strip().startswith("WARNING:")]


def _item_label(item_result):
    label = item_result.get("_ansible_item_label", item_result.get("item"))
    if isinstance(label, (dict, list)):
        return json.dumps(label, sort_keys=True, default=to_text)
    return to_text(label)


def _write_atomic(path, data):
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CallbackModule(CallbackBase):
    """Record changed/failed task results per host and write JSON and JUnit reports."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mailgw.postfix_tls.drift_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._playbook = None
        self._play = None
        self._play_check_modes = []  # each play's check mode (the keyword, else the --check flag)
        self._play_diff_modes = []  # each play's diff mode (the keyword, else the --diff flag)
        self._started = datetime.datetime.now(datetime.timezone.utc)
        self._cases = {}  # host -> list of test case dicts, in execution order
        self._drift = []
        self._failures = []
        self._warnings = []

    # ------------------------------------------------------------------ events

    def v2_playbook_on_start(self, playbook):
        self._playbook = to_text(getattr(playbook, "_file_name", "") or "")

    def v2_playbook_on_play_start(self, play):
        self._play = to_text(play.get_name()).strip()
        self._play_check_modes.append(bool(getattr(play, "check_mode", False)))
        self._play_diff_modes.append(bool(getattr(play, "diff", False)))

    def v2_runner_on_ok(self, result):
        data = _res_data(result)
        if data.get("changed"):
            self._record_drift(result)
        else:
            self._case(result, "passed")
        self._record_warnings(result, data)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            self._case(result, "passed")
            return
        self._record_failure(result, unreachable=False)

    def v2_runner_on_unreachable(self, result):
        self._record_failure(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            hosts[host] = dict((k, summary.get(k, 0)) for k in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored"))
        report = self._report(hosts)
        json_path = self.get_option("json_path")
        junit_path = self.get_option("junit_path")
        if json_path:
            _write_atomic(json_path, (json.dumps(report, indent=2, sort_keys=False, default=to_text) + "\n").encode("utf-8"))
        if junit_path:
            _write_atomic(junit_path, self._junit(report))
        self._print_verdict(report)

    # ------------------------------------------------------------- recording

    def _task_info(self, result):
        task = _res_task(result)
        role = getattr(task, "_role", None)
        return {
            "host": _res_host(result),
            "play": self._play,
            "task": to_text(task.get_name()).strip(),
            "action": to_text(task.action),
            "role": to_text(role.get_name()) if role else None,
            "path": to_text(task.get_path() or ""),
            "handler": type(task).__name__ == "Handler",
        }

    def _case(self, result, status, message="", text=""):
        info = self._task_info(result)
        self._cases.setdefault(info["host"], []).append(dict(info, status=status, message=message, text=text))
        return info

    def _record_drift(self, result):
        data = _res_data(result)
        items = []
        diff_parts = []
        if data.get("results") and isinstance(data["results"], list):
            for item in data["results"]:
                if isinstance(item, dict) and item.get("changed"):
                    items.append(_item_label(item))
                    if item.get("diff"):
                        diff_parts.append("item: %s\n%s" % (items[-1], render_diff(item["diff"])))
        if data.get("diff"):
            diff_parts.insert(0, render_diff(data["diff"]))
        diff = "".join(diff_parts)
        if not diff and data.get("censored"):
            diff = "(diff hidden: no_log)\n"
        msg = to_text(data.get("msg", "")) if data.get("msg") and not data.get("results") else ""
        text = diff or (msg + "\n" if msg else "(the module returned no diff)\n")
        task = _res_task(result)
        info = self._case(result, "drift", message="would change" if task.check_mode else "changed", text=text)
        record = dict(info, diff=diff, items=items)
        if msg:
            record["msg"] = msg
        self._drift.append(record)

    def _record_warnings(self, result, data):
        lines = warning_lines(data)
        if not lines:
            return
        info = self._task_info(result)
        for line in lines:
            if not any(w["host"] == info["host"] and w["warning"] == line for w in self._warnings):
                self._warnings.append(dict(info, warning=line))
        cases = self._cases.get(info["host"]) or []
        if cases:
            cases[-1]["warnings"] = lines

    def _record_failure(self, result, unreachable):
        data = _res_data(result)
        msg = to_text(data.get("msg", "")) or ("unreachable" if unreachable else "failed")
        info = self._case(result, "unreachable" if unreachable else "failed", message=msg, text=msg + "\n")
        self._failures.append(dict(info, unreachable=unreachable, msg=msg))

    # --------------------------------------------------------------- output

    def _report(self, hosts):
        drift_hosts = sorted(set(d["host"] for d in self._drift))
        failed_hosts = sorted(set(f["host"] for f in self._failures))
        return {
            "format": REPORT_FORMAT,
            "playbook": self._playbook,
            # playbooks/check.yml's check_mode: true makes a run without --check a check all the same
            "check_mode": self._mode("check", self._play_check_modes),
            "diff_mode": self._mode("diff", self._play_diff_modes),
            "started": self._started.isoformat(),
            "converged": not self._drift and not self._failures,
            # what playbooks/check-drift turns into its exit code (a top-level line of its own)
            "verdict": ("failed" if self._failures else "drift" if self._drift
                        else "warnings" if self._warnings else "converged"),
            "summary": {
                "hosts": len(hosts),
                "hosts_with_drift": drift_hosts,
                "hosts_failed": failed_hosts,
                "changes": len(self._drift),
                "failures": len(self._failures),
                "hosts_with_warnings": sorted(set(w["host"] for w in self._warnings)),
                "warnings": len(self._warnings),
            },
            "hosts": hosts,
            "drift": self._drift,
            "failures": self._failures,
            "warnings": self._warnings,
        }

    @staticmethod
    def _mode(flag, plays):
        """--check (--diff), or every play in check (diff) mode by its keyword (check.yml)."""
        if context.CLIARGS.get(flag):
            return True
        return bool(plays) and all(plays)

    def _junit(self, report):
        root = ET.Element("testsuites", name=self.get_option("suite_name"))
        totals = {"tests": 0, "failures": 0, "errors": 0}
        for host in sorted(set(self._cases) | set(report["hosts"])):
            cases = self._cases.get(host, [])
            suite = ET.SubElement(root, "testsuite", name=host)
            counts = {"tests": 0, "failures": 0, "errors": 0}
            for case in cases:
                name = case["task"] + (" (handler)" if case["handler"] else "")
                attrs = {"classname": host, "name": name}
                if case["path"]:
                    path, sep, line = case["path"].rpartition(":")
                    if sep and line.isdigit():
                        attrs["file"], attrs["line"] = path, line
                    else:
                        attrs["file"] = case["path"]
                elem = ET.SubElement(suite, "testcase", **attrs)
                counts["tests"] += 1
                if case["status"] == "drift":
                    counts["failures"] += 1
                    fail = ET.SubElement(elem, "failure", type="drift", message="%s: %s" % (case["message"], case["task"]))
                    fail.text = case["text"]
                elif case["status"] in ("failed", "unreachable"):
                    counts["errors"] += 1
                    err = ET.SubElement(elem, "error", type=case["status"], message=case["message"][:500])
                    err.text = case["text"]
                if case.get("warnings"):
                    ET.SubElement(elem, "system-out").text = "\n".join(case["warnings"]) + "\n"
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
        for key, value in totals.items():
            root.set(key, str(value))
        if hasattr(ET, "indent"):
            ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

    def _print_verdict(self, report):
        drift_by_host = {}
        for record in report["drift"]:
            drift_by_host.setdefault(record["host"], []).append(record["task"])
        failed_by_host = {}
        for record in report["failures"]:
            failed_by_host.setdefault(record["host"], []).append(record["task"])
        verb = "would change" if report["check_mode"] else "changed"
        self._display.display("\nDRIFT REPORT " + "*" * 60)
        for host in sorted(report["hosts"]):
            if host in failed_by_host:
                self._display.display("%s: CHECK FAILED (%d task(s): %s)" % (host, len(failed_by_host[host]), "; ".join(failed_by_host[host])))
            elif host in drift_by_host:
                self._display.display("%s: DRIFT, %d task(s) %s: %s" % (host, len(drift_by_host[host]), verb, "; ".join(drift_by_host[host])))
            else:
                self._display.display("%s: converged" % host)
            for record in report["warnings"]:
                if record["host"] == host:
                    self._display.display("  %s" % record["warning"])
        if report["converged"]:
            self._display.display("fleet converged: nothing %s%s" % (
                verb, "; %d warning(s) on %s" % (len(report["warnings"]), ", ".join(
                    report["summary"]["hosts_with_warnings"])) if report["warnings"] else ""))
        for key, label in (("json_path", "JSON"), ("junit_path", "JUnit")):
            if self.get_option(key):
                self._display.display("drift report (%s): %s" % (label, self.get_option(key)))
