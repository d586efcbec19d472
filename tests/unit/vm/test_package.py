"""Plugin folders and archives: what load_package accepts and how it refuses the rest."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from vm.package import MAX_FILES, PackageError, load_package

MAIN = "def process_event(event, meta):\n    return event\n"
MANIFEST = {"name": "hello", "description": "says hi", "url": "https://example.com", "main": "main.py",
            "config": [{"key": "greeting", "required": True}]}  # fmt: skip


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
    with pytest.raises(PackageError, match=__import__("re").escape(message)):
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
