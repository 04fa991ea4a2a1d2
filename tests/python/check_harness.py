"""What the check_*.py scripts share: their command line (VKTRAIN_BINARY LIBVKTRAIN_C WORK_DIR [RUNNER...], RUNNER
being a command prefix such as run-in-root.sh BUILD for the trixie device, LIBVKTRAIN_C "-" for none), running the
vktrain binary under the runner, one-line error checks, and the tally of checks."""
import os
import shutil
import subprocess
import sys


class Checks:
    def __init__(self, argv):
        if len(argv) < 4:
            raise SystemExit("usage: %s VKTRAIN_BINARY LIBVKTRAIN_C WORK_DIR [RUNNER...]" % argv[0])
        self.bin, self.lib, self.work = argv[1], argv[2], argv[3]
        self.runner = argv[4:]
        self.passes, self.failures = [], []

    def run(self, args, expect_ok=True):
        p = subprocess.run(self.runner + [self.bin] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if expect_ok and p.returncode != 0:
            raise SystemExit("FAIL: vktrain %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
        return p

    def run_capi_script(self, name, args):
        """Runs tests/python/NAME (a C API script) with args under the runner, copied into the work folder first with
        the capi_graph.py it imports: the trixie root sees the build folder, not the source."""
        here = os.path.dirname(os.path.abspath(__file__))
        for f in (name, "capi_graph.py"):
            shutil.copy(os.path.join(here, f), os.path.join(self.work, f))
        python = "python3" if self.runner else sys.executable
        return subprocess.run(self.runner + [python, os.path.join(self.work, name)] + [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def check(self, cond, what):
        print(("ok    " if cond else "FAIL  ") + what)
        (self.passes if cond else self.failures).append(what)

    def expect_error(self, args, text, status=1):
        """The command fails with `status` and one stderr line, "vktrain: error: ..." containing `text`."""
        p = self.run(args, expect_ok=False)
        lines = p.stderr.strip().splitlines()
        ok = (p.returncode == status and len(lines) == 1 and lines[0].startswith("vktrain: error: ")
              and text in lines[0])
        self.check(ok, "error %r (exit %d, stderr %r)" % (text, p.returncode, p.stderr.strip()))

    def summary(self):
        """Prints the tally (and what failed); the process's exit status."""
        print("%d passed, %d failed" % (len(self.passes), len(self.failures)))
        if self.failures:
            print("failed:\n  " + "\n  ".join(self.failures))
        return 1 if self.failures else 0
