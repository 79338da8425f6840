"""The sweep journal keeps a directory safe: one sweep writes it at a time, a row missing fields
is no finished run, a refused file is left as it was, no write goes through a planted link, and
rows computed by other simulation code are never resumed into."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labkit.cli import main
from labkit.sim import sweep_journal
from labkit.sim.sweep_journal import (
    LOCK_FILE,
    MANIFEST_FILE,
    SweepJournal,
    code_digest,
    library_versions,
    read_runs,
    source_digest,
    sweep_manifest,
)
from labkit.sim.sweep_runs import Row, SweepGrid
from labkit.sim.sweep_traces import trace_sources

SMALL = ["tiny_deltas", "--strategy", "forward,preroll", "--thresholds", "20:60:40", "--seeds", "2"]
RUNS = 8  # 2 strategies x 2 thresholds x 2 seeds: file lines 2..9


def _sweep(out: Path, *extra: str) -> int:
    return main(["sweep", *SMALL, *extra, "--out", str(out)])


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


def _manifest() -> dict[str, Any]:
    """The manifest ``_sweep`` writes."""
    grid = SweepGrid.of(["forward", "preroll"], [20, 60], ["tcp"], 2, ["fifo"])
    return sweep_manifest(trace_sources(["tiny_deltas"]), grid)


def _rows(tmp_path: Path) -> list[Row]:
    """The rows of a finished ``_sweep``, made elsewhere."""
    assert _sweep(tmp_path / "rows") == 0
    return [{str(key): value for key, value in row.items()}
            for row in read_runs(tmp_path / "rows" / "sweep.csv").to_dict("records")]  # fmt: skip


def _half_done(out: Path) -> Path:
    """A finished ``_sweep`` with its summary gone, as if it had been interrupted at the end."""
    assert _sweep(out) == 0
    (out / "summary.csv").unlink()
    return out / "sweep.csv"


def _edit_cell(csv: Path, line: int, column: str, value: str) -> None:
    lines = csv.read_text().splitlines(keepends=True)
    cells = lines[line - 1].rstrip("\n").split(",")
    cells[lines[0].rstrip("\n").split(",").index(column)] = value
    lines[line - 1] = ",".join(cells) + "\n"
    csv.write_text("".join(lines))


def _one_line(err: str) -> str:
    """The one line of a refusal in ``err`` (after any line saying what is resumed)."""
    lines = [line for line in err.splitlines()
             if line.startswith("labkit sweep: ") and ": resuming " not in line]  # fmt: skip
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# 1. one sweep writes a directory at a time


def test_a_sweep_into_a_directory_another_journal_holds_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _half_done(tmp_path)
    holder = SweepJournal.open(tmp_path, _manifest())  # flock: per open file, so this conflicts
    assert len(holder.done) == RUNS
    _refused_untouched(tmp_path, capsys, f"labkit sweep: {tmp_path}: another sweep is writing "
                       f"here (pid {os.getpid()}); wait for it or choose another --out")
    holder.close()
    assert _sweep(tmp_path) == 0


def test_a_sweep_holding_the_lock_in_another_process_is_named_by_its_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _half_done(tmp_path)
    before = _files(tmp_path)
    hold = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); "
        "os.write(fd, b'%d\\n' % os.getpid()); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / LOCK_FILE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        capsys.readouterr()
        assert _sweep(tmp_path) == 2
        said = _one_line(capsys.readouterr().err)
        assert f"{tmp_path}: another sweep is writing here (pid {holder.pid}); " in said
        assert {name: data for name, data in _files(tmp_path).items() if name != LOCK_FILE} == {
            name: data for name, data in before.items() if name != LOCK_FILE}  # fmt: skip
    finally:
        holder.communicate("", timeout=30)
    assert _sweep(tmp_path) == 0  # the lock went with its process


def test_two_sweeps_started_on_one_new_directory_never_mix_rows(tmp_path: Path) -> None:
    rows, out = _rows(tmp_path), tmp_path / "out"
    first, second = SweepJournal.open(out, _manifest()), SweepJournal.open(out, _manifest())
    assert not out.exists()  # nothing is made before rows come
    first.append(rows[:4])
    kept = (out / "sweep.csv").read_bytes()
    with pytest.raises(ValueError, match=r": another sweep is writing here \(pid \d+\); wait"):
        second.append(rows[4:])
    first.close()
    since = "another sweep wrote sweep-manifest.json, sweep.csv here since this one started"
    with pytest.raises(ValueError, match=since):
        second.append(rows[4:])  # rows it computed before the first wrote: maybe the same runs
    assert (out / "sweep.csv").read_bytes() == kept and kept.count(b"trace,") == 1
    assert len(read_runs(out / "sweep.csv")) == 4
    assert _sweep(out) == 0  # resumes what the first wrote
    assert len(read_runs(out / "sweep.csv")) == RUNS


def test_a_manifest_another_sweep_wrote_is_never_taken_for_this_ones(tmp_path: Path) -> None:
    rows, out = _rows(tmp_path), tmp_path / "out"
    journal = SweepJournal.open(out, _manifest())
    assert main(["sweep", *SMALL, "--seeds", "3", "--out", str(out)]) == 0  # meanwhile
    before = _files(out)
    with pytest.raises(ValueError, match=r"made with other arguments \(seeds: \[0, 1, 2\] there"):
        journal.append(rows)
    assert _files(out) == before


def test_writing_the_manifest_checks_one_found_there(tmp_path: Path) -> None:
    journal = SweepJournal.open(tmp_path, _manifest())
    other = {**_manifest(), "seeds": [0, 1, 2]}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(other))
    with pytest.raises(ValueError, match="made with other arguments"):
        journal._write_manifest()
    assert json.loads((tmp_path / MANIFEST_FILE).read_text()) == other


def test_a_refused_directory_keeps_no_lock_file_it_did_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sweep(tmp_path) == 0
    (tmp_path / LOCK_FILE).unlink()  # as an older labkit left it
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest, "seeds": [7]}))
    before = _files(tmp_path)
    assert _sweep(tmp_path) == 2
    assert "made with other arguments" in capsys.readouterr().err
    assert _files(tmp_path) == before


# 2. a row missing fields is no finished run


@pytest.mark.parametrize("fields", [6, 8, 42])
def test_a_row_without_the_headers_fields_is_refused_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: int
) -> None:
    csv = _half_done(tmp_path)
    lines = csv.read_text().splitlines(keepends=True)
    header = lines[0].count(",") + 1
    cells = lines[3].rstrip("\n").split(",")
    lines[3] = ",".join([*cells, "1"][:fields]) + "\n"  # 42: one field too many
    csv.write_text("".join(lines))
    _refused_untouched(tmp_path, capsys, f"labkit sweep: {csv}, line 4: {fields} fields where "
                       f"the header has {header}; not a whole row")


# 3. a refused file is left as it was; a cut last line is dropped only from an accepted one


def test_a_refused_file_keeps_its_unterminated_last_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _half_done(tmp_path)
    _edit_cell(csv, 5, "messages", "abc")
    csv.write_bytes(csv.read_bytes().rstrip(b"\n"))
    before = _files(tmp_path)
    capsys.readouterr()
    assert _sweep(tmp_path) == 2
    said = _one_line(capsys.readouterr().err)
    assert said == f'labkit sweep: {csv}, line 5: messages "abc" is not a number'
    assert _files(tmp_path) == before


def test_a_cut_last_line_of_an_accepted_file_is_dropped_said_and_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _half_done(tmp_path)
    whole = csv.read_bytes()
    csv.write_bytes(whole[:-9])  # the last row cut in its middle
    capsys.readouterr()
    assert _sweep(tmp_path) == 0
    err = capsys.readouterr().err
    assert f"labkit sweep: {csv}: dropped a last line cut short (" in err
    assert f"resuming {csv}: {RUNS - 1} of {RUNS} runs are there" in err
    assert csv.read_bytes() == whole


def test_reread_drops_a_cut_line_only_after_the_rest_is_accepted(tmp_path: Path) -> None:
    csv = _half_done(tmp_path)
    journal = SweepJournal.open(tmp_path, _manifest())
    _edit_cell(csv, 3, "seed", "9")
    csv.write_bytes(csv.read_bytes() + b"tiny_deltas,forward,2")
    before = csv.read_bytes()
    with pytest.raises(ValueError, match="line 3: seed"):
        journal.reread()
    assert csv.read_bytes() == before and journal.notes == []


# 4. the sorted sweep.csv goes through a file of its own


def test_finishing_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    csv = _half_done(out)
    whole = csv.read_bytes()
    victim.write_text("precious\n")
    (out / "sweep.csv.sorting").symlink_to(victim)
    assert _sweep(out) == 0
    assert victim.read_text() == "precious\n"
    assert not csv.is_symlink() and csv.read_bytes() == whole
    assert (out / "sweep.csv.sorting").readlink() == victim
    assert not list(out.glob(".sweep.csv.*"))  # no temporary file left


def test_a_failed_rewrite_leaves_the_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _half_done(tmp_path)
    csv.chmod(0o640)
    before = _files(tmp_path)
    real_replace = os.replace

    def full_disk(source: Any, target: Any) -> None:
        if Path(target) == csv:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(sweep_journal.os, "replace", full_disk)
    capsys.readouterr()
    assert _sweep(tmp_path) == 2
    assert _files(tmp_path) == before  # no temporary file left either
    assert _one_line(capsys.readouterr().err).endswith(
        f"labkit sweep: {csv}: could not write it (No space left on device); left as it was"
    )
    monkeypatch.undo()
    assert _sweep(tmp_path) == 0
    assert csv.stat().st_mode & 0o777 == 0o640  # the rewrite keeps the file's mode


# 8. rows computed by other simulation code are never resumed into


def test_the_manifest_records_the_labkit_that_computed_the_rows(tmp_path: Path) -> None:
    assert _sweep(tmp_path) == 0
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["labkit_version"] == importlib.metadata.version("labkit")
    assert manifest["code_sha256"] == code_digest() and len(code_digest()) == 64


def test_a_resume_after_the_simulation_changed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _half_done(tmp_path)
    before = _files(tmp_path)
    monkeypatch.setattr(sweep_journal, "code_digest", lambda: "f00d" * 16)  # labkit edited since
    capsys.readouterr()
    assert _sweep(tmp_path) == 2
    said = _one_line(capsys.readouterr().err)
    assert said.startswith(
        f"labkit sweep: {tmp_path / MANIFEST_FILE}: the rows there were "
        f"computed by other labkit code ({code_digest()[:12]}, labkit "
    )
    assert "than this is (f00df00df00d (labkit " in said
    assert said.endswith("choose a new --out, or delete sweep.csv, summary.csv, fleet.csv there "
                         "to compute every run again")  # fmt: skip
    assert _files(tmp_path) == before


def test_a_resume_after_numpy_changed_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same labkit source on another numpy: its random streams may differ, so would rows."""
    _half_done(tmp_path)
    before = _files(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["libraries"] == library_versions()
    numpy_was = manifest["libraries"]["numpy"]
    upgraded = {**library_versions(), "numpy": "99.0.0"}
    monkeypatch.setattr(sweep_journal, "library_versions", lambda: upgraded)
    sweep_journal.code_digest.cache_clear()
    try:
        capsys.readouterr()
        assert _sweep(tmp_path) == 2
    finally:
        monkeypatch.undo()
        sweep_journal.code_digest.cache_clear()
    said = _one_line(capsys.readouterr().err)
    assert "the rows there were computed by other labkit code" in said
    assert f", with numpy {numpy_was} there and 99.0.0 here; resuming would mix" in said
    assert _files(tmp_path) == before


def test_a_resume_of_rows_of_unrecorded_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _half_done(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    del manifest["labkit_version"], manifest["code_sha256"]  # as labkit wrote it before
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    before = _files(tmp_path)
    assert _sweep(tmp_path) == 2
    said = _one_line(capsys.readouterr().err)
    assert said.startswith(f"labkit sweep: {tmp_path / MANIFEST_FILE}: written by a labkit that "
                           f"did not record its code")  # fmt: skip
    assert f"(this is code {code_digest()[:12]} " in said and "choose a new --out" in said
    assert _files(tmp_path) == before


def test_the_same_code_under_another_version_resumes(tmp_path: Path) -> None:
    _half_done(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**manifest, "labkit_version": "0.0.1"}))
    assert _sweep(tmp_path) == 0


def test_the_code_hash_covers_every_python_file_of_the_simulation(tmp_path: Path) -> None:
    parts = ("sim", "marks.py")
    for name, text in {"sim/a.py": "A = 1\n", "sim/deep/b.py": "B = 2\n", "marks.py": "M\n",
                       "cli/c.py": "C\n", "sim/data.json": "{}"}.items():  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    digest = source_digest(tmp_path, parts)
    assert source_digest(tmp_path, tuple(reversed(parts))) == digest
    (tmp_path / "cli/c.py").write_text("C = 3\n")  # not the simulation
    (tmp_path / "sim/data.json").write_text("[]")
    assert source_digest(tmp_path, parts) == digest
    (tmp_path / "sim/deep/b.py").write_text("B = 3\n")
    assert source_digest(tmp_path, parts) != digest
    (tmp_path / "sim/deep/b.py").write_text("B = 2\n")
    (tmp_path / "sim/deep/b.py").rename(tmp_path / "sim/b.py")  # the same text elsewhere
    assert source_digest(tmp_path, parts) != digest


def test_a_journal_that_holds_no_lock_never_cuts_another_sweeps_line(tmp_path: Path) -> None:
    rows, out = _rows(tmp_path), tmp_path / "out"
    idle, writer = SweepJournal.open(out, _manifest()), SweepJournal.open(out, _manifest())
    writer.append(rows[:4])
    with (out / "sweep.csv").open("a") as file:
        file.write("tiny_deltas,preroll,20.0,tcp")  # the writer's next row, half written
    before = _files(out)
    idle.reread()  # as after a Ctrl-C before its first rows
    assert _files(out) == before and not idle.done and not idle.notes


def test_a_closed_journal_writes_no_more(tmp_path: Path) -> None:
    rows, out = _rows(tmp_path), tmp_path / "out"
    with SweepJournal.open(out, _manifest()) as journal:
        journal.append(rows[:4])
    with pytest.raises(ValueError, match="journal is closed"):
        journal.append(rows[4:])
    assert len(read_runs(out / "sweep.csv")) == 4
    assert _sweep(out) == 0  # the lock went with close


def test_summary_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    from labkit.cli import main

    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("mine")
    out.mkdir()
    (out / "summary.csv").symlink_to(victim)
    # a directory with a summary and no manifest is refused untouched; so plant it after a sweep
    args = ["sweep", "tiny_deltas", "--thresholds", "20:60:40", "--seeds", "2", "--out", str(out)]
    (out / "summary.csv").unlink()
    assert main(args) == 0
    (out / "summary.csv").unlink()
    (out / "summary.csv").symlink_to(victim)
    assert main(args) == 0  # resumed: every run is there, the summary is written again
    assert victim.read_text() == "mine"
    assert not (out / "summary.csv").is_symlink()
    assert (out / "summary.csv").read_text().startswith("trace,")


def _refused_untouched(directory: Path, capsys: pytest.CaptureFixture[str], said: str) -> None:
    """A sweep into ``directory`` exits 2 with the one line ``said``, changing no file there."""
    before = _files(directory)
    capsys.readouterr()
    assert _sweep(directory) == 2
    assert _one_line(capsys.readouterr().err) == said
    assert _files(directory) == before and not (directory / "summary.csv").exists()
