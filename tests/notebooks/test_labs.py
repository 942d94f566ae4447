"""The classroom labs: nbgrader markup, student versions that never drift, and checkers that tell the truth.

* Files: every solution in labs/solutions/ has a student version in labs/, titled ``# Lab NN · Title``,
  committed clean, with nbgrader cell metadata (schema 3) that nbgrader itself accepts.
* Generator: tools/make_student_labs.py makes exactly the committed student versions, and ``--check``
  fails on drift.
* Execution (real kernels): every solution passes every check (run once, by tests/kernels.py); every
  untouched student version runs to the end, and each check cell reports NOT YET, with no traceback.
* Checkers: wrong answers a learner would plausibly write get NOT YET (each check exercises real servers
  over HTTP); under nbgrader a failing check fails its cell with one line.
* The balancer's routing-function extension point that lab 03 uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

import statelab as sl
from statelab.kernel import jupyter_home

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "labs" / "solutions"
STUDENT = ROOT / "labs"
TOOL = ROOT / "tools" / "make_student_labs.py"
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
TITLE = re.compile(r"^# Lab (\d\d) · \S.*$")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
TIME_LIMIT_S = float(os.environ.get("STATELAB_NOTEBOOK_TIMEOUT", "30"))

PATHS = sorted(SOLUTIONS.glob("*.ipynb"))
IDS = [p.name for p in PATHS]


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_student_labs", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answer_cells(nb) -> list:
    return [c for c in nb.cells if nbgrader_meta(c).get("solution")]


def check_cells(nb) -> list:
    return [c for c in nb.cells if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]


# --------------------------------------------------------------------------- the files

def test_labs_found_numbered_and_paired():
    names = [p.name for p in PATHS]
    assert len(names) >= 5, f"expected at least 5 solution labs in {SOLUTIONS}, found {names}"
    assert all(NAME.match(n) for n in names), names
    assert [int(n[:2]) for n in names] == list(range(1, len(names) + 1)), f"labs must be numbered 01, 02, ...: {names}"
    student = sorted(p.name for p in STUDENT.glob("*.ipynb"))
    assert student == names, f"student labs {student} do not match the solutions {names}"
    assert (STUDENT / "README.md").is_file(), "labs/README.md lists the labs"
    readme = (STUDENT / "README.md").read_text()
    missing = [n for n in names if n not in readme]
    assert not missing, f"labs/README.md does not list {missing}"


def _labs_referred_to(path: Path) -> set[str]:
    """The other labs a lab's text refers to ("Lab 02", "lab 02"), leaving out its closing "**Next:**" link."""
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    text = text.split("**Next:**")[0]
    return set(re.findall(r"\b[Ll]abs? (\d\d)\b", text)) - {path.name[:2]}


def test_the_learner_path_puts_every_lab_after_the_labs_it_refers_to():
    readme = (ROOT / "README.md").read_text()
    path_table = readme.split("### For learners", 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    order = re.findall(r"Lab (\d\d) ·", path_table)
    assert sorted(order) == [p.name[:2] for p in PATHS], f"the learner path lists labs {order}"
    refers = {p.name[:2]: _labs_referred_to(p) for p in PATHS}
    assert refers["03"] >= {"02"}, f"lab 03 refers to lab 02 (its plugin factory): the scan found {refers['03']}"
    late = {lab: sorted(r for r in refs if order.index(r) > order.index(lab)) for lab, refs in refers.items()}
    assert not any(late.values()), f"labs that refer to a lab the learner path puts later: {late}"
    table = (STUDENT / "README.md").read_text().split("| Lab |", 1)[1]
    assert re.findall(r"\[(\d\d) ·", table) == sorted(order), "labs/README.md lists the labs in number order"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_lab_is_committed_clean_with_title(path: Path):
    for nb_path in (path, STUDENT / path.name):
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.get("kernelspec") == KERNELSPEC
        assert nb.metadata.get("language_info", {}).get("name") == "python"
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{nb_path.name}: cells {dirty} have outputs: clear them before committing"
        first = nb.cells[0]
        heading = next((ln for ln in first.source.splitlines() if ln.startswith("# ")), "")
        match = TITLE.match(heading)
        assert first.cell_type == "markdown" and match, f"{nb_path.name}: title {heading!r} is not '# Lab NN · ...'"
        assert match.group(1) == path.name[:2]


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_lab_follows_the_template(path: Path):
    nb = nbformat.read(path, as_version=4)
    intro = nb.cells[0].source
    for word in ("**Goal:**", "**Time:**", "**Background:**", "../../notebooks/"):
        assert word in intro, f"the first cell should have {word}"
    minutes = int(re.search(r"about (\d+) minutes", intro).group(1))
    assert 30 <= minutes <= 45, f"a lab is 30-45 minutes of work, this one says {minutes}"
    assert "import statelab as sl" in nb.cells[1].source, "the second cell is the set-up cell"
    answers, checks = answer_cells(nb), check_cells(nb)
    assert 2 <= len(answers) <= 4 and len(checks) == len(answers), f"{len(answers)} tasks, {len(checks)} checks"
    order = [("answer" if c in answers else "check") for c in nb.cells if c in answers or c in checks]
    assert order == ["answer", "check"] * len(answers), f"each answer cell is followed by its check: {order}"
    assert all(re.fullmatch(r"sl\.labs\.check_\w+\(.*\)", c.source.strip()) for c in checks), \
        "a check cell is one call of a statelab.labs checker"
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and "sl.stop_all()" in last.source, "a final summary that says how to stop"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_nbgrader_metadata(path: Path):
    nb = nbformat.read(path, as_version=4)
    ids = []
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        has_region = "### BEGIN SOLUTION" in cell.source
        if not meta:
            assert cell.cell_type == "code" and not has_region, f"cell {i}: only free code cells may lack the marks"
            continue
        assert meta["schema_version"] == 3 and {"grade", "solution", "locked", "grade_id"} <= set(meta), (i, meta)
        assert re.fullmatch(r"[a-zA-Z0-9_\-]+", meta["grade_id"]), meta["grade_id"]
        ids.append(meta["grade_id"])
        if meta["solution"]:
            assert cell.cell_type == "code" and has_region and "### END SOLUTION" in cell.source, i
            assert not meta["grade"] and not meta["locked"], f"cell {i}: an answer cell is autograded, not locked"
        elif meta["grade"]:
            assert meta["locked"] and meta.get("points", 0) > 0, f"cell {i}: a check is a locked test with points"
        else:
            assert meta["locked"] and not has_region, f"cell {i}: other cells are read-only"
    assert len(ids) == len(set(ids)), f"grade_id values must be unique: {ids}"
    validator = pytest.importorskip("nbgrader.nbgraderformat").MetadataValidator()
    validator.validate_nb(nb)  # nbgrader's own schema check


# --------------------------------------------------------------------------- the generator

@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_student_version_is_what_the_tool_makes(path: Path):
    made = tool.render(tool.student_version(nbformat.read(path, as_version=4), path.name))
    committed = (STUDENT / path.name).read_text(encoding="utf-8")
    assert made == committed, f"labs/{path.name} drifted: run python tools/make_student_labs.py"
    student = nbformat.read(STUDENT / path.name, as_version=4)
    solution = nbformat.read(path, as_version=4)
    assert [c.id for c in student.cells] == [c.id for c in solution.cells]
    assert [c.metadata for c in student.cells] == [c.metadata for c in solution.cells]
    for s_cell, a_cell in zip(solution.cells, student.cells, strict=True):
        if nbgrader_meta(s_cell).get("solution"):
            assert "BEGIN SOLUTION" not in a_cell.source and "raise NotImplementedError()" in a_cell.source
        elif s_cell.cell_type == "code":
            assert a_cell.source == s_cell.source
    text = json.dumps([c.source for c in student.cells])
    assert "../../notebooks/" not in text and "../notebooks/" in text, "links are rewritten for labs/"


def test_tool_check_mode_passes_on_the_repo_and_catches_drift(tmp_path: Path):
    ok = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    solutions, student = tmp_path / "solutions", tmp_path / "student"
    shutil.copytree(SOLUTIONS, solutions)
    shutil.copytree(STUDENT, student, ignore=shutil.ignore_patterns("solutions", "*.md"))
    victim = student / PATHS[0].name
    nb = nbformat.read(victim, as_version=4)
    answer_cells(nb)[0].source = "def carts_after_crash(cluster, users=9):\n    return {}"
    nbformat.write(nb, victim)
    args = ["--solutions", str(solutions), "--student", str(student)]
    drift = subprocess.run([sys.executable, str(TOOL), "--check", *args], capture_output=True, text=True, timeout=60)
    assert drift.returncode == 1 and PATHS[0].name in drift.stderr, drift.stderr
    fixed = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0 and victim.read_text() == (STUDENT / PATHS[0].name).read_text()


def test_tool_replaces_regions_keeping_indentation_and_refuses_broken_markup():
    source = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n" \
             "def g():\n        ### BEGIN SOLUTION\n        pass\n        ### END SOLUTION"
    out, found = tool.strip_solution(source, "t")
    assert found and out == ("def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
                             "def g():\n        # YOUR CODE HERE\n        raise NotImplementedError()")
    for broken in ("### BEGIN SOLUTION\nx", "### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n"):
        with pytest.raises(tool.MarkupError):
            tool.strip_solution(broken, "t")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    with pytest.raises(tool.MarkupError, match="not marked as a solution"):
        tool.student_version(nb)


# --------------------------------------------------------------------------- execution in real kernels

def execute(path: Path, workdir: Path, *, allow_errors: bool = False, env: dict | None = None):
    """Run a copy of ``path`` in a fresh kernel in ``workdir``; return (notebook, seconds)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIME_LIMIT_S + 10, kernel_name="python3", shutdown_kernel="immediate",
                            allow_errors=allow_errors, resources={"metadata": {"path": str(workdir)}})
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    start = time.perf_counter()
    try:
        asyncio.run(asyncio.wait_for(client.async_execute(), TIME_LIMIT_S + 5))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, time.perf_counter() - start


def outputs_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        parts += [str(v) for v in o.get("data", {}).values()]
        parts += o.get("traceback", [])
    return "\n".join(parts)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_solution_passes_every_check(path: Path, notebook_runs):
    """The solution's first Run All, as tests/kernels.py executed it (once per session: budget, re-run safety
    and shutdown are judged in tests/notebooks/test_notebooks.py): every check cell says PASS, nothing went to
    stderr."""
    run = notebook_runs.result(path.relative_to(ROOT).as_posix())
    assert run.executed is not None, f"the solution failed in {run.failed}: {run.error}"
    nb = run.executed
    stderr = [outputs_text(c) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, f"something wrote to stderr: {stderr}"
    checks = check_cells(nb)
    reports = [outputs_text(c) for c in checks]
    assert checks and all("PASS ·" in r and "NOT YET" not in r for r in reports), reports


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_untouched_student_version_reports_not_yet_without_traceback(path: Path, tmp_path: Path):
    nb, seconds = execute(STUDENT / path.name, tmp_path, allow_errors=True)
    checks = check_cells(nb)
    reports = [outputs_text(c) for c in checks]
    assert checks and all("NOT YET ·" in r and "not written yet" in r for r in reports), reports
    tracebacks = [r for r in reports if "Traceback" in r or "statelab/labs" in r]
    assert not tracebacks, f"a check cell shows a traceback: {tracebacks}"
    errors = [(c.metadata.get("nbgrader", {}).get("grade_id"), o.get("ename")) for c in nb.cells
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"an untouched student lab should run to the end (answers are functions): {errors}"
    stderr = [o.get("text") for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, f"server errors leaked to the cell as stderr: {stderr}"
    print(f"\n{path.name}: student version ran in {seconds:.1f} s")


# --------------------------------------------------------------------------- nbgrader itself

def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               **jupyter_home(course / ".jupyter"))
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=" + str(course)],
                          cwd=course, env=env, capture_output=True, text=True, timeout=180)


def _course(tmp_path: Path) -> Path:
    pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install nbgrader)")
    course = tmp_path / "course"
    for path in PATHS:
        folder = course / "source" / f"lab{path.name[:2]}"
        folder.mkdir(parents=True)
        shutil.copy(path, folder / path.name)
    return course


def test_nbgrader_generate_assignment_accepts_every_solution(tmp_path: Path):
    course = _course(tmp_path)
    # every assignment in one nbgrader process (its start-up is most of the time); no gradebook: the autograde
    # test below uses one
    done = _nbgrader(course, "generate_assignment", "*", "--force", "--no-db")
    assert done.returncode == 0, done.stdout + done.stderr
    for path in PATHS:
        assignment = f"lab{path.name[:2]}"
        released = course / "release" / assignment / path.name
        assert released.is_file(), f"nbgrader released no {released}: {done.stdout + done.stderr}"
        ours = nbformat.read(STUDENT / path.name, as_version=4)
        theirs = nbformat.read(released, as_version=4)
        code = [(a.source, b.source) for a, b in zip(ours.cells, theirs.cells, strict=True) if a.cell_type == "code"]
        assert all(a == b for a, b in code), "nbgrader's student version and ours differ in a code cell"


@pytest.mark.slow
def test_nbgrader_autograde_scores_the_solution_full_and_an_untouched_copy_zero(tmp_path: Path):
    course = _course(tmp_path)
    path = PATHS[0]
    assignment = f"lab{path.name[:2]}"
    assert _nbgrader(course, "generate_assignment", assignment, "--force").returncode == 0
    for student, source in (("good", path), ("blank", course / "release" / assignment / path.name)):
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        shutil.copy(source, folder / path.name)
    done = _nbgrader(course, "autograde", assignment, "--create", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        good = gradebook.find_submission(assignment, "good")
        blank = gradebook.find_submission(assignment, "blank")
        assert good.max_score > 0 and good.score == good.max_score, (good.score, good.max_score)
        assert blank.score == 0
    graded = nbformat.read(course / "autograded" / "blank" / assignment / path.name, as_version=4)
    failed = [o for c in check_cells(graded) for o in c.outputs if o.output_type == "error"]
    assert failed and all(o.ename == "NotYet" and len(o.traceback) == 1 for o in failed)


# --------------------------------------------------------------------------- checkers against wrong answers

def _unwritten(*args, **kwargs):
    raise NotImplementedError()


def test_report_text_and_html():
    report = sl.labs.Report("Demo")
    report.expect("a thing", True, "1", 1)
    assert report.passed and "PASS · Demo" in repr(report) and "&#10003;" in report._repr_html_()
    report.expect("a <b>bad</b> thing", False, "2", 3)
    assert not report.passed and "expected 2; happened: 3" in repr(report)
    assert "&lt;b&gt;" in report._repr_html_() and "NOT YET" in report._repr_html_()
    # a long path or token wraps: an output that scrolls sideways is out of a keyboard user's reach (axe-core's
    # scrollable-region-focusable; test_browser_all.py scans a lab solution in JupyterLab); every header has a name
    assert "overflow-wrap:anywhere" in report._repr_html_() and "<th style" in report._repr_html_()
    assert not re.search(r"<th[^>]*></th>", report._repr_html_())


def test_a_checker_never_raises_at_the_learner(capsys):
    def buggy(cluster, users=9):
        return {"kept": 1} ["lost"]  # a KeyError in the learner's code

    report = sl.labs.check_carts_after_crash(buggy)
    assert not report.passed and "raised KeyError" in report.problem and "buggy" in report.problem
    report = sl.labs.check_carts_after_crash("not a function")
    assert not report.passed and "should be a function" in report.problem
    report = sl.labs.check_carts_after_crash(_unwritten)
    assert "not written yet" in report.problem


def test_hook_errors_inside_servers_are_reported_not_printed(capfd):
    from flask import request

    def revoke(denied):
        def plugin(app):
            @app.before_request
            def hook():
                request.headers["Authorization"]  # KeyError for a request without a token

        return plugin

    report = sl.labs.check_logout_revokes(revoke, set)
    assert not report.passed
    assert any("KeyError" in note for note in report.notes), report
    err = capfd.readouterr().err
    assert "Traceback" not in err, err


def test_grading_mode_fails_the_cell_with_one_line(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(sl.labs.report.NotYet) as caught:
        sl.labs.check_rotation_keeps_users(_unwritten)
    assert len(caught.value._render_traceback_()) == 1 and "not written yet" in caught.value._render_traceback_()[0]
    assert sl.labs.check_rotation_keeps_users(lambda keyring: (keyring.current_kid, keyring.rotate())[0]) is None


def test_lab01_wrong_stores():
    assert "store object" in repr(sl.labs.check_survives_crash(lambda: "sqlite"))
    from statelab.shop.sessions import MemoryStore

    report = sl.labs.check_survives_crash(MemoryStore)  # one object, given to every server
    assert report.passed, "one MemoryStore object shared by all servers stands for Redis and survives a crash"

    class NoIdCheck:
        kind = "naive-files"

        def __init__(self, folder):
            self.folder = Path(folder)
            self.lock = threading.Lock()

        def create(self, data, ttl):
            sid = sl.shop.sessions.new_session_id()
            (self.folder / f"{sid}.json").write_text(json.dumps(data))
            return sid

        def get(self, sid):
            try:
                return json.loads((self.folder / f"{sid}.json").read_text())
            except (OSError, ValueError):
                return None

        def update(self, sid, change):
            with self.lock:
                data = self.get(sid)
                if data is None:
                    return None
                new = change(data)
                (self.folder / f"{sid}.json").write_text(json.dumps(new))
                return new

        def delete(self, sid):
            try:
                (self.folder / f"{sid}.json").unlink()
                return True
            except OSError:
                return False

        def count(self):
            return len(list(self.folder.glob("*.json")))

        def clear(self):
            for p in self.folder.glob("*.json"):
                p.unlink()

    report = sl.labs.check_session_store(NoIdCheck)
    failed = [f.behaviour for f in report.failed]
    assert any("forged session id" in b for b in failed), report
    assert any("expires" in b for b in failed), report  # it never expires anything


def _solution_class(notebook: str, name: str) -> type:
    """The class ``name`` as the lab's solution notebook writes it (its cell executed on its own)."""
    import contextlib
    import fcntl
    import json as _json
    import os
    import re
    import secrets
    import tempfile
    import threading

    cells = nbformat.read(SOLUTIONS / notebook, as_version=4).cells
    (source,) = [c.source for c in cells if c.cell_type == "code" and f"class {name}" in c.source]
    namespace = {"Path": Path, "json": _json, "os": os, "re": re, "secrets": secrets, "threading": threading,
                 "time": time, "contextlib": contextlib, "fcntl": fcntl, "tempfile": tempfile}
    exec(compile(source, f"{notebook}:{name}", "exec"), namespace)
    return namespace[name]


def test_lab01_expiry_verdict_holds_on_a_crowded_machine():
    """A correct store on a machine so busy that the first request after a login comes later than the short
    ttl the check starts with: the check must still pass it (it tries a longer ttl), not say NOT YET."""
    solution = _solution_class("01_survive_a_crash.ipynb", "JsonFileStore")

    class CorrectButSlow(solution):  # the solution's store, whose login (create) answers 0.6 s late
        def create(self, data, ttl):
            sid = super().create(data, ttl)
            if ttl < 1:  # only the short-lived sessions of the expiry check: the rest of the check stays fast
                time.sleep(0.6)
            return sid

    report = sl.labs.check_session_store(CorrectButSlow)
    assert report.passed, report


def test_a_store_that_deadlocks_is_reported_within_seconds():
    class TakesItsLockTwice:
        kind = "deadlock"

        def __init__(self, folder):
            self.lock = threading.Lock()

        def create(self, data, ttl):
            return sl.shop.sessions.new_session_id()

        def update(self, sid, change):
            with self.lock:
                return None

        def get(self, sid):
            with self.lock:
                return self.update(sid, lambda data: data)  # the lock is not reentrant: waits forever

        def delete(self, sid):
            return False

        def count(self):
            return 0

        def clear(self):
            pass

    start = time.perf_counter()
    report = sl.labs.check_session_store(TakesItsLockTwice)
    assert time.perf_counter() - start < 15
    assert "did not return within" in report.problem and "lock taken twice" in report.problem


def test_lab02_wrong_plugins():
    from flask import request

    def remember_only(denied):  # adds at logout, never refuses
        def plugin(app):
            keyring = app.extensions["statelab"]["keyring"]

            @app.before_request
            def hook():
                if request.path == "/logout" and request.headers.get("Authorization"):
                    claims = keyring.verify(request.headers["Authorization"][7:])
                    denied.add(claims["jti"], claims["exp"])

        return plugin

    def revoke(denied):  # a correct plugin, so the task 3 check judges only the measurement
        def plugin(app):
            keyring = app.extensions["statelab"]["keyring"]

            @app.before_request
            def hook():
                try:
                    claims = keyring.verify(request.headers.get("Authorization", "")[7:])
                except sl.TokenError:
                    return None
                if claims["jti"] in denied:
                    return {"error": "revoked"}, 401
                if request.path == "/logout":
                    denied.add(claims["jti"], claims["exp"])
                return None

        return plugin

    report = sl.labs.check_logout_revokes(remember_only, _unwritten)
    assert any("refused by every server" in f.behaviour for f in report.failed), report
    # task 2 is judged on its own: a correct hook passes while the learner's DenyList is still unwritten
    report = sl.labs.check_logout_revokes(revoke, _unwritten)
    assert report.passed and any("stand-in" in note for note in report.notes), report
    report = sl.labs.check_shared_list(lambda servers, token: 0, revoke, _unwritten)
    assert any("a list per server" in f.behaviour for f in report.failed), report


def _library_classes():
    """Every class statelab defines (all its modules imported), with the module it lives in."""
    import importlib
    import inspect
    import pkgutil

    for info in pkgutil.walk_packages(sl.__path__, "statelab."):
        module = importlib.import_module(info.name)
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield info.name, cls


def test_lab02_answer_does_not_ship_in_the_library():
    """No class in the package passes the lab 02 task 1 check: a learner cannot import the answer, and the
    checkers do not lean on one (the stand-in they use while task 1 is unwritten never forgets an entry)."""
    candidates = [(name, cls) for name, cls in _library_classes()
                  if all(callable(getattr(cls, m, None)) for m in ("add", "__contains__", "__len__"))]
    assert candidates, "the scan found no set-like class at all: it is not looking"
    answers = [f"{name}.{cls.__qualname__}" for name, cls in candidates if sl.labs.check_deny_list(cls).passed]
    assert not answers, f"a working answer to lab 02 task 1 ships in the library: {answers}"


def _library_functions(*params: str):
    """Every function (or method) statelab defines whose required positional parameters are named ``params``
    (``None``: any one parameter)."""
    import inspect

    seen = set()
    for module, cls in [*_library_classes(), *((m, None) for m in _library_modules())]:
        owner = cls if cls is not None else importlib.import_module(module)
        for fn in vars(owner).values():
            if isinstance(fn, (staticmethod, classmethod)):
                fn = fn.__func__
            if not inspect.isfunction(fn) or fn.__module__ != module or fn in seen:
                continue
            seen.add(fn)
            required = [p.name for p in inspect.signature(fn).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if required == list(params) or (params == (None,) and len(required) == 1 and required[0] != "self"):
                yield f"{module}.{fn.__qualname__}", fn


def _library_modules():
    import pkgutil

    for info in pkgutil.walk_packages(sl.__path__, "statelab."):
        importlib.import_module(info.name)
        yield info.name


def test_lab01_own_store_is_not_a_library_store():
    """Task 3 asks for a store of one's own (a JSON file per session): no store in the package passes its check,
    not even the shared SQLite store of task 2 opened inside the folder."""
    from statelab.shop.sessions import MemoryStore, SqliteStore

    stores = [(f"{name}.{cls.__qualname__}", cls) for name, cls in _library_classes()
              if all(callable(getattr(cls, m, None)) for m in ("create", "get", "update", "delete", "count"))]
    assert MemoryStore in [cls for _, cls in stores], "the scan found no session store at all: it is not looking"
    stores.append(("SqliteStore in the folder", lambda folder: SqliteStore(Path(folder) / "sessions.sqlite3")))
    passing = [name for name, store in stores if sl.labs.check_session_store(store).passed]
    assert not passing, f"a library store passes lab 01 task 3 in place of the learner's own: {passing}"


def test_lab03_answers_do_not_ship_in_the_library():
    """No routing function in the package (the checkers' own stand-in included) passes lab 03 task 1 or 2."""
    routes = list(_library_functions("client_key", "cookie", "live", "all"))
    assert routes, "the scan found no routing function at all: it is not looking"
    passing = [name for name, fn in routes
               if sl.labs.check_pins_users(fn).passed or sl.labs.check_failover(fn).passed]
    assert not passing, f"a working answer to lab 03 ships in the library: {passing}"


def test_lab05_answers_do_not_ship_in_the_library():
    """No plugin factory in the package passes lab 05 task 1 or 2, given the shared ``answers`` dict or the
    library's own IdempotencyKeys (which the experiments use on ``POST /cart`` and ``/checkout/confirm``)."""
    from statelab.shop.plugins import IdempotencyKeys

    plugins = [(name, fn) for name, fn in _library_functions(None)   # one required parameter, where plugins live
               if name.startswith(("statelab.shop.plugins.", "statelab.labs.")) and "._" not in name
               and not name.startswith("statelab.labs.report.")]
    assert any(name.endswith("idempotent_writes") for name, _ in plugins), "the scan found no plugin: it is not looking"
    passing = []
    for name, factory in plugins:
        for label, arg in (("answers", None), ("IdempotencyKeys()", IdempotencyKeys())):
            def idempotent(answers, factory=factory, arg=arg):
                return factory(answers if arg is None else arg)

            if sl.labs.check_retry_once(idempotent).passed or sl.labs.check_double_click(idempotent).passed:
                passing.append(f"{name}({label})")
    assert not passing, f"a working answer to lab 05 ships in the library: {passing}"


def _hash_pick(key, live):
    return live[sum(key.encode()) % len(live)]


def test_lab03_wrong_routing():
    def sticky_no_failover(key, cookie, live, all):
        return cookie if cookie in all else _hash_pick(key, live)

    assert sl.labs.check_pins_users(sticky_no_failover).passed
    report = sl.labs.check_failover(sticky_no_failover)
    assert not report.passed and "dead server" in report.summary()

    def failover(key, cookie, live, all):
        return cookie if cookie in live else _hash_pick(key, live)

    def ignores_drained(strategy, drained):
        return strategy

    assert sl.labs.check_failover(failover).passed
    assert not sl.labs.check_draining(ignores_drained, failover).passed


def test_lab04_wrong_rotations():
    def careless(keyring):
        old = keyring.current_kid
        keyring.rotate()
        keyring.retire(old)
        return old

    report = sl.labs.check_rotation_keeps_users(careless)
    assert any("still verifies" in f.behaviour for f in report.failed), report

    from flask import request

    def launders(app):  # re-signs whatever it is sent, without verifying: a forged token comes back genuine
        state = app.extensions["statelab"]

        @app.after_request
        def resign(response):
            token = request.headers.get("Authorization", "")[7:]
            claims = sl.inspect_token(token).claims
            if token and sl.inspect_token(token).header.get("kid") != state["keyring"].current_kid and "sub" in claims:
                body = response.get_json(silent=True) or {}
                body["token"] = state["keyring"].issue(claims["sub"], 60, cart=claims.get("cart", []))
                response.set_data(json.dumps(body))
            return response

    report = sl.labs.check_resign(launders)
    assert any("tampered" in f.behaviour for f in report.failed), report

    def counts_expired_too(tokens, old_kid):
        return sum(sl.inspect_token(t).header.get("kid") == old_kid for t in tokens)

    assert not sl.labs.check_prediction(counts_expired_too).passed


def test_lab05_wrong_idempotency():
    from flask import jsonify, request

    def per_server(answers):  # each server remembers alone: a retry on another server is a new order
        def plugin(app):
            mine = {}

            @app.before_request
            def replay():
                key = request.headers.get("Idempotency-Key")
                if request.path == "/checkout" and key in mine:
                    status, body = mine[key]
                    return jsonify(body), status

            @app.after_request
            def remember(response):
                key = request.headers.get("Idempotency-Key")
                if request.path == "/checkout" and key and key not in mine:
                    mine[key] = (response.status_code, response.get_json())
                return response

        return plugin

    report = sl.labs.check_retry_once(per_server)
    assert any("first answer again" in f.behaviour for f in report.failed), report

    def new_key_each_time(send, attempts=5):
        ex = None
        for i in range(attempts):
            ex = send({"Idempotency-Key": f"try-{i}"})
            if ex.status is not None and ex.status < 500:
                return ex
        return ex

    def claim_first(path):  # a correct server side (threads of one process), so the check judges only the client
        from flask import g

        lock = threading.Lock()
        answers = {}

        def plugin(app):
            keyring = app.extensions["statelab"]["keyring"]

            @app.before_request
            def claim():
                key = request.headers.get("Idempotency-Key")
                if request.path != "/checkout" or key is None:
                    return None
                scope = (keyring.verify(request.headers["Authorization"][7:])["sub"], key)
                with lock:
                    seen = answers.setdefault(scope, None)
                    if seen is None:
                        answers[scope] = "busy"
                        g.scope = scope
                        return None
                if seen == "busy":
                    return jsonify(error="in progress"), 409
                return jsonify(seen[1]), seen[0]

            @app.after_request
            def remember(response):
                if getattr(g, "scope", None):
                    answers[g.scope] = (response.status_code, response.get_json())
                return response

        return plugin

    report = sl.labs.check_retries(new_key_each_time, claim_first)
    assert any("same Idempotency-Key" in f.behaviour for f in report.failed), report
    assert any("exactly one order" in f.behaviour for f in report.failed), report


# --------------------------------------------------------------------------- the balancer extension point

def test_routing_function_pins_fails_over_and_reports_its_own_errors():
    calls = []

    def pick(client_key, cookie, live, all):
        calls.append((client_key, cookie, tuple(live), tuple(all)))
        return cookie if cookie in live else live[0]

    with sl.Cluster(3, "stateful", balancer=pick) as cluster:
        alice = sl.Client(cluster.url, ip="10.1.2.3")
        first = alice.login("alice")
        assert first.ok and alice.cookies.get(cluster.balancer.cookie_name) == first.served_by == "server-0"
        assert calls[0] == ("10.1.2.3", None, ("server-0", "server-1", "server-2"),
                            ("server-0", "server-1", "server-2"))
        assert alice.cart().served_by == "server-0" and calls[-1][1] == "server-0"
        cluster.kill(0)
        moved = alice.me()
        assert moved.status == 401 and moved.served_by == "server-1"
        assert alice.cookies[cluster.balancer.cookie_name] == "server-1"
        assert calls[-1][2] == ("server-1", "server-2"), "asked again without the server that refused"

        cluster.strategy = lambda key, cookie, live, all: "server-0"  # keeps choosing the dead server
        again = alice.me()
        assert again.status == 503 and "again" in again.body["error"]
        cluster.strategy = lambda key, cookie, live, all: "nobody"
        assert alice.me().status == 500 and "not one of" in alice.last.body["error"]
        cluster.strategy = lambda key, cookie, live, all: 1 / 0
        assert alice.me().status == 500 and "ZeroDivisionError" in alice.last.body["error"]
        cluster.strategy = "round_robin"  # the named strategies are untouched
        assert cluster.strategy == "round_robin"
        with pytest.raises(ValueError, match="or a function"):
            cluster.strategy = "fastest"


def _thread_only(solution: type) -> type:
    """The solution's store as the lab used to teach it: a threading.Lock, and one shared temporary file name."""
    class ThreadOnly(solution):
        _lock = threading.Lock()

        @contextlib.contextmanager
        def _locked(self):
            with self._lock:
                yield

        def _save(self, path, entry):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(entry))
            os.replace(tmp, path)
    return ThreadOnly


def test_lab01_a_threading_lock_is_not_enough_for_two_processes_and_a_file_lock_is():
    solution = _solution_class("01_survive_a_crash.ipynb", "JsonFileStore")
    right = sl.labs.check_session_store(solution)
    assert right.passed, right
    two = [f for f in right.findings if "two server processes" in f.behaviour]
    assert two and two[0].happened.startswith("400 of 400 kept"), two
    wrong = sl.labs.check_session_store(_thread_only(solution))
    failed = {f.behaviour: f.happened for f in wrong.failed}
    assert [b for b in failed if "two server processes" in b] == [f.behaviour for f in wrong.failed], failed
    (happened,) = failed.values()
    # fewer updates kept, a session torn beyond reading (0 kept), or a process that crashed on the shared file
    assert int(happened.split(" of ")[0]) < 400 or "crashed" in happened, happened


def test_lab01_a_get_that_does_not_restart_the_idle_timer_is_not_yet():
    solution = _solution_class("01_survive_a_crash.ipynb", "JsonFileStore")

    class FixedExpiry(solution):
        def get(self, sid):
            path = self._file(sid)
            return None if path is None else (self._load(path) or {}).get("data")

    report = sl.labs.check_session_store(FixedExpiry)
    assert [f.behaviour for f in report.failed] == ["get() restarts the idle timer (a session in use does not expire)"]


def _solution_namespace(notebook: str) -> dict:
    """The solution notebook's set-up cell and answer cells, executed in one namespace (as the kernel would)."""
    cells = nbformat.read(SOLUTIONS / notebook, as_version=4).cells
    namespace: dict = {}
    for cell in cells:
        gid = nbgrader_meta(cell).get("grade_id", "")
        if cell.cell_type == "code" and (gid == "setup" or gid.endswith("_answer")):
            exec(compile(cell.source, f"{notebook}:{gid}", "exec"), namespace)
    return namespace


def _claims_in_a_dict_behind_a_threading_lock():
    """Lab 05's claim() and finish() as the thread-only variant: every rule kept, in one process's dict."""
    lock = threading.Lock()
    rows: dict = {}

    def claim(db, user, key, fingerprint, ttl=30):
        with lock:
            row = rows.get((user, key))
            if row is not None and row[3] < time.time():
                row = None
            if row is None:
                rows[(user, key)] = (fingerprint, None, None, time.time() + ttl)
                return None
            return row[:3]

    def finish(db, user, key, status, body):
        with lock:
            if status >= 500:
                rows.pop((user, key), None)
            else:
                rows[(user, key)] = (rows[(user, key)][0], status, body, time.time() + 86400)

    return claim, finish


def test_lab05_a_claim_that_looks_then_writes_under_a_threading_lock_fails_from_two_processes():
    """The reference claim (a unique INSERT) passes, each key won once by two OS processes; the same claim as
    "look, then write" under a threading.Lock, or a dict under a lock, passes every other item and fails that one."""
    sol = _solution_namespace("05_idempotent_checkout.ipynb")
    right = sl.labs.check_claims(sol["claim"], sol["finish"])
    assert right.passed, right
    two = [f for f in right.findings if "two server processes" in f.behaviour]
    assert two and two[0].happened.startswith("60 of 60 keys won by one process"), two
    lock = threading.Lock()

    def look_then_write(db, user, key, fingerprint, ttl=30):
        with lock:
            now = time.time()
            db.execute("DELETE FROM keys WHERE user = ? AND key = ? AND expires < ?", (user, key, now))
            row = db.execute("SELECT fingerprint, status, body FROM keys WHERE user = ? AND key = ?",
                             (user, key)).fetchone()
            if row is None:  # no NX: another process may have looked too, and both write
                db.execute("INSERT OR REPLACE INTO keys (user, key, fingerprint, expires) VALUES (?, ?, ?, ?)",
                           (user, key, fingerprint, now + ttl))
            return row

    dict_claim, dict_finish = _claims_in_a_dict_behind_a_threading_lock()

    for claim, finish in ((look_then_write, sol["finish"]), (dict_claim, dict_finish)):
        wrong = sl.labs.check_claims(claim, finish)
        assert [f.behaviour for f in wrong.failed] == [two[0].behaviour], wrong
        won = wrong.failed[0].happened.split(" of ")[0]  # a count, or what went wrong in a child process
        assert not won.isdigit() or int(won) < 60, wrong


def test_lab05_a_5xx_that_keeps_the_claim_and_a_claim_that_never_lapses_are_not_yet():
    sol = _solution_namespace("05_idempotent_checkout.ipynb")

    def keeps_5xx(db, user, key, status, body):
        db.execute("UPDATE keys SET status = ?, body = ? WHERE user = ? AND key = ?", (status, body, user, key))

    report = sl.labs.check_claims(sol["claim"], keeps_5xx)
    assert any(f.behaviour.startswith("6. finish() with a 5xx") for f in report.failed), report

    def never_lapses(db, user, key, fingerprint, ttl=30):
        import sqlite3

        try:
            db.execute("INSERT INTO keys (user, key, fingerprint, expires) VALUES (?, ?, ?, ?)",
                       (user, key, fingerprint, time.time() + ttl))
        except sqlite3.IntegrityError:
            return db.execute("SELECT fingerprint, status, body FROM keys WHERE user = ? AND key = ?",
                              (user, key)).fetchone()
        return None

    report = sl.labs.check_claims(never_lapses, sol["finish"])
    lapse = "7. a claim left in progress (its server died) lapses after its ttl"
    assert [f.behaviour for f in report.failed] == [lapse], report


def test_lab05_a_plugin_ignoring_the_body_or_keeping_a_failed_claim_is_not_yet():
    """The plugin check: the same key with another body must be 422; a 503 must free the key for the retry."""
    sol = _solution_namespace("05_idempotent_checkout.ipynb")
    real_claim = sol["claim"]

    def blind(db, user, key, fingerprint, ttl=30):  # the fingerprint is never compared: any body replays
        row = real_claim(db, user, key, fingerprint, ttl)
        return row if row is None else (fingerprint, *row[1:])

    sol["claim"] = blind
    report = sl.labs.check_double_click(sol["idempotent_safe"])
    assert [f.behaviour for f in report.failed] == ["4. the same key with another body is refused with 422"], report
    sol["claim"] = real_claim
    real_finish = sol["finish"]

    def only_successes(db, user, key, status, body):  # a 5xx is left "in progress": the retry gets 409
        if status < 500:
            real_finish(db, user, key, status, body)

    sol["finish"] = only_successes
    report = sl.labs.check_double_click(sol["idempotent_safe"])
    failed = [f for f in report.failed]
    assert [f.behaviour for f in failed] == [
        "6. a 5xx answer releases the claim: the retry with the same key places the order"], report
    assert "503, then 409 in progress" in failed[0].happened, failed[0]


def test_lab05_a_double_click_plugin_claiming_in_a_dict_behind_a_threading_lock_fails_from_two_processes():
    """Task 2b's item 7: the reference plugin (a unique INSERT in the shared file) places one order per double-click
    split between two server processes; the same plugin on a claim in a dict behind a threading.Lock passes every
    item judged by servers that are threads of one process, and places two orders per double-click there."""
    sol = _solution_namespace("05_idempotent_checkout.ipynb")
    seven = "7. two server processes, each with your plugin on the same file, get both clicks of a double-click at " \
            "once: one order each"
    right = sl.labs.check_double_click(sol["idempotent_safe"])
    assert right.passed, right
    (two,) = [f for f in right.findings if f.behaviour == seven]
    assert two.happened.startswith("6 orders for 6 double-clicks"), two
    dict_claim, dict_finish = _claims_in_a_dict_behind_a_threading_lock()

    sol["claim"], sol["finish"] = dict_claim, dict_finish
    wrong = sl.labs.check_double_click(sol["idempotent_safe"])
    assert [f.behaviour for f in wrong.failed] == [seven], wrong
    assert wrong.failed[0].happened.startswith("12 orders for 6 double-clicks"), wrong.failed[0]


def test_lab05_checkout_takes_the_cart_through_change_cart_in_every_design():
    """One checkout rule: with the cart in the db, a session server and a token server both place the order and
    empty the cart; a second checkout is 409 in both (the cart table, not the token, says it is empty)."""
    for mode in ("stateful", "stateless"):
        orders = sl.labs.Orders()
        with sl.Server(mode, cart="db", plugins=[sl.labs.checkout(orders, work=0)]).start() as server:
            alice = sl.Client(server.url)
            alice.login("alice")
            alice.add_to_cart("book", qty=2)
            first = alice.post("/checkout")
            assert first.status == 201 and first.body["order"]["items"] == [{"item": "book", "qty": 2}], first
            assert alice.cart().body["cart"] == [], (mode, alice.last.body)
            again = alice.post("/checkout")
            assert again.status == 409 and "empty" in again.body["error"], (mode, again.summary())
            assert len(orders.of("alice")) == 1


def test_lab06_update_returning_the_pipeline_a_watch_loop_for_ever_and_a_fixed_expiry_are_not_yet():
    """Task 3's traps, each with its own message: transaction() without value_from_callable (returns [True]); a
    transaction function that changes the watched key itself (retried for ever); a get() that leaves the expiry."""
    pytest.importorskip("redis")
    sol = _solution_namespace("06_many_workers.ipynb")
    store = sol["RedisSessionStore"]
    right = sl.labs.check_redis_store(store)
    assert right.passed, right
    assert right.notes and "Flask-Session" in right.notes[-1], right.notes
    assert "happened: []" not in repr(right)

    class PipelineResults(store):
        def update(self, sid, change):
            key = self.prefix + sid

            def apply(pipe):
                stored = json.loads(pipe.get(key))
                pipe.multi()
                pipe.set(key, json.dumps({**stored, "data": change(stored["data"])}))
                return stored

            return self.r.transaction(apply, key)

    report = sl.labs.check_redis_store(PipelineResults)
    assert report.failed[0].behaviour == "update() returns the new data", report
    assert "returned [True]" in report.failed[0].happened and "value_from_callable" in report.failed[0].happened

    class ForEver(store):
        def update(self, sid, change):
            key = self.prefix + sid

            def apply(pipe):
                stored = json.loads(pipe.get(key))
                pipe.set(key, json.dumps(stored))  # before multi(): runs at once, and breaks its own WATCH
                pipe.multi()
                pipe.set(key, json.dumps({**stored, "data": change(stored["data"])}))
                return stored["data"]

            return self.r.transaction(apply, key, value_from_callable=True)

    report = sl.labs.check_redis_store(ForEver)
    assert report.problem and "did not return" in report.problem and "retry for ever" in report.problem, report
    assert "lock taken twice" not in report.problem

    class FixedExpiry(store):
        def get(self, sid):
            raw = self.r.get(self.prefix + sid)
            return None if raw is None else json.loads(raw)["data"]

    report = sl.labs.check_redis_store(FixedExpiry)
    assert [f.behaviour for f in report.failed] == ["get() restarts the idle timer (a session in use does not expire)"]



def test_a_hook_that_returns_none_is_named_as_such():
    """An after_request hook without ``return response`` makes Flask fail in its own code ('NoneType' object has no
    attribute ...): the report says a hook returned None, and which kind must return the response."""
    from flask import request

    def idempotent(answers):
        def plugin(app):
            @app.after_request
            def remember(response):
                if request.path == "/checkout":
                    answers[request.headers.get("Idempotency-Key")] = (response.status_code, response.get_json())
                # no return: Flask gets None

        return plugin

    report = sl.labs.check_retry_once(idempotent)
    assert "a hook returned None" in report.summary() and "return response" in report.summary(), repr(report)


def test_lab04_issue_instead_of_renew_and_a_skipped_verify_behind_a_200_guard_are_not_yet():
    """Re-signing with issue() mints a new login (fresh jti, auth_time, exp): NOT YET on the login's identity. A
    plugin that skips verify() behind the natural `status == 200` guard passes every authenticated route (they refuse
    a bad token first) and is caught on a public page, which answers 200 whatever token it is sent."""
    from flask import request

    def plugin_with(sign):
        def resign_old_tokens(app):
            state = app.extensions["statelab"]
            keyring = state["keyring"]

            @app.after_request
            def resign(response):
                body = response.get_json(silent=True)
                auth = request.headers.get("Authorization", "")
                if response.status_code != 200 or not isinstance(body, dict) or "token" in body:
                    return response
                if not auth.startswith("Bearer "):
                    return response
                token = auth.removeprefix("Bearer ").strip()
                if sl.inspect_token(token).header.get("kid") == keyring.current_kid:
                    return response
                new = sign(keyring, state, token)
                if new:
                    body["token"] = new
                    response.set_data(json.dumps(body))
                return response

            return None

        return resign_old_tokens

    def renews(keyring, state, token):
        try:
            return keyring.renew(keyring.verify(token), state["token_ttl"], max_age=state["token_max_age"])
        except sl.TokenError:
            return None

    def issues(keyring, state, token):
        try:
            claims = keyring.verify(token)
        except sl.TokenError:
            return None
        return keyring.issue(claims["sub"], state["token_ttl"], cart=claims.get("cart", []))

    def unverified(keyring, state, token):  # trusts the 200: never calls verify
        claims = sl.inspect_token(token).claims
        if "sub" not in claims:
            return None
        return keyring.issue(claims["sub"], state["token_ttl"], cart=claims.get("cart", []))

    assert sl.labs.check_resign(plugin_with(renews)).passed
    report = sl.labs.check_resign(plugin_with(issues))
    assert [f.behaviour for f in report.failed] == [
        "each new token is the same login: its jti and auth_time survive (keyring.renew)"], report
    assert "returned eyJ" in report.failed[0].happened and "jti" in report.failed[0].happened
    report = sl.labs.check_resign(plugin_with(unverified))
    assert "a tampered old token sent to a public page (200) gets no token back" in [
        f.behaviour for f in report.failed], report
    assert not any("tampered old token is refused" in f.behaviour for f in report.failed), \
        "the status guard alone passes the authenticated-route check: only the public page catches it"


def test_lab04_the_compromise_procedure_kills_forged_and_honest_tokens_under_the_leaked_key():
    with sl.Cluster(2, "stateless") as cluster:
        honest = sl.Client(cluster.url)
        honest.login("alice")
        leaked = cluster.keyring.current_kid
        mallory = sl.Client(cluster.url)
        mallory.token = sl.labs.forge_with(cluster.keyring, leaked, "mallory")
        assert mallory.me().status == 200
        cluster.keyring.rotate()
        assert mallory.me().status == 200, "a grace period keeps a forged token valid"
        cluster.keyring.retire(leaked)
        assert mallory.me().status == 401 and honest.me().status == 401
        honest.login("alice")
        assert honest.me().status == 200


def test_lab02_refresh_store_without_reuse_detection_is_not_yet():
    """Task 4: a store that refuses the spent token but leaves its family alive (a thief who refreshed first lives
    on): NOT YET on the family; one that never spends a token: NOT YET on the replay."""
    import secrets

    class NoFamily:
        def __init__(self, path):
            self.tokens = {}

        def start(self, user):
            token = secrets.token_urlsafe(32)
            self.tokens[token] = [user, False]
            return token

        def rotate(self, token):
            record = self.tokens.get(token)
            if record is None or record[1]:
                raise sl.TokenError("unknown or spent")
            record[1] = True
            return record[0], self.start(record[0])

        def end(self, token):
            self.tokens.pop(token, None)

    report = sl.labs.check_refresh(NoFamily)
    assert [f.behaviour for f in report.failed] == [
        "reuse ends the whole family: alice's newer refresh token is refused too", TWO_REFRESHES], report

    class NeverSpent(NoFamily):
        def rotate(self, token):
            record = self.tokens.get(token)
            if record is None:
                raise sl.TokenError("unknown")
            return record[0], self.start(record[0])

    report = sl.labs.check_refresh(NeverSpent)
    assert "the thief replays the spent refresh token: refused" in [f.behaviour for f in report.failed], report
    library = sl.labs.check_refresh(RefreshFamiliesForTest)
    assert [f.behaviour for f in library.failed] == [TWO_REFRESHES], library


TWO_REVOKES = "two server processes on one file: a token revoked in one is refused by the other"
TWO_REFRESHES = "two server processes on one file refresh the same token at once: exactly one wins"


class RefreshFamiliesForTest:
    """The library's store (notebook 02's, in one process's memory) passes every item of task 4 that servers made
    of threads can judge, and fails the two-process one: the check judges behaviour, not names."""

    def __new__(cls, path):
        from statelab.shop.lifecycle import RefreshFamilies

        return RefreshFamilies()


class ThreadOnlyDenyList:
    """Lab 02's task 1 as it used to be taught: a dict behind a threading.Lock (``path`` ignored)."""

    def __init__(self, path):
        self._until = {}
        self._lock = threading.Lock()

    def add(self, jti, exp):
        with self._lock:
            self._until[jti] = float(exp)

    def __contains__(self, jti):
        with self._lock:
            return isinstance(jti, str) and self._until.get(jti, 0.0) > time.time()

    def __len__(self):
        with self._lock:
            return len(self._until)

    def purge_expired(self):
        now = time.time()
        with self._lock:
            gone = [jti for jti, exp in self._until.items() if exp <= now]
            for jti in gone:
                del self._until[jti]
        return len(gone)


class ThreadOnlyRefreshStore:
    """Lab 02's task 4 as it used to be taught: dicts behind a threading.Lock, each instance its own (``path``
    ignored). ``shared`` makes them one class-wide dict, as a module-level dict would be: each forked process
    then holds a copy of the same tokens."""

    shared: dict | None = None

    def __init__(self, path):
        import secrets

        self._secrets = secrets
        self._tokens = self.shared if self.shared is not None else {}
        self._ended = set()
        self._lock = threading.Lock()

    def start(self, user):
        with self._lock:
            return self._next(user, self._secrets.token_hex(8))

    def _next(self, user, family):
        token = self._secrets.token_urlsafe(32)
        self._tokens[token] = [user, family, False]
        return token

    def rotate(self, token):
        with self._lock:
            record = self._tokens.get(token)
            if record is None or record[1] in self._ended:
                raise sl.TokenError("unknown or revoked refresh token")
            if record[2]:
                self._ended.add(record[1])
                raise sl.TokenError("refresh token reused")
            record[2] = True
            return record[0], self._next(record[0], record[1])

    def end(self, token):
        with self._lock:
            record = self._tokens.get(token)
            if record is not None:
                self._ended.add(record[1])


def test_lab02_a_deny_list_and_a_refresh_store_behind_a_threading_lock_fail_from_two_processes_and_a_file_passes():
    """The reference list and store (a SQLite file every process opens) pass, every revocation seen by the other
    process and every raced refresh won once; the same classes as a dict behind a threading.Lock pass every item
    that servers made of threads judge and fail the two-process one: the other process saw no revocation, and a
    raced token was refreshed by neither process (instance dicts: the other store never saw the login) or by both
    (one module-wide dict, copied into each process)."""
    sol = _solution_namespace("02_logout_for_real.ipynb")
    right = sl.labs.check_deny_list(sol["DenyList"])
    assert right.passed, right
    (two,) = [f for f in right.findings if f.behaviour == TWO_REVOKES]
    assert two.happened.startswith("40 of 40 seen by the other process"), two
    wrong = sl.labs.check_deny_list(ThreadOnlyDenyList)
    assert [f.behaviour for f in wrong.failed] == [TWO_REVOKES], wrong
    assert wrong.failed[0].happened.startswith("0 of 40 seen by the other process"), wrong.failed[0]
    # task 2 and 3 take the file-backed list from the servers' threads as before
    assert sl.labs.check_logout_revokes(sol["revoke_on_logout"], sol["DenyList"]).passed
    assert sl.labs.check_shared_list(sol["replays_accepted"], sol["revoke_on_logout"], sol["DenyList"]).passed

    right = sl.labs.check_refresh(sol["RefreshStore"])
    assert right.passed, right
    (two,) = [f for f in right.findings if f.behaviour == TWO_REFRESHES]
    assert two.happened.startswith("12 of 12 (") and "refreshed by both: 0, by neither: 0" in two.happened, two
    wrong = sl.labs.check_refresh(ThreadOnlyRefreshStore)
    assert [f.behaviour for f in wrong.failed] == [TWO_REFRESHES], wrong
    assert wrong.failed[0].happened.startswith("0 of 12 (") and "by neither: 12" in wrong.failed[0].happened, wrong

    class ModuleWide(ThreadOnlyRefreshStore):
        shared = {}

    wrong = sl.labs.check_refresh(ModuleWide)
    assert [f.behaviour for f in wrong.failed] == [TWO_REFRESHES], wrong
    assert wrong.failed[0].happened.startswith("0 of 12 (") and "refreshed by both: 12" in wrong.failed[0].happened


def test_lab01_a_measurement_that_crashes_nothing_says_so_not_a_question_mark():
    def counts_without_crashing(cluster, users=9):
        return {"kept": users, "lost": 0}

    report = sl.labs.check_carts_after_crash(counts_without_crashing)
    assert not report.passed
    assert not any("?" in n for n in report.notes) and any("no server is down" in n for n in report.notes), report

    report = sl.labs.check_carts_after_crash(lambda cluster, users=9: None)
    assert "returned None" in report.findings[0].happened, report
