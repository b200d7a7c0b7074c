"""drgn-btfvars: debug a Linux kernel with drgn from BTF + kallsyms, no DWARF."""

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the cffi accelerator when a compiler is there; never fail the install.

    The BTF reader has a pure-Python fallback that is chosen automatically when
    the compiled module cannot be imported.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler, no Python headers, ...
            self.warn(f"BTF accelerator not built ({e}); the pure-Python reader will be used")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:
            self.warn(f"BTF accelerator {ext.name} not built ({e}); "
                      "the pure-Python reader will be used")


setup(
    name="drgn-btfvars",
    version="0.1.0",
    description="Debug Linux kernels with drgn using BTF and kallsyms instead of DWARF",
    long_description=open("README.rst").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.9",
    packages=find_packages(include=["drgn_btfvars", "drgn_btfvars.*"]),
    install_requires=["drgn>=0.0.30", "pyelftools>=0.29", "cffi>=1.15"],
    setup_requires=["cffi>=1.15"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6", "zstandard>=0.21", "ipython>=7"]},
    cffi_modules=["drgn_btfvars/btf/_accel_build.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
    entry_points={
        "drgn.plugins": ["btfvars = drgn_btfvars.plugin"],
        "console_scripts": ["drgn-btfvars = drgn_btfvars.cli:main"],
    },
    license="LGPL-2.1-or-later",
)
