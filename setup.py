"""Build the compiled core ``fastpool._fastpool`` from ``src/_fastpool.pyx``.

Environment switches (read at build time):

* ``FASTPOOL_NO_EXTENSIONS=1``      install the pure-Python twin only.
* ``FASTPOOL_REQUIRE_EXTENSIONS=1`` fail the build if the extension can't be compiled
                                    (CI uses this so a broken build can't hide behind the twin).
* ``FASTPOOL_DEBUG=1``              compile the invariant checks in (``-O0 -g``).
* ``FASTPOOL_SANITIZE=thread``      build with ThreadSanitizer (or ``address``: AddressSanitizer);
                                    load the runtime with LD_PRELOAD when importing it into an
                                    uninstrumented Python (tests/test_sanitizers.py does this).
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


NO_EXTENSIONS = _flag("FASTPOOL_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("FASTPOOL_REQUIRE_EXTENSIONS")
DEBUG = _flag("FASTPOOL_DEBUG")
SANITIZE = os.environ.get("FASTPOOL_SANITIZE", "").strip().lower()
if SANITIZE not in ("", "thread", "address"):
    raise RuntimeError(f"FASTPOOL_SANITIZE must be 'thread' or 'address', got {SANITIZE!r}")

if NO_EXTENSIONS and REQUIRE_EXTENSIONS:
    raise RuntimeError(
        "FASTPOOL_NO_EXTENSIONS and FASTPOOL_REQUIRE_EXTENSIONS are both set: choose one"
    )

# When adding a compiled module, add it here too: tests/test_build.py checks that
# every src/*.pyx is listed.
CYTHON_MODULES = {"fastpool._fastpool": "src/_fastpool.pyx"}
# Test-only compiled modules: built by `setup.py build_test_ext -b DIR` into DIR
# (tests/conftest.py), never part of ext_modules, so never in a wheel.
TEST_CYTHON_MODULES = {"_fastpool_stress": "tests/support/_fastpool_stress.pyx"}
# Where Cython finds fastpool/_fastpool.pxd (the ring's declarations, which the
# test-only modules cimport) and the C compiler fp_atomic.h and fp_attrs.h.
INCLUDE_DIRS = ["src"]


def cython_extensions(modules: dict, **cythonize_options) -> list:
    """``modules`` (name -> .pyx) cythonized with this build's flags (debug,
    sanitizer: read from the environment above)."""
    from Cython.Build import cythonize

    cflags = ["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O2"]
    cflags += ["-Wall", "-Wno-unused-function", "-pthread"]
    ldflags = ["-pthread"]
    if SANITIZE:
        cflags += [f"-fsanitize={SANITIZE}", "-g", "-fno-omit-frame-pointer"]
        ldflags += [f"-fsanitize={SANITIZE}"]
    exts = [
        Extension(
            name,
            [path],
            include_dirs=INCLUDE_DIRS,
            define_macros=[("FASTPOOL_DEBUG", "1" if DEBUG else "0")],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
        for name, path in modules.items()
    ]
    return cythonize(exts, language_level=3, include_path=INCLUDE_DIRS, **cythonize_options)


def extensions() -> list:
    if NO_EXTENSIONS:
        print("fastpool: pure-Python build (FASTPOOL_NO_EXTENSIONS is set)")
        return []
    try:
        import Cython  # noqa: F401
    except ImportError as missing:
        if REQUIRE_EXTENSIONS:
            raise RuntimeError(
                "FASTPOOL_REQUIRE_EXTENSIONS is set but Cython is not installed; "
                "will not degrade to a pure-Python install"
            ) from missing
        print("fastpool: Cython missing, pure-Python build")
        return []
    print(
        "fastpool: compiled build"
        + (" (debug: invariant checks on)" if DEBUG else "")
        + (f" ({SANITIZE} sanitizer)" if SANITIZE else "")
    )
    compiled = cython_extensions(CYTHON_MODULES, annotate=DEBUG)
    for ext in compiled:  # cythonize() makes new Extension objects: set the flag on those
        ext.optional = not REQUIRE_EXTENSIONS
    return compiled


class BuildExtOrFallBack(build_ext):
    """Compile the core; where that fails (no C compiler: slim containers,
    Windows without MSVC atomics, unusual platforms) install the pure-Python
    twin with one clear warning, unless FASTPOOL_REQUIRE_EXTENSIONS is set."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (DistutilsPlatformError, ...)
            self._fall_back(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # CCompilerError, DistutilsExecError, ...
            self._fall_back(exc)

    @staticmethod
    def _fall_back(exc: Exception) -> None:
        if REQUIRE_EXTENSIONS:
            raise exc
        sys.stderr.write(
            "WARNING: fastpool could not compile its C core "
            f"({exc.__class__.__name__}: {exc}); installing the pure-Python core instead, "
            "which behaves the same and is slower. Install a C compiler and reinstall "
            "to get the compiled one (FASTPOOL_REQUIRE_EXTENSIONS=1 makes this an error).\n"
        )


class BuildTestExtensions(build_ext):
    """``setup.py build_test_ext -b DIR``: the test-only modules
    (TEST_CYTHON_MODULES) into DIR, with the same flags as the core; their C
    goes to the build-temp directory, not beside the sources."""

    description = "build the test-only compiled modules (never part of a wheel)"

    def finalize_options(self) -> None:
        # build_ext takes its extensions from the distribution, and setuptools
        # prepares them while finalizing: swap them in first.
        self.set_undefined_options("build", ("build_temp", "build_temp"))
        self.distribution.ext_modules = cython_extensions(
            TEST_CYTHON_MODULES, build_dir=self.build_temp
        )
        super().finalize_options()


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtOrFallBack, "build_test_ext": BuildTestExtensions},
)
