"""Make a student release: a branch ``student-<ref>`` holding the course at ``<ref>`` without the lab solutions.

The repository keeps ``labs/solutions/`` for self-study (and nbgrader). A class usually wants learners not to find
them one click away, so the class routes start from a student release instead:

- Binder: launch ``.../v2/gh/<owner>/statelab/student-<tag>?urlpath=...`` (README, "For instructors");
- one machine (``classroom/jupyterhub_config.py``): ``git checkout student-<tag>`` in ``/srv/statelab``;
- Kubernetes (``classroom/zero-to-jupyterhub/``): build the image with repo2docker from ``student-<tag>``, or pull
  it into learners' homes with the nbgitpuller link there.

The branch is one commit with no parent: its history does not lead back to the solutions (a learner with a
terminal on Binder sees the repository's ``.git``). Nothing else changes, so every notebook and lab opens as on
``main``. Run it from a clone, then push the branch:

    python tools/make_student_release.py v0.1.0          # makes branch student-v0.1.0 from tag v0.1.0
    git push origin student-v0.1.0

``--check BRANCH`` verifies an existing release (no solutions, every student lab present).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SOLUTIONS = "labs/solutions"


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def files(repo: Path, ref: str) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", ref).splitlines()


def make(repo: Path, ref: str, branch: str | None = None) -> str:
    """Create (or move) ``branch`` (default ``student-<ref>``) to a parentless commit of ``ref`` minus the
    solutions; returns the branch name."""
    branch = branch or f"student-{ref}"
    commit = git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GIT_INDEX_FILE=str(Path(tmp) / "index"))
        git(repo, "read-tree", commit, env=env)
        git(repo, "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", SOLUTIONS, env=env)
        tree = git(repo, "write-tree", env=env)
    message = (f"Student release of {ref} ({commit[:12]}): the course without {SOLUTIONS}/\n\n"
               f"Made by tools/make_student_release.py. The solutions stay in the repository at {ref}.")
    release = git(repo, "commit-tree", tree, "-m", message)
    git(repo, "branch", "--force", branch, release)
    return branch


def check(repo: Path, branch: str) -> list[str]:
    """Problems with a student release (empty: fine)."""
    names = files(repo, branch)
    problems = [f"{n} is a solution" for n in names if n.startswith(SOLUTIONS + "/")]
    labs = [n for n in names if n.startswith("labs/") and n.endswith(".ipynb")]
    if not labs:
        problems.append("no student lab in labs/")
    if git(repo, "rev-list", "--count", branch) != "1":
        problems.append("its history leads back to commits with solutions")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", nargs="?", help="the tag or commit to release (e.g. v0.1.0)")
    parser.add_argument("--branch", help="the branch to write (default: student-<ref>)")
    parser.add_argument("--check", metavar="BRANCH", help="verify an existing student release")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    if args.check:
        problems = check(args.repo, args.check)
        print("\n".join(problems) or f"{args.check}: a student release (no solutions)")
        return 1 if problems else 0
    if not args.ref:
        parser.error("give the tag or commit to release")
    branch = make(args.repo, args.ref, args.branch)
    print(f"made {branch}: push it with `git push origin {branch}`")
    return 0 if not check(args.repo, branch) else 1


if __name__ == "__main__":
    sys.exit(main())
