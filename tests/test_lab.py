"""``labkit lab``: working copies outside the tracked files, edits never lost, a real JupyterLab."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labkit.cli.lab import (
    LAB_DIR,
    WIDGETS_PLUGIN,
    CopyStatus,
    cells_fingerprint,
    jupyter_lab_argv,
    kernel_metadata,
    lesson_named,
    lesson_to_open,
    prepare_working_copies,
    write_jupyterlab_settings,
)
from labkit.cli.lessons import LESSONS_DIR, REPO_DIR, lessons, notebook_text

SERVER_START_S = 90.0
SERVER_STOP_S = 30.0


def actions(statuses: list[CopyStatus]) -> dict[str, str]:
    return {status.lesson: status.action for status in statuses}


def edit_first_code_cell(path: Path, new_source: str) -> None:
    notebook = json.loads(path.read_text())
    cell = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    cell["source"] = new_source
    path.write_text(json.dumps(notebook, indent=1))


def add_an_output(path: Path) -> None:
    """What running a cell and saving does: outputs and a count, the cells' sources unchanged."""
    notebook = json.loads(path.read_text())
    cell = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    cell["execution_count"] = 1
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    path.write_text(json.dumps(notebook, indent=1))


@pytest.fixture
def lesson_sources(tmp_path: Path) -> Path:
    copy = tmp_path / "lessons"
    shutil.copytree(LESSONS_DIR, copy)
    return copy


def test_first_run_writes_every_lesson_as_its_notebook(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    statuses = prepare_working_copies(lab)
    assert set(actions(statuses).values()) == {"created"}
    for lesson in lessons():
        copy = (lab / lesson.notebook_file).read_text()
        assert copy == notebook_text(lesson, kernel_metadata())
        assert cells_fingerprint(copy) == cells_fingerprint(notebook_text(lesson))
    assert set(actions(prepare_working_copies(lab)).values()) == {"current"}


def test_an_edited_copy_is_kept_and_said_so(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    prepare_working_copies(lab)
    edited = lab / "00_traces.ipynb"
    edit_first_code_cell(edited, "print('my own experiment')")
    before = edited.read_bytes()
    statuses = prepare_working_copies(lab)
    status = next(status for status in statuses if status.lesson == "00_traces")
    assert status.action == "kept"
    assert "--refresh 00_traces" in str(status)
    assert edited.read_bytes() == before


def test_a_copy_that_was_only_run_keeps_its_outputs(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    prepare_working_copies(lab)
    ran = lab / "03_explorer.ipynb"
    add_an_output(ran)
    before = ran.read_bytes()
    assert actions(prepare_working_copies(lab))["03_explorer"] == "current"
    assert ran.read_bytes() == before


def test_a_changed_lesson_updates_an_unedited_copy_but_never_an_edited_one(
    tmp_path: Path, lesson_sources: Path
) -> None:
    lab = tmp_path / "lab"
    prepare_working_copies(lab, lessons_dir=lesson_sources)
    add_an_output(lab / "00_traces.ipynb")
    ran = (lab / "00_traces.ipynb").read_bytes()
    edit_first_code_cell(lab / "01_why_tiny_packets_jitter.ipynb", "x = 1")
    edited = (lab / "01_why_tiny_packets_jitter.ipynb").read_bytes()
    for name in ("00_traces", "01_why_tiny_packets_jitter"):
        source = lesson_sources / f"{name}.py"
        source.write_text(source.read_text() + "\n# %%\nassert True\n")

    statuses = actions(prepare_working_copies(lab, lessons_dir=lesson_sources))

    assert statuses["00_traces"] == "updated"
    assert "assert True" in (lab / "00_traces.ipynb").read_text()
    assert (lab / ".labkit" / "replaced" / "00_traces-1.ipynb").read_bytes() == ran
    assert statuses["01_why_tiny_packets_jitter"] == "kept"
    assert (lab / "01_why_tiny_packets_jitter.ipynb").read_bytes() == edited


def test_refresh_replaces_the_named_copies_and_sets_the_old_ones_aside(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    prepare_working_copies(lab)
    for name in ("00_traces", "02_threshold_sweep"):
        edit_first_code_cell(lab / f"{name}.ipynb", f"# my {name}")
    statuses = actions(prepare_working_copies(lab, refresh=["0"]))  # by number, as `labkit lab 0`
    assert statuses["00_traces"] == "refreshed"
    assert statuses["02_threshold_sweep"] == "kept"
    assert (lab / "00_traces.ipynb").read_text() == notebook_text(lessons()[0], kernel_metadata())
    assert "# my 00_traces" in (lab / ".labkit" / "replaced" / "00_traces-1.ipynb").read_text()

    statuses = actions(prepare_working_copies(lab, refresh=[]))
    assert set(statuses.values()) == {"refreshed"}
    assert "# my 02_threshold_sweep" in (
        lab / ".labkit" / "replaced" / "02_threshold_sweep-1.ipynb"
    ).read_text()
    assert not (lab / ".labkit" / "replaced" / "00_traces-2.ipynb").exists(), "nothing to keep"


def test_refresh_of_an_unknown_lesson_and_an_unreadable_copy_are_named(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    with pytest.raises(ValueError, match=r"^--refresh: no lesson '07_nope' \(lessons: 00_traces"):
        prepare_working_copies(lab, refresh=["07_nope"])
    assert not lab.exists()  # refused before anything is written
    prepare_working_copies(lab)
    (lab / "04_live_call.ipynb").write_text("{ not json")
    status = next(s for s in prepare_working_copies(lab) if s.lesson == "04_live_call")
    assert status.action == "kept" and "not a readable notebook" in status.detail
    assert (lab / "04_live_call.ipynb").read_text() == "{ not json"


@pytest.mark.parametrize("state", ["{ not json", "[1, 2]", '{"00_traces": 5}', "\udcff"])
def test_an_unreadable_state_file_is_named_and_no_edit_is_lost(tmp_path: Path, state: str) -> None:
    lab = tmp_path / "lab"
    prepare_working_copies(lab)
    edit_first_code_cell(lab / "02_threshold_sweep.ipynb", "# mine")
    edited = (lab / "02_threshold_sweep.ipynb").read_bytes()
    built = lab / ".labkit" / "built.json"
    built.write_text(state, encoding="utf-8", errors="surrogateescape")
    said: list[str] = []
    statuses = actions(prepare_working_copies(lab, warn=said.append))
    assert len(said) == 1 and said[0].startswith(f"{built} is unreadable (")
    assert statuses["02_threshold_sweep"] == "kept"
    assert (lab / "02_threshold_sweep.ipynb").read_bytes() == edited
    assert set(statuses.values()) == {"current", "kept"}
    assert json.loads(built.read_text())["00_traces"]  # written anew
    said.clear()
    prepare_working_copies(lab, warn=said.append)
    assert said == []


def test_a_copy_that_is_no_file_of_text_is_kept_and_never_written_through(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    prepare_working_copies(lab)
    (lab / "01_why_tiny_packets_jitter.ipynb").unlink()
    (lab / "01_why_tiny_packets_jitter.ipynb").mkdir()
    (lab / "02_threshold_sweep.ipynb").write_bytes(b"\xff\xfe not text")
    (lab / "05_barge_in_and_marks.ipynb").unlink()
    outside = tmp_path / "outside.ipynb"
    (lab / "05_barge_in_and_marks.ipynb").symlink_to(outside)  # dangling
    statuses = {s.lesson: s for s in prepare_working_copies(lab)}
    for name in ("01_why_tiny_packets_jitter", "02_threshold_sweep", "05_barge_in_and_marks"):
        assert statuses[name].action == "kept"
        assert "not a readable notebook" in statuses[name].detail
        assert f"--refresh {name}" in statuses[name].detail
    assert statuses["00_traces"].action == "current"
    assert not outside.exists()
    refreshed = actions(prepare_working_copies(lab, refresh=["01_why_tiny_packets_jitter"]))
    assert refreshed["01_why_tiny_packets_jitter"] == "refreshed"
    assert (lab / ".labkit" / "replaced" / "01_why_tiny_packets_jitter-1.ipynb").is_dir()
    assert (lab / "01_why_tiny_packets_jitter.ipynb").is_file()


def test_a_lab_directory_that_is_a_file_is_refused_by_name(tmp_path: Path) -> None:
    a_file = tmp_path / "lab"
    a_file.write_text("mine")
    command = [sys.executable, "-m", "labkit", "lab", "--dir", str(a_file), "--prepare-only"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    said = done.stderr.splitlines()[-1]
    assert said == f"labkit lab: error: argument --dir: {a_file} is not a directory"
    assert a_file.read_text() == "mine"


def test_the_lab_directory_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO_DIR / ".git").exists():
        pytest.skip("not a git checkout")
    assert LAB_DIR == REPO_DIR / "lab"
    paths = ["lab/00_traces.ipynb", "lab/.labkit/built.json", "lab/.ipynb_checkpoints/x.ipynb"]
    result = subprocess.run(
        ["git", "check-ignore", *paths], cwd=REPO_DIR, capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == paths


def test_settings_make_widget_state_saved_and_keep_jupyterlabs_own(tmp_path: Path) -> None:
    own = tmp_path / "app-settings"
    own.mkdir()
    (own / "page_config.json").write_text('{"disabledExtensions": {"x": true}}')
    settings = write_jupyterlab_settings(tmp_path / "lab", app_settings_dir=own)
    assert json.loads((settings / "overrides.d" / "labkit.json").read_text()) == {
        WIDGETS_PLUGIN: {"saveState": True},
        "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True},
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                        "checkForUpdates": False},
    }
    assert (settings / "page_config.json").read_text() == (own / "page_config.json").read_text()


@pytest.mark.parametrize("what", ["a file", "a link"])
def test_the_settings_directory_is_rebuilt_when_it_is_not_one(tmp_path: Path, what: str) -> None:
    """``lab/.labkit/.jupyterlab-settings`` as a file ended ``labkit lab`` in NotADirectoryError;
    as a link, in "Cannot call rmtree on a symbolic link". Ours, rebuilt on every start: the file
    or link goes (never what a link points to)."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.json").write_text("{}")
    settings = tmp_path / "lab" / ".labkit" / ".jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    if what == "a file":
        settings.write_text("not a directory")
    else:
        settings.symlink_to(target)
    made = write_jupyterlab_settings(tmp_path / "lab", app_settings_dir=tmp_path / "none")
    assert made == settings and not made.is_symlink() and (made / "overrides.d").is_dir()
    assert (target / "keep.json").read_text() == "{}"


def test_the_command_line_passes_host_port_browser_and_root_through(tmp_path: Path) -> None:
    argv = jupyter_lab_argv(tmp_path, tmp_path / "s", "127.0.0.1", 9999, False, as_root=True)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    assert {"--ServerApp.ip=127.0.0.1", "--ServerApp.port=9999"} <= set(argv)
    assert "--ServerApp.open_browser=False" in argv and "--allow-root" in argv
    argv = jupyter_lab_argv(tmp_path, tmp_path / "s", "127.0.0.1", 9999, True, as_root=False)
    assert "--ServerApp.open_browser=True" in argv and "--allow-root" not in argv


def test_a_lesson_is_named_by_its_name_or_its_number() -> None:
    found = lessons()
    explorer = next(lesson for lesson in found if lesson.name == "03_explorer")
    for wanted in ("03_explorer", "03_explorer.ipynb", "03", "3"):
        assert lesson_named(found, wanted) == explorer
    for wanted in ("explorer", "99", "03_explorer.py", "", "-3"):
        with pytest.raises(ValueError, match=r"no lesson .*\(lessons: 00_traces, 01_"):
            lesson_named(found, wanted)


def test_a_new_lab_opens_on_the_first_lesson_and_a_used_one_where_it_was(tmp_path: Path) -> None:
    found = lessons()
    first = prepare_working_copies(tmp_path / "lab")
    assert lesson_to_open(found, None, first) == found[0]
    again = prepare_working_copies(tmp_path / "lab")
    assert lesson_to_open(found, None, again) is None  # JupyterLab restores the tabs left open
    assert lesson_to_open(found, found[4], again) == found[4]
    (tmp_path / "lab" / found[0].notebook_file).unlink()
    one_created = prepare_working_copies(tmp_path / "lab")
    assert lesson_to_open(found, None, one_created) is None  # not a new lab


def test_the_lesson_opened_is_the_address_the_browser_opens(tmp_path: Path) -> None:
    found = lessons()
    argv = jupyter_lab_argv(tmp_path, tmp_path / "s", "127.0.0.1", 9999, True, False, found[3])
    assert f"--LabApp.default_url=/lab/tree/{found[3].notebook_file}" in argv
    argv = jupyter_lab_argv(tmp_path, tmp_path / "s", "127.0.0.1", 9999, True, False, None)
    assert not any(arg.startswith("--LabApp.default_url") for arg in argv)


def test_an_unknown_lesson_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    command = [sys.executable, "-m", "labkit", "lab", "nope", "--dir", str(lab), "--prepare-only"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("labkit lab: no lesson 'nope' (lessons: 00_traces, ")
    assert "Traceback" not in done.stderr and not lab.exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_labkit_lab_serves_the_working_copies_with_widget_state_saved(tmp_path: Path) -> None:
    token = "labkit-test-token"
    env = dict(os.environ, JUPYTER_TOKEN=token)
    for variable, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                           ("JUPYTERLAB_SETTINGS_DIR", "user-settings"),
                           ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:
        env[variable] = str(tmp_path / name)
    lab, log = tmp_path / "lab", tmp_path / "server.log"
    command = [sys.executable, "-m", "labkit", "lab", "--dir", str(lab), "--no-browser",
               "--host", "127.0.0.1", "--port", str(free_port())]
    with log.open("w") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        base = wait_for_server(server, log)
        contents = get_json(f"{base}/api/contents?token={token}")
        assert isinstance(contents, dict)
        served = sorted(item["name"] for item in contents["content"])
        assert served == sorted(lesson.notebook_file for lesson in lessons())
        settings = get_json(f"{base}/lab/api/settings/{WIDGETS_PLUGIN}?token={token}")
        assert isinstance(settings, dict)
        assert settings["schema"]["properties"]["saveState"]["default"] is True
        # a new lab: "/" and the printed address open the first lesson
        with urllib.request.urlopen(f"{base}/?token={token}", timeout=5) as response:
            assert response.url.startswith(f"{base}/lab/tree/00_traces.ipynb")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=SERVER_STOP_S)
    assert "created  00_traces.ipynb" in log.read_text()
    assert "opening 00_traces.ipynb" in log.read_text()
    assert re.search(r"http://127\.0\.0\.1:\d+/lab/tree/00_traces\.ipynb\?token=", log.read_text())


def wait_for_server(server: subprocess.Popen[bytes], log: Path) -> str:
    """The server's base URL once it answers /api/status (it may move to another free port)."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"labkit lab exited: {log.read_text()[-2000:]}"
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            base = f"http://127.0.0.1:{found.group(1)}"
            try:
                get_json(f"{base}/api/status?token=labkit-test-token")
                return base
            except OSError:
                pass
        time.sleep(0.25)
    raise AssertionError(f"no answer within {SERVER_START_S} s: {log.read_text()[-2000:]}")
