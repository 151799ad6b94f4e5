import atexit
import os
import shutil
import tempfile

# Rich output at a fixed width and without colour, whatever terminal runs the tests.
os.environ.setdefault("COLUMNS", "120")
os.environ["NO_COLOR"] = "1"
# The cache of derived partials goes to a directory of this run, never the user's own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="gradcalc-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)
