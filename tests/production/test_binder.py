"""Binder: the README's badge points at this repository, and binder/ builds an environment that runs the notebooks.

repo2docker reads only binder/ when that folder exists. binder/requirements.txt refers to ../requirements.txt
(which installs statelab itself with ``-e .``): a local reference, so repo2docker copies the whole repository
and runs ``pip install -r binder/requirements.txt`` from its root, into the one environment that runs both
JupyterLab and the kernel. The slow test does the same in a fresh virtualenv (no docker here), starts that
environment's own kernel and resolves in it every import the notebooks and labs make (CI executes each notebook
once, elsewhere: this test does not run them again). Its install starts in the background when the tests are
collected (under pytest-xdist, in the controller), and the test runs last (``FreshInstall``, tests/conftest.py).
The README's class guidance (a fixed version to launch, the limits of public Binder) is checked here too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
START = "notebooks/00_start_here.ipynb"  # what the badge opens
BADGE_LINK = re.compile(r"https://mybinder\.org/v2/gh/([^/\s)]+)/([^/\s)]+)/([^?\s)]+)\?urlpath=([^\s)&]+)")


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _repository() -> tuple[str, str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    assert "Repository" in urls, "pyproject.toml needs [project.urls] Repository: the one place the address lives"
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)/?", urls["Repository"])
    assert match, f"Repository must be a GitHub url (Binder builds from it), not {urls['Repository']!r}"
    return match.group(1), match.group(2)


def test_binder_requirements_install_statelab_and_the_proxy():
    lines = _requirement_lines(BINDER / "requirements.txt")
    assert "-r ../requirements.txt" in lines, "binder/requirements.txt must install what the notebooks need"
    main = _requirement_lines(ROOT / "requirements.txt")
    assert "-e ." in main, "requirements.txt must install statelab itself"
    assert any(re.fullmatch(r"jupyter-server-proxy\s*>=\s*4(\.\d+)*", line) for line in lines), lines
    for line in lines + main:
        name = re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower()
        if name == "ipywidgets":  # repo2docker ships ipywidgets 8: a pin below it breaks every widget
            assert re.fullmatch(r"ipywidgets\s*>=\s*8(\.\d+)*", line), f"ipywidgets only with a floor >= 8: {line}"
        if name == "jupyterlab":
            assert re.fullmatch(r"jupyterlab\s*>=\s*4(\.\d+)*", line), f"jupyterlab only with a floor >= 4: {line}"
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(1[0-9])", runtime), f"runtime.txt: {runtime!r} (requires-python is >= 3.10)"
    post_build = BINDER / "postBuild"
    assert not post_build.exists() or os.access(post_build, os.X_OK), "repo2docker runs postBuild only if executable"


def test_readme_binder_badge_points_at_the_repository():
    owner, repo = _repository()
    readme = (ROOT / "README.md").read_text()
    links = [link for link in BADGE_LINK.findall(readme) if link[2] != "student-<tag>"]  # that one: for a class
    assert links, ("README.md has no Binder link (https://mybinder.org/v2/gh/<owner>/<repo>/HEAD?urlpath=...); "
                   "add the badge line")
    assert re.search(r"\[!\[[^\]]*\]\(https://mybinder\.org/badge[^)]*\)\]\(https://mybinder\.org/v2/gh/", readme), \
        "the Binder link should be the usual badge: [![Binder](https://mybinder.org/badge_logo.svg)](...)"
    for link_owner, link_repo, ref, urlpath in links:
        assert (link_owner, link_repo) == (owner, repo), \
            f"README's Binder link builds {link_owner}/{link_repo}, pyproject's Repository is {owner}/{repo}"
        assert ref == "HEAD", f"the badge should build the default branch (HEAD), not {ref!r}"
        path = urllib.parse.unquote(urlpath)
        assert path.startswith("lab/tree/"), f"urlpath should open JupyterLab on a notebook: {path}"
        notebook = path.removeprefix("lab/tree/")
        assert notebook == START and (ROOT / notebook).is_file(), f"the badge should open {START}, not {notebook}"


# --- a fresh environment built the way repo2docker builds it ---------------------------------------------------------

CHECK = """\
import importlib, json, sys, importlib.metadata as md
import statelab

def resolves(module, names):
    mod = importlib.import_module(module)
    for name in names:
        if name != "*" and not hasattr(mod, name):
            importlib.import_module(f"{module}.{name}")  # a submodule, not an attribute

missing = []
for module, names in IMPORTS:
    try:
        resolves(module, names)
    except Exception as e:
        missing.append(f"from {module} import {', '.join(names) or '(module)'}: {type(e).__name__}: {e}")
print("PROBE " + json.dumps({"prefix": sys.prefix, "statelab": statelab.__file__, "missing": missing,
                             "ipywidgets": md.version("ipywidgets"), "jupyterlab": md.version("jupyterlab")}))
"""

RUN_CELL = """\
import sys, nbformat
from nbclient import NotebookClient
out = sys.argv[1]
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sys.stdin.read())])
NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, out)
"""


def notebook_imports() -> list[tuple[str, list[str]]]:
    """Every absolute import in the notebooks' and lab solutions' code cells: (module, names imported from it)."""
    found: dict[str, set[str]] = {}
    paths = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("labs/solutions/*.ipynb")])
    assert len(paths) >= 10, paths
    for path in paths:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
            for node in ast.walk(ast.parse("\n".join(lines), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        found.setdefault(alias.name, set())
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.setdefault(node.module, set()).update(a.name for a in node.names)
    return [(module, sorted(names)) for module, names in sorted(found.items())]


def test_the_notebooks_imports_are_found():
    imports = dict(notebook_imports())
    for module in ("statelab", "statelab.experiments", "ipywidgets"):
        assert any(m == module or m.startswith(module + ".") for m in imports), sorted(imports)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float, stdin: str = "") -> str:
    done = subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{output[-4000:]}")
    return output


class FreshInstall:
    """binder/ installed as repo2docker installs it, into a fresh virtualenv, by a background process.

    It is the slowest single test of the suite (about 75 s and 70 CPU-s alone, mostly pip writing 450 MB), so it
    starts as soon as the tests are collected and runs at a low CPU and disk priority (``nice 10``, ``ionice``
    best-effort 7: the tests' kernels and servers keep theirs), and its test runs last. Under pytest-xdist the
    controller starts it, once, and the worker that runs the test watches its folder (tests/conftest.py), so no
    worker sits waiting on it. The process writes its output to ``output`` and then its exit code to ``rc``, so
    that ``wait()`` works in any process.
    """

    def __init__(self, folder: Path, *, start: bool = True):
        from browser import jupyter_env

        self.folder, self.repo, self.venv = folder, folder / "repo", folder / "venv"
        self.process: subprocess.Popen | None = None
        self.env = jupyter_env(folder / "home")
        for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            self.env.pop(var, None)
        self.env.update(PATH=f"{self.venv / 'bin'}{os.pathsep}{self.env.get('PATH', '')}",
                        PIP_DISABLE_PIP_VERSION_CHECK="1")
        if not start:  # another process started it: only watch
            return
        shutil.copytree(ROOT, self.repo, ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "test-artifacts", "__pycache__", "*.egg-info", ".ipynb_checkpoints", "build",
            "_build"))
        python = self.venv / "bin" / "python"
        # What repo2docker runs, from the repository's root (pip's wheel cache makes this a minute, not five).
        # (--no-compile: no .pyc for thousands of files; byte-compiling is not what the test checks)
        script = (f"{shlex.quote(sys.executable)} -m venv {shlex.quote(str(self.venv))} && "
                  f"{shlex.quote(str(python))} -m pip install -q --no-compile -r binder/requirements.txt")
        if (self.repo / "binder" / "postBuild").exists():
            script += " && bash binder/postBuild"
        rc, output = shlex.quote(str(folder / "rc")), shlex.quote(str(folder / "output"))
        script = f"({script}) > {output} 2>&1; echo $? > {rc}.part && mv {rc}.part {rc}"
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []
        nice += ["ionice", "-c", "2", "-n", "7"] if shutil.which("ionice") else []
        self.process = subprocess.Popen([*nice, "bash", "-c", script], cwd=self.repo, env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)

    def wait(self, timeout: float = 600) -> str:
        """The install's output, once it has finished; a test failure if it failed."""
        rc = self.folder / "rc"
        deadline = time.monotonic() + timeout
        while not rc.exists():
            if self.process is not None and self.process.poll() is not None and not rc.exists():
                pytest.fail(f"the install process ended ({self.process.returncode}) without writing {rc}")
            if time.monotonic() > deadline:
                pytest.fail(f"installing binder/requirements.txt took more than {timeout:.0f} s")
            time.sleep(0.5)
        output = (self.folder / "output").read_text(errors="replace")
        code = int(rc.read_text().strip() or "-1")
        if code != 0:
            pytest.fail(f"installing binder/requirements.txt failed ({code}):\n{output[-4000:]}")
        return output

    def close(self) -> None:
        """Stop the install if it still runs (its whole process group), and remove everything (about 450 MB)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.mark.slow
def test_fresh_binder_environment_starts_a_kernel_that_finds_every_import(fresh_binder_install):
    """Install binder/ as repo2docker does, then start that environment's kernel and resolve every import
    of every notebook and lab in it. No notebook is executed: CI runs each one once, in tests/kernels.py."""
    fresh = fresh_binder_install
    fresh.wait()
    repo, venv, env = fresh.repo, fresh.venv, fresh.env
    python = str(venv / "bin" / "python")
    jupyter = str(venv / "bin" / "jupyter")
    servers = _run([jupyter, "server", "extension", "list"], repo, env, 60)
    assert re.search(r"jupyter_server_proxy\b.*enabled", servers), servers
    labext = _run([jupyter, "labextension", "list"], repo, env, 60)
    assert "@jupyter-widgets/jupyterlab-manager" in labext, labext

    out = fresh.folder / "ran.ipynb"
    imports = notebook_imports()
    _run([python, "-c", RUN_CELL, str(out), str(repo / "notebooks")], repo, env, 240,
         stdin=f"IMPORTS = {imports!r}\n{CHECK}")
    import nbformat

    ran = nbformat.read(out, as_version=4)
    outputs = ran.cells[0].get("outputs", [])
    assert [o for o in outputs if o.output_type == "error"] == [], outputs
    probe = json.loads(re.search(r"PROBE (.*)", "".join(o.get("text", "") for o in outputs)).group(1))
    assert probe["missing"] == [], f"imports the notebooks make that binder/ does not provide: {probe['missing']}"
    assert Path(probe["prefix"]).resolve() == venv.resolve(), f"the kernel ran in {probe['prefix']}, not the venv"
    assert Path(probe["statelab"]).resolve().is_relative_to(repo.resolve()), f"statelab from {probe['statelab']}"
    assert int(probe["ipywidgets"].split(".")[0]) >= 8 and int(probe["jupyterlab"].split(".")[0]) >= 4, probe


def test_readme_tells_instructors_to_launch_a_fixed_version():
    """A class shares one built image only if every launch names the same version, and meets no solution: the
    README's launch link for a class names a student release (tools/make_student_release.py) of this repository
    and opens a notebook that exists. (The link is checked, not the README's wording around it.)"""
    owner, repo = _repository()
    readme = (ROOT / "README.md").read_text()
    fixed = f"https://mybinder.org/v2/gh/{owner}/{repo}/student-<tag>?urlpath=lab/tree/{START}"
    assert fixed in readme, f"README should give the fixed-version launch link {fixed}"
    assert (ROOT / START).is_file(), f"the launch link opens {START}, which does not exist"
