"""The two trees a gate compares: the change (this checkout) and a baseline commit, checked out
in a git worktree under build/bench/trees/<commit>.

The baseline is, in order: the revision given (`--base REV`, `make bench-gate BASE=REV`), the
commit named in `.ci/last-landed` (the last commit that landed on main: the change's own
commits are what is compared), or HEAD~1.

The baseline's worktree gets the change's harness (benchmarks/ and testkit/, copied with their
modification times so that Numba's cache of the harness stays valid between gates): the same
measuring code runs on both products, as airspeed velocity runs today's benchmarks on old
commits. Each tree keeps its own Numba cache beside its own sources, so neither runs the
other's compiled code.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TREES = REPO / "build" / "bench" / "trees"
LANDED = REPO / ".ci" / "last-landed"
HARNESS = ("benchmarks", "testkit")


class GateError(Exception):
    """The gate could not compare; the message is one line for the user."""


def git(*args: str, cwd: Path = REPO) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise GateError(f"git {' '.join(args)}: {(r.stderr.strip().splitlines() or ['failed'])[-1]}")
    return r.stdout.strip()


def default_base() -> tuple[str, str]:
    """(revision, where it came from)."""
    words = LANDED.read_text().split() if LANDED.exists() else []
    if words:
        return words[0], str(LANDED.relative_to(REPO))
    return "HEAD~1", "HEAD~1 (no .ci/last-landed)"


def resolve(rev: str) -> str:
    """The full commit id of rev, or a GateError naming it."""
    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise GateError(f"baseline {rev!r} is not a commit of this repository")
    return r.stdout.strip()


def head() -> str:
    return resolve("HEAD")


def worktree(commit: str) -> Path:
    """A checkout of commit under build/bench/trees/, with the change's harness copied in."""
    path = TREES / commit[:12]
    if path.exists():
        try:
            same = git("rev-parse", "HEAD", cwd=path) == commit
        except GateError:
            same = False
        if not same:
            git("worktree", "remove", "--force", str(path))
    if not path.exists():
        git("worktree", "prune")
        TREES.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "--detach", "--force", str(path), commit)
    for part in HARNESS:
        sync(REPO / part, path / part)
    return path


def sync(src: Path, dst: Path) -> None:
    """Make dst's sources those of src (times kept), leaving dst's __pycache__ folders, where
    the tree's compiled harness is cached, in place."""
    keep = {p.relative_to(src) for p in src.rglob("*") if "__pycache__" not in p.parts}
    if dst.exists():
        for p in sorted(dst.rglob("*"), reverse=True):
            rel = p.relative_to(dst)
            if "__pycache__" in rel.parts or rel in keep:
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for rel in sorted(keep):
        s, d = src / rel, dst / rel
        if s.is_dir():
            d.mkdir(parents=True, exist_ok=True)
        elif not d.exists() or d.stat().st_mtime_ns != s.stat().st_mtime_ns or d.stat().st_size != s.stat().st_size:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


def describe(commit: str) -> str:
    return git("log", "-1", "--format=%h %s", commit)[:90]


# what a run executes: the product and the harness (docs and manifests do not change a figure)
RUNS_CODE = ("engine", "offload", "tickbook", "hdl", "benchmarks", "testkit", "pyproject.toml")


def dirty(paths=RUNS_CODE) -> bool:
    """Uncommitted changes to tracked files under paths (the change's tree is measured as it is
    on disk)."""
    return bool(git("status", "--porcelain", "--untracked-files=no", "--", *paths))
