# SPDX-License-Identifier: GPL-3.0-or-later
"""The delivery oracle on another Postfix: run cases.run_all() in a container.

The host's Postfix is the one Debian version the host runs (3.7 on bookworm).
The same oracle runs, unchanged, inside a throwaway container of each other
image (localhost/mailgw-postfix:SUITE, scripts/images.sh): that image's
Postfix binaries, OpenSSL and python3, and the collection's tls_policy module
run with that python3, as Ansible would run it on such a host.

* The working tree is mounted read-only at its own path (the collection link
  in .cache/collections points there).
* Ansible's module_utils (what AnsiballZ ships with a module) are copied from
  the tool venv into a directory on the container's PYTHONPATH;
  MAILGW_MODULE_PYTHON makes run_module() use the container's python3.
* The hypothesis-generated entries are drawn here (hypothesis is not in the
  images) and given to the container on stdin, so every version answers the
  same questions.
* The container has no network (loopback only) and CAP_SYS_ADMIN for the
  oracle's private mount namespace (unshare -m, its own /etc/hosts).

``run_in_image(suite, tmp)`` returns the results dict (as cases.run_all());
``probe_in_image(suite, tmp)`` the tls_probe module's verdicts next to real
delivery (modules/tls_probe/probe_peers.py) on that release;
this file, run as a script by the image's python3, is what runs inside.  ``container_argv()`` runs
any command so (``python -m tests.integration.oracle.ask --image SUITE``).
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(INTEGRATION))
IMAGE_REPO = 'localhost/mailgw-postfix'
# The test images besides the host's own release (3.7): {suite: Postfix major.minor}
OTHER_RELEASES = {'bullseye': (3, 5), 'trixie': (3, 10), 'sid': (3, 11)}
TARGET_LIB = '/opt/mailgw-target'
TIMEOUT = 600


class ImageUnavailable(Exception):
    """podman or the image is missing (scripts/images.sh builds the images)."""


def _module_utils():
    """The tool venv's ansible/module_utils directory."""
    import ansible.module_utils
    return os.path.dirname(os.path.abspath(ansible.module_utils.__file__))


def target_lib(tmp):
    """A directory with ansible/module_utils as a managed host gets them (no controller code)."""
    lib = os.path.join(str(tmp), 'target-lib')
    if not os.path.isdir(lib):
        os.makedirs(os.path.join(lib, 'ansible'))
        open(os.path.join(lib, 'ansible', '__init__.py'), 'w').close()
        shutil.copytree(_module_utils(), os.path.join(lib, 'ansible', 'module_utils'),
                        ignore=shutil.ignore_patterns('__pycache__'))
    return lib


def container_argv(suite, tmp, name, command, env=None):
    """podman run arguments for COMMAND (argv in the container) in a throwaway container
    of IMAGE_REPO:SUITE set up for the oracle; raise ImageUnavailable without the image."""
    image = '%s:%s' % (IMAGE_REPO, suite)
    if not shutil.which('podman'):
        raise ImageUnavailable('the delivery oracle on %s needs podman' % suite)
    if subprocess.run(['podman', 'image', 'exists', image], env=env, check=False).returncode != 0:
        raise ImageUnavailable('image %s is missing (scripts/images.sh builds it)' % image)
    return ['podman', 'run', '--rm', '-i', '--name', name, '--network', 'none', '--cap-add', 'SYS_ADMIN',
            '-v', '%s:%s:ro' % (REPO, REPO), '-v', '%s:%s:ro' % (target_lib(tmp), TARGET_LIB),
            '-e', 'PYTHONPATH=%s' % TARGET_LIB, '-e', 'MAILGW_MODULE_PYTHON=/usr/bin/python3',
            '-e', 'PYTHONDONTWRITEBYTECODE=1', '-w', INTEGRATION, image] + list(command)


def container_name(suite):
    return 'mailgw-oracle-%s%s-%s' % (suite, os.environ.get('MAILGW_MOLECULE_SUFFIX', ''), uuid.uuid4().hex[:8])


def run_in_image(suite, tmp, generated=None, env=None):
    """cases.run_all() inside a throwaway container of IMAGE_REPO:SUITE."""
    from .cases import generated_params
    if generated is None:
        generated = generated_params()
    return _in_image(suite, tmp, {'task': 'oracle', 'generated': generated}, env)


def probe_in_image(suite, tmp, env=None):
    """The tls_probe module against real delivery (probe_peers.probe_against_delivery) inside
    a throwaway container of IMAGE_REPO:SUITE: that release's posttls-finger and Postfix."""
    return _in_image(suite, tmp, {'task': 'probe'}, env)


def routing_in_image(suite, tmp, env=None):
    """The routing world (routing.routing_against_delivery: transport_maps, relay_domains,
    master.cf service overrides) inside a throwaway container of IMAGE_REPO:SUITE."""
    return _in_image(suite, tmp, {'task': 'routing'}, env)


def _in_image(suite, tmp, request, env):
    name = container_name(suite)
    argv = container_argv(suite, tmp, name, ['/usr/bin/python3', os.path.join(HERE, 'in_image.py')], env=env)
    image = '%s:%s' % (IMAGE_REPO, suite)
    try:
        proc = subprocess.run(argv, input=json.dumps(request), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        subprocess.run(['podman', 'rm', '-f', '-t', '0', name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env, check=False)
        raise AssertionError('the delivery oracle (%s) on %s took more than %d s' % (request['task'], image, TIMEOUT))
    if proc.returncode != 0:
        raise AssertionError('the delivery oracle (%s) on %s failed (rc %d):\n%s'
                             % (request['task'], image, proc.returncode, proc.stderr[-4000:]))
    return json.loads(proc.stdout)


def main():
    """Inside the container: the request on stdin, the results as JSON on stdout."""
    request = json.load(sys.stdin)
    sys.path.insert(0, INTEGRATION)
    if request['task'] == 'probe':
        import tempfile
        sys.path.insert(0, os.path.join(INTEGRATION, 'modules', 'tls_probe'))
        from probe_peers import probe_against_delivery
        results = probe_against_delivery(tempfile.mkdtemp(prefix='mailgw-probe-certs-'))
    elif request['task'] == 'routing':
        from oracle.routing import routing_against_delivery
        results = routing_against_delivery()
    else:
        from oracle import cases
        results = cases.run_all(generated=[tuple(item) for item in request['generated']])
    json.dump(results, sys.stdout)


if __name__ == '__main__':
    main()
