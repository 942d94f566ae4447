"""tools/make_student_release.py: the branch a class launches has every student lab and no solution, and its
history does not lead back to the solutions; the repository's own branch keeps them (self-study)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "make_student_release.py"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def course(tmp_path) -> Path:
    repo = tmp_path / "course"
    for name in ("labs/01_survive_a_crash.ipynb", "labs/solutions/01_survive_a_crash.ipynb",
                 "notebooks/00_start_here.ipynb", "README.md"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("{}")
    git(repo.parent, "init", "-q", str(repo))
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "course")
    git(repo, "tag", "v9.9.9")
    return repo


def test_a_student_release_has_the_labs_without_solutions_or_their_history(course):
    done = subprocess.run([sys.executable, str(TOOL), "v9.9.9", "--repo", str(course)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = git(course, "ls-tree", "-r", "--name-only", "student-v9.9.9").split()
    assert "labs/01_survive_a_crash.ipynb" in names and "notebooks/00_start_here.ipynb" in names
    assert not [n for n in names if "solutions" in n]
    assert git(course, "rev-list", "--count", "student-v9.9.9").strip() == "1"
    assert "labs/solutions/01_survive_a_crash.ipynb" in git(course, "ls-tree", "-r", "--name-only", "v9.9.9")
    check = subprocess.run([sys.executable, str(TOOL), "--check", "student-v9.9.9", "--repo", str(course)])
    assert check.returncode == 0


def test_the_check_refuses_a_branch_with_solutions(course):
    done = subprocess.run([sys.executable, str(TOOL), "--check", "v9.9.9", "--repo", str(course)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "is a solution" in done.stdout
