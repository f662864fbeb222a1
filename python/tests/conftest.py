"""The tests import the `cupworld` package found on sys.path: the one `pip install ./python`
installed, or the one `python/tests/run.sh` stages from the workspace build."""
import os
import shutil

import pytest


@pytest.fixture(scope="session")
def cupworld_bin():
    """The `cupworld` command line, for the tests that compare with `cupworld gen`."""
    path = os.environ.get("CUPWORLD_BIN") or shutil.which("cupworld")
    if not path:
        pytest.fail("set CUPWORLD_BIN to the cupworld binary (python/tests/run.sh does)")
    return path
