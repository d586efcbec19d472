"""A plugin on disk: a folder, or a .zip / .tar.gz / .tgz archive of one, with `plugin.json` and
flat Python source files (REFERENCE.md 6.1, in Python terms).

`load_package` reads and checks everything before anything is written anywhere: plugin.json's
fields and config schema, every source file through the sandbox policy (errors name file and
line), and which capabilities the code exports (the main module runs once, sandboxed).

A package is hostile input, so reading one is bounded before it starts: a folder's entries are
listed without following links and every file is opened without following one, its size read
from the open file; an archive's member count, kinds, names and sizes are checked from its
headers before any member is read, and a .tar.gz is inflated at most to what those limits allow;
plugin.json's size and nesting are checked before it is parsed. Every refusal is one line naming
the file or member.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from plugin_server.core.errors import PluginServerError
from vm import config_schema
from vm.errors import SandboxError
from vm.sandbox import compile_plugin

MAX_FILES = 50  # plugin.json and .py files of one plugin
MAX_FILE_BYTES = 1_000_000
MAX_ARCHIVE_BYTES = 10_000_000  # the archive file itself
# Entries of a folder or members of an archive, folders and files that are not part of the plugin
# included: a plugin repository's archive has tens; this bounds the work of walking the headers.
MAX_MEMBERS = 1_000
# The sizes an archive's members declare, added up: no plugin can use more than its files' limits.
MAX_UNPACKED_BYTES = MAX_FILES * MAX_FILE_BYTES
# What a .tar.gz may inflate to: the members plus, for each, a header, a long-name or pax header
# and padding (4 KiB is generous), plus the end-of-archive record.
MAX_TAR_BYTES = MAX_UNPACKED_BYTES + MAX_MEMBERS * 4096 + 10_240
# plugin.json: a config schema of a hundred fields is about 20 kB, and its deepest legitimate part
# (a field's `choices`, or `required_if` pairs) is 4 levels down. json.loads recurses in C per
# level and ends in a RecursionError, so the depth is counted on the text, before parsing.
MAX_MANIFEST_BYTES = 100_000
MAX_MANIFEST_DEPTH = 16
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
    manifest = _manifest(files["plugin.json"])
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


def _manifest(text: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise PackageError(f"plugin.json: larger than {MAX_MANIFEST_BYTES} bytes")
    if _nested_deeper(text, MAX_MANIFEST_DEPTH):
        raise PackageError(f"plugin.json: nested deeper than {MAX_MANIFEST_DEPTH} levels")
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise PackageError(f"plugin.json: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise PackageError("plugin.json: must be a JSON object")
    return manifest


def _nested_deeper(text: str, limit: int) -> bool:
    """Whether the JSON `text` opens more than `limit` arrays and objects inside one another
    (brackets inside strings do not count; malformed text is left to json.loads to refuse)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _read(path: Path) -> dict[str, str]:
    if path.is_dir():
        raws = _read_folder(path)
    elif path.is_file():
        raws = _unpack(path.name, _read_regular(path, limit=MAX_ARCHIVE_BYTES, what="archive "))
    else:
        raise PackageError(f"{path}: no such folder or archive")
    files = {}
    for name, raw in raws.items():
        try:
            files[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PackageError(f"{name}: not UTF-8 text") from None
    return files


def _wanted(name: str) -> bool:
    return name == "plugin.json" or (name.endswith(".py") and not name.startswith("."))


def _check_file_count(count: int, where: object) -> None:
    if count > MAX_FILES:
        raise PackageError(f"{where}: more than {MAX_FILES} files")


# --- folders ---------------------------------------------------------------------------------


def _read_folder(path: Path) -> dict[str, bytes]:
    """The plugin files at the top of a folder. Entries are listed without following links: a
    symbolic link or a special file (FIFO, socket, device) anywhere at the top refuses the folder,
    whatever its name, since its target is outside the folder's control; subfolders are not part
    of a plugin and are not entered. The folder itself is the operator's path and may be a link."""
    try:
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise PackageError(f"{path}: cannot open the folder: {exc.strerror}") from None
    try:
        names = []
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries, start=1):
                if count > MAX_MEMBERS:
                    raise PackageError(f"{path}: more than {MAX_MEMBERS} entries")
                if not entry.name.isprintable():
                    raise PackageError(f"{entry.name!r}: a file name with a control character")
                if entry.is_symlink():
                    raise PackageError(f"{entry.name}: a symbolic link (a plugin folder holds regular files only)")
                if entry.is_dir(follow_symlinks=False):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    raise PackageError(f"{entry.name}: not a regular file (a plugin folder holds regular files only)")
                if _wanted(entry.name):
                    names.append(entry.name)
        _check_file_count(len(names), path)
        return {name: _read_regular(Path(name), limit=MAX_FILE_BYTES, folder=folder) for name in sorted(names)}
    finally:
        os.close(folder)


def _read_regular(path: Path, *, limit: int, folder: int | None = None, what: str = "") -> bytes:
    """A regular file's bytes, at most `limit`. Opened without following a link (relative to
    `folder` when given) and without blocking on a FIFO, then checked on the open descriptor, so a
    file swapped for a link or a device after the listing is refused, not read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (os.O_NOFOLLOW if folder is not None else 0)
    try:
        descriptor = os.open(path, flags, dir_fd=folder)
    except OSError as exc:
        raise PackageError(f"{path}: cannot open: {exc.strerror}") from None
    with open(descriptor, "rb") as file:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise PackageError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise PackageError(f"{path}: {what}larger than {limit} bytes")
        data = file.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise PackageError(f"{path}: changed while it was read")
    return data


# --- archives --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str  # as in the archive, to name it in errors
    path: str  # normalized: "./" and empty parts dropped
    size: int  # as the header declares
    is_dir: bool


def _unpack(name: str, data: bytes) -> dict[str, bytes]:
    """The plugin files of an archive, flattened to their file names, with one leading folder
    allowed (as GitHub's archives have). Every member's header is checked before any member is
    read; only plugin files are read, each bounded by its declared size. Nothing touches disk."""
    try:
        if name.endswith(".zip"):
            return _unpack_zip(data)
        if name.endswith((".tar.gz", ".tgz")):
            return _unpack_tar(name, data)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        zlib.error,
        EOFError,
        NotImplementedError,  # zipfile: a zip version or feature it does not read
        OSError,
        ValueError,
    ) as exc:
        raise PackageError(f"{name}: cannot read the archive: {exc}") from None
    raise PackageError(f"{name}: a plugin archive is a .zip, .tar.gz or .tgz")


def _unpack_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()  # the central directory only: nothing is inflated yet
        if len(infos) > MAX_MEMBERS:
            raise PackageError(f"more than {MAX_MEMBERS} archive members")
        members = []
        for info in infos:
            member = _member(info.filename, info.file_size, info.is_dir())
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when made where modes do not exist
            if kind == stat.S_IFLNK:
                raise PackageError(f"{info.filename}: a link (a plugin archive holds regular files only)")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise PackageError(f"{info.filename}: not a regular file (a plugin archive holds regular files only)")
            if info.flag_bits & 0x41:  # traditional or strong encryption
                raise PackageError(f"{info.filename}: encrypted")
            # zipfile inflates bzip2 and lzma members in unbounded steps: only deflate reads are bounded
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise PackageError(f"{info.filename}: compressed with method {info.compress_type}; use deflate")
            members.append(member)
        plan = _plan(members)
        by_name = {info.filename: info for info in infos}
        return {flat: _read_member(archive.open(by_name[member.name]), member) for flat, member in plan.items()}


def _unpack_tar(name: str, data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(_gunzip(name, data)), mode="r:") as archive:
        members: list[_Member] = []
        entries: dict[str, tarfile.TarInfo] = {}
        for entry in archive:  # header by header: no member's contents is read
            if len(members) == MAX_MEMBERS:
                raise PackageError(f"more than {MAX_MEMBERS} archive members")
            member = _member(entry.name, entry.size, entry.isdir())
            if entry.issym() or entry.islnk():
                raise PackageError(f"{entry.name}: a link (a plugin archive holds regular files only)")
            if not (entry.isreg() or entry.isdir()) or entry.issparse():
                raise PackageError(f"{entry.name}: not a regular file (a plugin archive holds regular files only)")
            members.append(member)
            entries[entry.name] = entry
        plan = _plan(members)
        read = {}
        for flat, member in plan.items():
            contents = archive.extractfile(entries[member.name])
            assert contents is not None, "a regular file always has contents"
            read[flat] = _read_member(contents, member)
        return read


def _gunzip(name: str, data: bytes) -> bytes:
    """A .tar.gz's tar stream, inflated in one bounded step per gzip member: tarfile would read a
    pax or long-name header's contents, however large, before any check could see it."""
    stream = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        stream += inflater.decompress(rest, MAX_TAR_BYTES + 1 - len(stream))
        if len(stream) > MAX_TAR_BYTES or inflater.unconsumed_tail:
            raise PackageError(f"{name}: inflates to more than {MAX_TAR_BYTES} bytes")
        if not inflater.eof:
            raise PackageError(f"{name}: cannot read the archive: truncated")
        rest = inflater.unused_data.lstrip(b"\0")  # gzip allows zero padding after a member
    return bytes(stream)


def _member(name: str, size: int, is_dir: bool) -> _Member:
    """A member as its header describes it. Names that are absolute, climb out with `..`, use a
    backslash (a separator elsewhere) or hold a control character (every error names the member
    on one line) are refused, though nothing is ever written to disk."""
    if name.startswith("/") or "\\" in name or not name.isprintable():
        raise PackageError(f"{name!r}: an absolute or unsafe member name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PackageError(f"{name!r}: a member name that climbs out with '..'")
    if size < 0:
        raise PackageError(f"{name!r}: a negative size")
    return _Member(name=name, path="/".join(parts), size=size, is_dir=is_dir)


def _plan(members: list[_Member]) -> dict[str, _Member]:
    """Which members are the plugin's files, under which flat name, all checked from the headers:
    the total size, how many, each one's size, and no name twice."""
    files = [member for member in members if not member.is_dir and member.path]
    prefixes = {m.path.split("/", 1)[0] for m in files if "/" in m.path}
    strip = len(prefixes) == 1 and all("/" in m.path for m in files)
    plan: dict[str, _Member] = {}
    for member in files:
        relative = member.path.split("/", 1)[1] if strip else member.path
        if "/" in relative or not _wanted(relative):
            continue  # nested folders and other files are not part of a plugin
        if relative in plan:
            raise PackageError(f"{member.name}: {relative} appears twice in the archive")
        if member.size > MAX_FILE_BYTES:
            raise PackageError(f"{member.name}: larger than {MAX_FILE_BYTES} bytes")
        plan[relative] = member
    _check_file_count(len(plan), "the archive")
    if sum(member.size for member in members) > MAX_UNPACKED_BYTES:
        raise PackageError(f"members larger than {MAX_UNPACKED_BYTES} bytes in total")
    return plan


def _read_member(contents: IO[bytes], member: _Member) -> bytes:
    with contents:
        data = contents.read(member.size + 1)  # bounded reads: a lying header cannot inflate more
    if len(data) != member.size:
        raise PackageError(f"{member.name}: its contents do not match its declared size")
    return data
