"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test downloads get-pip-VERSION.py from a host that is not reachable
here. It runs that script with pip-install style arguments inside a fresh
virtual environment. This stand-in does the same job from a pip wheel that
scripts/test.sh fetched from PyPI into the same directory.
"""
import glob
import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    version = os.path.splitext(os.path.basename(__file__))[0].replace("get_pip_", "").replace("_", ".")
    wheels = glob.glob(os.path.join(here, "pip-%s-py3-none-any.whl" % version))
    if not wheels:
        sys.exit("pip %s wheel missing next to %s" % (version, __file__))
    sys.path.insert(0, wheels[0])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall"] + args))


if __name__ == "__main__":
    main()
