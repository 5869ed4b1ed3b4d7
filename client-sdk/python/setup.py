"""The build hook: compiles the protos into `clientinfo/v1` before setuptools packs the modules.

The protos come from `proto/` next to this file in an sdist (copied there by `sdist` below) and
from the repository's `../../proto` in a checkout. Generated code goes into the build directory
only (`build/lib`, or a wheel's temporary tree), never into `src/`.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PACKAGE_PATH = Path("clientinfo", "v1")


def proto_root() -> Path:
    """The directory holding `clientinfo/v1/*.proto`: the sdist's copy, else the checkout's."""
    for root in (HERE / "proto", HERE.parent.parent / "proto"):
        if (root / PACKAGE_PATH).is_dir():
            return root
    raise RuntimeError(
        "no protos: expected proto/clientinfo/v1 beside setup.py (sdist) or ../../proto (checkout)"
    )


def protos(root: Path) -> list[str]:
    return sorted(str(PACKAGE_PATH / p.name) for p in (root / PACKAGE_PATH).glob("*.proto"))


def grpc_tools_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


def protobuf_floor() -> str:
    """The lowest protobuf the generator's gencode runs on: grpcio-tools' own requirement (its
    `_pb2` modules check the runtime's version at import)."""
    from importlib.metadata import requires

    for requirement in requires("grpcio-tools") or []:
        found = re.match(r"protobuf\b[^;]*>=\s*([0-9][0-9.]*)", requirement.replace(" ", ""))
        if found:
            return found.group(1)
    return "5.26.1"


def dependencies() -> list[str]:
    """Runtime requirements matching the generator: grpcio at least the grpcio-tools release
    (its `_pb2_grpc` modules check it), protobuf at least the gencode's release."""
    tools = grpc_tools_version()
    major_minor = ".".join(tools.split(".")[:2])
    return [
        f"grpcio>={tools}",
        f"grpcio-status>={major_minor}",
        f"protobuf>={protobuf_floor()}",
        "googleapis-common-protos>=1.63",
    ]


def generate(out: Path) -> None:
    """Runs protoc (grpcio-tools') over every proto into `out`: messages with their `.pyi`,
    services with typed stubs when mypy-protobuf is installed, and the package markers."""
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    target = out / PACKAGE_PATH
    target.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
    ]
    mypy_plugin = _plugin("protoc-gen-mypy")
    grpc_plugin = _plugin("protoc-gen-mypy_grpc")
    if mypy_plugin and grpc_plugin:
        # mypy-protobuf's stubs: typed enums, oneofs and service stubs, clean under
        # `mypy --strict` (protoc's own --pyi_out leaves generic types bare and types no stub).
        args += [
            f"--plugin=protoc-gen-mypy={mypy_plugin}",
            f"--mypy_out=quiet:{out}",
            f"--plugin=protoc-gen-mypy_grpc={grpc_plugin}",
            f"--mypy_grpc_out=quiet:{out}",
        ]
    else:
        args.append(f"--pyi_out={out}")
    code = protoc.main(args + protos(root))
    if code != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {code}")
    for package in (out / "clientinfo", target):
        (package / "__init__.py").write_text('"""Generated from proto/ by grpcio-tools."""\n')
        (package / "py.typed").write_text("")


def _plugin(name: str) -> str | None:
    """A protoc plugin of mypy-protobuf: beside the running interpreter (a venv not on PATH,
    an isolated build's environment), else on PATH."""
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


class BuildPyWithProtos(build_py):
    """`build_py` that first generates `clientinfo/v1` into the build directory."""

    def run(self) -> None:
        generate(Path(self.build_lib))
        super().run()

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        # The generated packages have no source directory: their modules are already in
        # build_lib, so there is nothing for setuptools to copy.
        if package.startswith("clientinfo"):
            return []
        return super().find_package_modules(package, package_dir)

    def check_package(self, package: str, package_dir: str | None) -> str | None:
        if package.startswith("clientinfo"):
            return None
        return super().check_package(package, package_dir)

    def build_package_data(self) -> None:
        for package, src_dir, build_dir, filenames in self.data_files:
            if package.startswith("clientinfo"):
                continue
            for filename in filenames:
                target = os.path.join(build_dir, filename)
                self.mkpath(os.path.dirname(target))
                self.copy_file(os.path.join(src_dir, filename), target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        generated = Path(self.build_lib, "clientinfo")
        if generated.is_dir():
            outputs += [str(p) for p in generated.rglob("*") if p.is_file()]
        return outputs


class SdistWithProtos(sdist):
    """`sdist` that carries a copy of the protos, so a wheel builds from the sdist alone."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        source = proto_root() / PACKAGE_PATH
        copy = Path(base_dir, "proto", PACKAGE_PATH)
        copy.mkdir(parents=True, exist_ok=True)
        for proto in sorted(source.glob("*.proto")):
            shutil.copyfile(proto, copy / proto.name)


setup(
    cmdclass={"build_py": BuildPyWithProtos, "sdist": SdistWithProtos},
    install_requires=dependencies(),
)
