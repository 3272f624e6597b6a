# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What loading a plugin imports (issue "Fleet cost").

Every Ansible task runs in a worker process that loads the filter plugin file again,
and the collection loader compiles every collection file it imports from source; the
module runs on the gateway from the AnsiballZ zip, compiling what it imports. So the
filter file imports the Postfix rules a filter needs when that filter is called, and a
read that works no levels out does not load the log reader and the probes. Checked in
a fresh interpreter: which of the collection's modules a load brings in.
"""

import json
import os
import subprocess
import sys

import pytest

PREFIX = 'ansible_collections.mailgw.postfix_tls.plugins.'


def loaded_after(statements):
    """The collection's modules in sys.modules after STATEMENTS, in a fresh interpreter."""
    code = '\n'.join(list(statements) + [
        'import json, sys',
        'print(json.dumps(sorted(m for m in sys.modules if m.startswith(%r))))' % PREFIX,
    ])
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    return set(name[len(PREFIX):] for name in json.loads(out))


def test_loading_the_filter_file_imports_no_postfix_rules():
    loaded = loaded_after(['import %sfilter.postfix_tls' % PREFIX])
    assert loaded == {'filter', 'filter.postfix_tls'}, loaded


@pytest.mark.parametrize('call, wanted, unwanted', [
    # the read's arguments: the policies merged and rendered (the grammar), no decision
    ("f.tls_policy_values(f.merge_tls_policies({'p': [{'destination': 'a.example', 'level': 'secure'}]}))",
     {'module_utils.tls_policy_grammar'},
     {'plugin_utils.enforce_tls_decision', 'plugin_utils.tls_preflight_report', 'module_utils.service_levels'}),
    # the decision: no grammar
    ("f.enforce_tls_decision({}, {})",
     {'plugin_utils.enforce_tls_decision'},
     {'module_utils.tls_policy_grammar', 'plugin_utils.tls_preflight_report'}),
    # the table's place in smtp_tls_policy_maps: only the table types
    ("f.policy_maps_with_table('', 'hash:/etc/postfix/tls_policy')",
     {'module_utils.lookup_table_types'},
     {'module_utils.tls_policy_grammar', 'module_utils.postconf_params', 'plugin_utils.enforce_tls_decision'}),
])
def test_a_filter_imports_what_it_uses(call, wanted, unwanted):
    loaded = loaded_after(['from %sfilter import postfix_tls as f' % PREFIX, call])
    assert wanted <= loaded and not (unwanted & loaded), loaded


def test_the_read_loads_the_log_reader_and_the_probes_only_to_work_levels_out():
    loaded = loaded_after(['import %smodules.postconf_info' % PREFIX])
    assert 'module_utils.policy_levels' in loaded
    assert not {'module_utils.posttls_finger', 'module_utils.mail_log'} & loaded, loaded
    # parameters_needed and levels() load them
    loaded = loaded_after(['from %smodule_utils import policy_levels' % PREFIX,
                           "policy_levels.parameters_needed({'log': True, 'probe': True})"])
    assert {'module_utils.posttls_finger', 'module_utils.mail_log'} <= loaded
