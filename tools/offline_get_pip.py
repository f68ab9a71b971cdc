"""Stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test fetches get-pip.py from a host that closed networks (and some
proxies) cannot reach, then runs it inside each fresh sanity-test venv with
pip-install arguments. This script does the same job with the standard
library: ensurepip installs pip, then pip installs the requested packages
from the package index the machine is configured for.

tools/ansible-test-sanity installs it where ansible-test looks for its cache.
"""
import ensurepip
import os
import subprocess
import sys


def main():
    saved_environment = dict(os.environ)
    ensurepip.bootstrap()
    # ensurepip sets PIP_CONFIG_FILE=/dev/null and drops PIP_* variables,
    # which would hide the machine's index and certificate settings.
    os.environ.clear()
    os.environ.update(saved_environment)
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))


if __name__ == '__main__':
    main()
