"""A plugin on disk: a folder, or a .zip / .tar.gz / .tgz archive of one, with `plugin.json` and
flat Python source files (REFERENCE.md 6.1, in Python terms).

`load_package` reads and checks everything before anything is written anywhere: plugin.json's
fields and config schema, every source file through the sandbox policy (errors name file and
line), and which capabilities the code exports (the main module runs once, sandboxed).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin_server.core.errors import PluginServerError
from vm import config_schema
from vm.errors import SandboxError
from vm.sandbox import compile_plugin

MAX_FILES = 50
MAX_FILE_BYTES = 1_000_000
MAX_ARCHIVE_BYTES = 10_000_000
INSTANTIATE_TIMEOUT = 10.0


class PackageError(PluginServerError):
    """The plugin folder or archive is not a valid plugin; the message says what to fix."""


@dataclass(frozen=True)
class PluginPackage:
    name: str
    description: str
    url: str
    main: str
    config_schema: Any  # as written in plugin.json (stored as is)
    fields: list[config_schema.Field]
    sources: dict[str, str]  # file name -> text, plugin.json included
    capabilities: dict[str, list[str]]


def load_package(path: Path) -> PluginPackage:
    files = _read(path)
    if "plugin.json" not in files:
        raise PackageError(f"{path}: no plugin.json")
    try:
        manifest = json.loads(files["plugin.json"])
    except ValueError as exc:
        raise PackageError(f"plugin.json: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise PackageError("plugin.json: must be a JSON object")
    name = manifest.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise PackageError("plugin.json: `name` must be a non-empty string of at most 200 characters")
    main = manifest.get("main", "main.py")
    if not isinstance(main, str) or not main.endswith(".py"):
        raise PackageError("plugin.json: `main` must name a .py file")
    if main not in files:
        raise PackageError(f"plugin.json: `main` is {main!r}, which is not in the plugin")
    try:
        fields = config_schema.parse_schema(manifest.get("config"))
    except config_schema.SchemaError as exc:
        raise PackageError(f"plugin.json: {exc}") from None
    python = {n: s for n, s in files.items() if n.endswith(".py")}
    try:
        compiled = compile_plugin(python, main=main)
        instance = compiled.instantiate(timeout=INSTANTIATE_TIMEOUT, log=lambda kind, text: None)
    except SandboxError as exc:
        raise PackageError(str(exc)) from None
    capabilities = instance.capabilities()
    if not any(capabilities.values()):
        raise PackageError(f"{main}: exports nothing a plugin can do (process_event, on_event, setup_plugin, ...)")
    return PluginPackage(
        name=name.strip(), description=str(manifest.get("description", "")), url=str(manifest.get("url", "")),
        main=main, config_schema=manifest.get("config") or [], fields=fields, sources=files, capabilities=capabilities,
    )  # fmt: skip


def _read(path: Path) -> dict[str, str]:
    if path.is_dir():
        entries = {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file() and _wanted(p.name)}
    elif path.is_file():
        data = path.read_bytes()
        if len(data) > MAX_ARCHIVE_BYTES:
            raise PackageError(f"{path}: archive larger than {MAX_ARCHIVE_BYTES} bytes")
        entries = _unpack(path.name, data)
    else:
        raise PackageError(f"{path}: no such folder or archive")
    if len(entries) > MAX_FILES:
        raise PackageError(f"{path}: more than {MAX_FILES} files")
    files = {}
    for name, raw in entries.items():
        if len(raw) > MAX_FILE_BYTES:
            raise PackageError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
        try:
            files[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PackageError(f"{name}: not UTF-8 text") from None
    return files


def _wanted(name: str) -> bool:
    return name == "plugin.json" or (name.endswith(".py") and not name.startswith("."))


def _unpack(name: str, data: bytes) -> dict[str, bytes]:
    """Members of an archive, flattened to their file names, with one leading folder allowed
    (as GitHub's archives have). Nothing is extracted to disk."""
    members: dict[str, bytes] = {}
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.file_size <= MAX_FILE_BYTES:
                        members[info.filename] = archive.read(info)
        elif name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                for entry in archive.getmembers():
                    if entry.isfile() and entry.size <= MAX_FILE_BYTES:
                        extracted = archive.extractfile(entry)
                        assert extracted is not None, "a regular file always has contents"
                        members[entry.name] = extracted.read()
        else:
            raise PackageError(f"{name}: a plugin archive is a .zip, .tar.gz or .tgz")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise PackageError(f"{name}: cannot read the archive: {exc}") from None
    prefixes = {m.split("/", 1)[0] for m in members if "/" in m}
    strip = len(prefixes) == 1 and all("/" in m for m in members)
    flat = {}
    for member, raw in members.items():
        relative = member.split("/", 1)[1] if strip else member
        if "/" in relative or not _wanted(relative):
            continue  # nested folders and other files are not part of a plugin
        flat[relative] = raw
    return flat
