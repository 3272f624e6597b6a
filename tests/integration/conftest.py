"""Make the shared helpers of tests/integration (ansible_env, reliability_helpers)
importable from its subdirectories (role/) too."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
