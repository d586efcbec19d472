"""Plugin folders and archives: what load_package accepts and how it refuses the rest."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import socket
import stat
import struct
import tarfile
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from vm import package
from vm.package import (
    MAX_ARCHIVE_BYTES,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_MEMBERS,
    MAX_TAR_BYTES,
    MAX_UNPACKED_BYTES,
    PackageError,
    load_package,
)

MAIN = "def process_event(event, meta):\n    return event\n"
MANIFEST = {"name": "hello", "description": "says hi", "url": "https://example.com", "main": "main.py",
            "config": [{"key": "greeting", "required": True}]}  # fmt: skip
GOOD = {"plugin.json": json.dumps({"name": "x"}), "main.py": MAIN}


def folder(tmp_path, files: dict[str, str | bytes]):
    root = tmp_path / "plugin"
    root.mkdir()
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def archive(tmp_path, kind: str, files: dict[str, str], prefix: str = "plugin-main/"):
    path = tmp_path / f"plugin.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            for name, content in files.items():
                z.writestr(prefix + name, content)
    else:
        with tarfile.open(path, "w:gz") as t:
            for name, content in files.items():
                data = content.encode()
                info = tarfile.TarInfo(prefix + name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


def test_folder_loads_with_capabilities_and_schema(tmp_path):
    files = {"plugin.json": json.dumps(MANIFEST), "main.py": "from helpers import shout\n" + MAIN.replace("return event", "return shout(event)"),
             "helpers.py": "def shout(event):\n    return event\n", "README.md": "ignored", ".hidden.py": "ignored"}  # fmt: skip
    package = load_package(folder(tmp_path, files))
    assert package.name == "hello" and package.description == "says hi" and package.main == "main.py"
    assert set(package.sources) == {"plugin.json", "main.py", "helpers.py"}
    assert package.capabilities["methods"] == ["process_event"]
    assert [f.key for f in package.fields] == ["greeting"]


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tgz"])
def test_archives_with_one_leading_folder(tmp_path, kind):
    package = load_package(archive(tmp_path, kind, {"plugin.json": json.dumps(MANIFEST), "main.py": MAIN}))
    assert package.name == "hello" and set(package.sources) == {"plugin.json", "main.py"}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"main.py": MAIN}, "no plugin.json"),
        ({"plugin.json": "{nope", "main.py": MAIN}, "not valid JSON"),
        ({"plugin.json": "[]", "main.py": MAIN}, "must be a JSON object"),
        ({"plugin.json": json.dumps({"main": "main.py"}), "main.py": MAIN}, "`name` must be"),
        (
            {"plugin.json": json.dumps({"name": "x", "main": "index.js"}), "main.py": MAIN},
            "`main` must name a .py file",
        ),
        ({"plugin.json": json.dumps({"name": "x", "main": "app.py"}), "main.py": MAIN}, "not in the plugin"),
        ({"plugin.json": json.dumps({"name": "x", "config": [{"key": "a b"}]}), "main.py": MAIN}, "key must be a name"),
        ({"plugin.json": json.dumps({"name": "x"}), "main.py": "import os\n" + MAIN}, "main.py:1: import of 'os'"),
        ({"plugin.json": json.dumps({"name": "x"}), "main.py": "x = 1\n"}, "exports nothing"),
        ({"plugin.json": json.dumps({"name": "x"}), "main.py": b"\xff\xfe"}, "not UTF-8"),
        ({"plugin.json": json.dumps({"name": "x"}), "main.py": "x = 1\n" * 200_000}, "larger than"),
    ],
)
def test_bad_folders_are_refused_with_what_to_fix(tmp_path, files, message):
    with pytest.raises(PackageError, match=re.escape(message)):
        load_package(folder(tmp_path, files))


def test_too_many_files(tmp_path):
    files = {"plugin.json": json.dumps({"name": "x"}), "main.py": MAIN} | {f"m{i}.py": "" for i in range(MAX_FILES)}
    with pytest.raises(PackageError, match="more than"):
        load_package(folder(tmp_path, files))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("plugin.zip", b"not a zip", "cannot read the archive"), ("plugin.tgz", b"not gzip", "cannot read the archive"),
     ("plugin.rar", b"x", "a plugin archive is a .zip, .tar.gz or .tgz")],
)  # fmt: skip
def test_bad_archives(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PackageError, match=message):
        load_package(path)


def test_missing_path(tmp_path):
    with pytest.raises(PackageError, match="no such folder or archive"):
        load_package(tmp_path / "nowhere")


def test_nested_folders_in_archives_are_not_part_of_the_plugin(tmp_path):
    files = {"plugin.json": json.dumps({"name": "x"}), "main.py": MAIN, "sub/evil.py": "import os\n"}
    package = load_package(archive(tmp_path, "zip", files))
    assert set(package.sources) == {"plugin.json", "main.py"}


# --- folders: regular files only, nothing followed ----------------------------------------------


def symlink_to_outside(root, tmp_path, name):
    (tmp_path / "outside.py").write_text("SECRET = 'from outside the folder'\n")
    os.symlink(tmp_path / "outside.py", root / name)


def dangling_symlink(root, tmp_path, name):
    os.symlink(tmp_path / "nowhere.py", root / name)


def symlink_to_folder(root, tmp_path, name):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / name)


def fifo(root, tmp_path, name):
    os.mkfifo(root / name)


def unix_socket(root, tmp_path, name):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / name))
    listener.close()


@pytest.mark.parametrize(
    ("make", "name", "message"),
    [
        (symlink_to_outside, "helpers.py", "helpers.py: a symbolic link"),
        (symlink_to_outside, "plugin.json", "plugin.json: a symbolic link"),
        (symlink_to_outside, "README.md", "README.md: a symbolic link"),  # not a plugin file: still refused
        (dangling_symlink, "helpers.py", "helpers.py: a symbolic link"),
        (symlink_to_folder, "lib", "lib: a symbolic link"),
        (fifo, "helpers.py", "helpers.py: not a regular file"),
        (fifo, "notes.txt", "notes.txt: not a regular file"),
        (unix_socket, "s.py", "s.py: not a regular file"),
    ],
)
def test_a_folder_with_a_link_or_a_special_file_is_refused(tmp_path, make, name, message):
    root = folder(tmp_path, {n: c for n, c in GOOD.items() if n != name})
    make(root, tmp_path, name)
    with pytest.raises(PackageError, match=f"^{re.escape(message)} [(]a plugin folder holds regular files only[)]$"):
        load_package(root)


def test_a_folder_entry_named_with_a_control_character_is_refused_in_one_line(tmp_path):
    root = folder(tmp_path, GOOD)
    (root / "evil\n.py").touch()
    with pytest.raises(PackageError, match="^'evil\\\\n.py': a file name with a control character$"):
        load_package(root)


def test_a_file_swapped_for_a_link_after_the_listing_is_not_followed(tmp_path):
    root = folder(tmp_path, {})
    symlink_to_outside(root, tmp_path, "main.py")
    fifo(root, tmp_path, "pipe.py")
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(PackageError, match="main.py: cannot open"):
            package._read_regular(Path("main.py"), limit=MAX_FILE_BYTES, folder=descriptor)
        with pytest.raises(PackageError, match="pipe.py: not a regular file"):  # and no wait for a writer
            package._read_regular(Path("pipe.py"), limit=MAX_FILE_BYTES, folder=descriptor)
    finally:
        os.close(descriptor)


def test_subfolders_are_not_entered_and_the_folder_itself_may_be_a_link(tmp_path):
    root = folder(tmp_path, {"plugin.json": json.dumps({"name": "x"}), "main.py": MAIN, "sub/evil.py": "import os\n"})
    dangling_symlink(root / "sub", tmp_path, "link.py")
    os.symlink(root, tmp_path / "link-to-plugin")
    assert set(load_package(tmp_path / "link-to-plugin").sources) == {"plugin.json", "main.py"}


def test_a_folder_with_too_many_entries_is_refused_before_reading(tmp_path):
    root = folder(tmp_path, {"plugin.json": json.dumps({"name": "x"}), "main.py": MAIN})
    for i in range(MAX_MEMBERS):
        (root / f"note{i}.txt").touch()
    with pytest.raises(PackageError, match=f"more than {MAX_MEMBERS} entries"):
        load_package(root)


def test_an_archive_file_is_sized_before_it_is_read(tmp_path):
    path = tmp_path / "plugin.zip"
    with path.open("wb") as sparse:
        sparse.truncate(MAX_ARCHIVE_BYTES + 1)
    with pytest.raises(PackageError, match=f"archive larger than {MAX_ARCHIVE_BYTES} bytes"):
        load_package(path)


# --- archives: every header checked before any member is read ------------------------------------


def zip_of(tmp_path, members: list[tuple[str | zipfile.ZipInfo, bytes]]):
    path = tmp_path / "plugin.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": written twice on purpose
        for member, content in members:
            z.writestr(member, content)
    return path


def tar_of(tmp_path, members: list[tuple[tarfile.TarInfo, bytes]]):
    path = tmp_path / "plugin.tgz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for info, content in members:
            info.size = len(content) if info.isreg() else 0
            t.addfile(info, io.BytesIO(content))
    return path


def good_members(prefix="p/"):
    return [(prefix + name, content.encode()) for name, content in GOOD.items()]


def zip_info(name: str, *, mode: int = 0, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr, info.compress_type = mode << 16, method
    return info


def tar_info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def patch_zip(path, member: str, *, size: int | None = None, flags: int | None = None, local: bool = False) -> None:
    """Rewrite what `member`'s header in a zip's central directory (and its local header) says:
    its uncompressed size, its flags (zipfile writes neither as asked)."""
    data = bytearray(path.read_bytes())
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        length, local_at = struct.unpack_from("<H", data, at + 28)[0], struct.unpack_from("<I", data, at + 42)[0]
        if data[at + 46 : at + 46 + length] == member.encode():
            for field, central, local_field, fmt in ((size, 24, 22, "<I"), (flags, 8, 6, "<H")):
                if field is not None:
                    struct.pack_into(fmt, data, at + central, field)
                    if local:
                        struct.pack_into(fmt, data, local_at + local_field, field)
        at += 4
    path.write_bytes(bytes(data))


ZIP_REFUSED = [
    ([(zip_info("p/helpers.py", mode=stat.S_IFLNK | 0o777), b"/etc/passwd")], "p/helpers.py: a link"),
    ([(zip_info("p/README.md", mode=stat.S_IFLNK | 0o777), b"../../x")], "p/README.md: a link"),
    ([(zip_info("p/dev.py", mode=stat.S_IFCHR | 0o666), b"")], "p/dev.py: not a regular file"),
    ([(zip_info("p/fifo", mode=stat.S_IFIFO | 0o666), b"")], "p/fifo: not a regular file"),
    ([("/etc/main.py", b"")], "'/etc/main.py': an absolute or unsafe member name"),
    ([("p/../helpers.py", b"")], "'p/../helpers.py': a member name that climbs out with '..'"),
    ([("../../x.txt", b"")], "'../../x.txt': a member name that climbs out with '..'"),
    ([("p\\..\\helpers.py", b"")], "an absolute or unsafe member name"),
    ([("p/ma\nin.py", b"")], "'p/ma\\nin.py': an absolute or unsafe member name"),
    ([(zip_info("p/helpers.py", method=zipfile.ZIP_BZIP2), b"")], "compressed with method 12; use deflate"),
    ([(zip_info("p/helpers.py", method=zipfile.ZIP_LZMA), b"")], "compressed with method 14; use deflate"),
    ([("p/main.py", b"")], "p/main.py: main.py appears twice in the archive"),
    ([("p/big.py", b"#" * (MAX_FILE_BYTES + 1))], f"p/big.py: larger than {MAX_FILE_BYTES} bytes"),
    ([(f"p/m{i}.py", b"") for i in range(MAX_FILES)], f"the archive: more than {MAX_FILES} files"),
    ([(f"p/docs/{i}.txt", b"") for i in range(MAX_MEMBERS)], f"more than {MAX_MEMBERS} archive members"),
]


@pytest.mark.parametrize(("extra", "message"), ZIP_REFUSED, ids=[m for _, m in ZIP_REFUSED])
def test_a_zip_is_refused_from_its_headers(tmp_path, monkeypatch, extra, message):
    path = zip_of(tmp_path, good_members() + extra)
    monkeypatch.setattr(zipfile.ZipFile, "open", unread)
    with pytest.raises(PackageError, match=re.escape(message)):
        load_package(path)


TAR_REFUSED = [
    ([(tar_info("p/helpers.py", tarfile.SYMTYPE, "/etc/passwd"), b"")], "p/helpers.py: a link"),
    ([(tar_info("p/docs", tarfile.SYMTYPE, "../../.."), b"")], "p/docs: a link"),
    ([(tar_info("p/helpers.py", tarfile.LNKTYPE, "p/main.py"), b"")], "p/helpers.py: a link"),
    ([(tar_info("p/tty.py", tarfile.CHRTYPE), b"")], "p/tty.py: not a regular file"),
    ([(tar_info("p/disk", tarfile.BLKTYPE), b"")], "p/disk: not a regular file"),
    ([(tar_info("p/pipe.py", tarfile.FIFOTYPE), b"")], "p/pipe.py: not a regular file"),
    ([(tar_info("/etc/main.py"), b"")], "'/etc/main.py': an absolute or unsafe member name"),
    ([(tar_info("p/../../helpers.py"), b"")], "a member name that climbs out with '..'"),
    ([(tar_info("p/main.py"), b"")], "p/main.py: main.py appears twice in the archive"),
    ([(tar_info("p/big.py"), b"#" * (MAX_FILE_BYTES + 1))], f"p/big.py: larger than {MAX_FILE_BYTES} bytes"),
    ([(tar_info(f"p/m{i}.py"), b"") for i in range(MAX_FILES)], f"the archive: more than {MAX_FILES} files"),
    ([(tar_info(f"p/docs/{i}.txt"), b"") for i in range(MAX_MEMBERS)], f"more than {MAX_MEMBERS} archive members"),
]


@pytest.mark.parametrize(("extra", "message"), TAR_REFUSED, ids=[m for _, m in TAR_REFUSED])
def test_a_tar_is_refused_from_its_headers(tmp_path, monkeypatch, extra, message):
    good = [(tar_info(name), content) for name, content in good_members()]
    path = tar_of(tmp_path, good + extra)
    monkeypatch.setattr(tarfile.TarFile, "extractfile", unread)
    with pytest.raises(PackageError, match=re.escape(message)):
        load_package(path)


def unread(*args, **kwargs):
    raise AssertionError("a member was read before every header was checked")


@pytest.mark.parametrize(
    ("member", "size", "message"),
    [
        ("p/main.py", 10**9, f"p/main.py: larger than {MAX_FILE_BYTES} bytes"),
        ("p/main.py", 0xFFFFFFFF, f"p/main.py: larger than {MAX_FILE_BYTES} bytes"),
        ("p/logo.png", MAX_UNPACKED_BYTES + 1, f"members larger than {MAX_UNPACKED_BYTES} bytes in total"),
    ],
)
def test_a_zip_bomb_by_header_is_refused_before_anything_is_inflated(tmp_path, monkeypatch, member, size, message):
    path = zip_of(tmp_path, [*good_members(), ("p/logo.png", b"png")])
    patch_zip(path, member, size=size)
    monkeypatch.setattr(zipfile.ZipFile, "open", unread)
    with pytest.raises(PackageError, match=re.escape(message)):
        load_package(path)


def test_an_encrypted_zip_member_is_refused_from_its_header(tmp_path, monkeypatch):
    path = zip_of(tmp_path, good_members())
    patch_zip(path, "p/main.py", flags=0x1, local=True)
    monkeypatch.setattr(zipfile.ZipFile, "open", unread)
    with pytest.raises(PackageError, match="p/main.py: encrypted"):
        load_package(path)


def test_a_zip_member_that_inflates_past_its_header_is_cut_there(tmp_path):
    """A header that lies low: the member is read only up to its declared size, in bounded
    steps, so 50 MB of zeros behind a 49-byte header costs kilobytes, not 50 MB."""
    path = zip_of(
        tmp_path, [("p/plugin.json", GOOD["plugin.json"].encode()), ("p/main.py", MAIN.encode() + bytes(50_000_000))]
    )
    patch_zip(path, "p/main.py", size=len(MAIN), local=True)
    tracemalloc.start()
    try:
        with pytest.raises(PackageError, match="cannot read the archive: Bad CRC-32"):
            load_package(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize("kind", ["pax header", "member"])
def test_a_tar_bomb_is_refused_by_what_it_inflates_to(tmp_path, kind):
    """tarfile reads a pax header's contents into memory before handing out its member: inflating
    is bounded first, so a 60 kB archive cannot become gigabytes."""
    info = tar_info("p/bomb.txt")
    if kind == "pax header":
        info.pax_headers = {"comment": "x" * (MAX_TAR_BYTES + 1)}
    content = b"" if kind == "pax header" else bytes(MAX_TAR_BYTES + 1)
    path = tar_of(tmp_path, [(tar_info(name), data) for name, data in good_members()] + [(info, content)])
    assert path.stat().st_size < 200_000
    with pytest.raises(PackageError, match=f"inflates to more than {MAX_TAR_BYTES} bytes"):
        load_package(path)


def test_a_truncated_tgz_is_refused(tmp_path):
    path = tar_of(tmp_path, [(tar_info(name), data) for name, data in good_members()])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(PackageError, match="cannot read the archive: truncated"):
        load_package(path)


def test_tars_as_tools_write_them_load(tmp_path):
    """`tar czf` of a folder's contents ("./" names and a "." entry), GitHub's pax global header,
    and a gzip stream of two members (and zero padding) are all plugins."""
    dot = tar_of(
        tmp_path, [(tar_info(".", tarfile.DIRTYPE), b"")] + [(tar_info("./" + n), c.encode()) for n, c in GOOD.items()]
    )
    assert set(load_package(dot).sources) == {"plugin.json", "main.py"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "a" * 40}) as t:
        t.addfile(tar_info("repo-abc123/", tarfile.DIRTYPE))
        for name, content in good_members("repo-abc123/"):
            info = tar_info(name)
            info.size = len(content)
            t.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    split = gzip.compress(raw[:1024]) + gzip.compress(raw[1024:]) + bytes(16)
    (tmp_path / "github.tar.gz").write_bytes(split)
    assert set(load_package(tmp_path / "github.tar.gz").sources) == {"plugin.json", "main.py"}


def test_zips_with_folder_entries_and_dos_modes_load(tmp_path):
    path = zip_of(tmp_path, [(zip_info("p/", mode=stat.S_IFDIR | 0o755), b""), *good_members(), ("p/docs/x.md", b"")])
    assert set(load_package(path).sources) == {"plugin.json", "main.py"}


# --- plugin.json: bounded before it is parsed ---------------------------------------------------


def nested(depth: int) -> str:
    return '{"name": "x", "config": [], "extra": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (nested(MAX_MANIFEST_DEPTH + 1), f"plugin.json: nested deeper than {MAX_MANIFEST_DEPTH} levels"),
        ('{"name": "x", "config": ' + "[" * 40_000 + "]" * 40_000 + "}", "nested deeper than"),  # was a RecursionError
        ('{"name": "x", "c": ' + '{"a": ' * 12_000 + "1" + "}" * 12_000 + "}", "nested deeper than"),
        ("[" * 40_000, "nested deeper than"),  # malformed too: depth is counted first
        ('{"name": "x"}' + " " * MAX_MANIFEST_BYTES, f"plugin.json: larger than {MAX_MANIFEST_BYTES} bytes"),
        ('{"name": "' + "é" * (MAX_MANIFEST_BYTES // 2) + '"}', "larger than"),  # bytes, not characters
    ],
    ids=["one too deep", "deep arrays", "deep objects", "deep and malformed", "too large", "too large in bytes"],
)
def test_plugin_json_is_bounded_with_a_one_line_error(tmp_path, manifest, message):
    with pytest.raises(PackageError, match=re.escape(message)) as refused:
        load_package(folder(tmp_path, {"plugin.json": manifest, "main.py": MAIN}))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "manifest",
    [
        nested(MAX_MANIFEST_DEPTH),
        '{"name": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "url": "\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}',
    ],
    ids=["as deep as allowed", "brackets in strings"],
)
def test_plugin_json_at_the_limits_loads(tmp_path, manifest):
    assert load_package(folder(tmp_path, {"plugin.json": manifest, "main.py": MAIN})).main == "main.py"


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar inside"])
def test_a_corrupted_archive_loads_or_is_refused_in_one_line(tmp_path, kind):
    """Random bytes changed in a good archive (seeded): zipfile, tarfile and zlib raise a dozen
    kinds of errors on such input, and each must come out as one PackageError line."""
    members = [*good_members(), ("p/util.py", b"y = 1\n" * 50)]
    if kind == "zip":
        good = zip_of(tmp_path, members).read_bytes()
    else:
        good = tar_of(tmp_path, [(tar_info(name), content) for name, content in members]).read_bytes()
        good = gzip.decompress(good) if kind == "tar inside" else good
    rng = random.Random(13)
    path = tmp_path / ("fuzzed.zip" if kind == "zip" else "fuzzed.tgz")
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(gzip.compress(bytes(data)) if kind == "tar inside" else bytes(data))
        try:
            load_package(path)
        except PackageError as refused:
            assert "\n" not in str(refused)
