"""engine/jitcache.py: a caller that inlines the matcher loses its Numba cache when the
engine's hot-path sources change, and only then."""

from engine import jitcache


class _FakeDispatcher:
    class _Cache:
        def __init__(self, path):
            self.flushes = 0
            self._cache_path = str(path)  # Numba's locator's choice

        def flush(self):
            self.flushes += 1

    def __init__(self, cache_dir):
        self._cache = self._Cache(cache_dir)


def test_flushes_once_per_change_of_the_engine_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(jitcache, "ENGINE_DIR", tmp_path)
    matcher = tmp_path / "matcher.py"
    matcher.write_text("v = 1\n")
    d = _FakeDispatcher(tmp_path / "cache")

    def check():
        jitcache._checked.discard("fn")  # a new process
        assert jitcache.flush_if_engine_changed(d, "fn") is d
        return d._cache.flushes

    assert check() == 1  # no stamp yet: the cache may predate it
    assert check() == 1  # same sources: the cache stands
    matcher.write_text("v = 2\n")
    assert check() == 2
    assert check() == 2
    assert (tmp_path / "cache" / "fn.engine.stamp").read_text() == jitcache.engine_stamp()


def test_the_engine_flushes_its_own_functions_when_another_engine_file_changes(tmp_path, monkeypatch):
    """process_batch (matcher.py) holds book.py's helpers: an edit of book.py alone must
    drop its cache too, not only the caches of callers in other parts."""
    import types

    monkeypatch.setattr(jitcache, "ENGINE_DIR", tmp_path)
    (tmp_path / "book.py").write_text("v = 1\n")
    mod = types.ModuleType("fake_engine_module")
    d = _FakeDispatcher(tmp_path / "cache")
    d.py_func = types.SimpleNamespace(__module__="fake_engine_module")
    mod.fn = d
    mod.imported = _FakeDispatcher(tmp_path / "cache")  # defined elsewhere: its own module flushes it
    mod.imported.py_func = types.SimpleNamespace(__module__="elsewhere")

    def check():
        jitcache._checked.discard("engine")
        jitcache.flush_engine_if_changed([mod])
        return d._cache.flushes, mod.imported._cache.flushes

    assert check() == (1, 0)
    assert check() == (1, 0)
    (tmp_path / "book.py").write_text("v = 2\n")
    assert check() == (2, 0)


def test_a_read_only_install_keeps_its_cache_warm_in_numba_cache_dir(tmp_path, monkeypatch):
    """The image's site-packages is read-only and NUMBA_CACHE_DIR is a volume: the stamp goes
    beside the cache, so the second start of the same sources flushes nothing (the pod's warm
    restart, tests/test_pod_rehearsal.py)."""
    import numba

    install = tmp_path / "site-packages" / "engine"
    install.mkdir(parents=True)
    (install / "matcher.py").write_text("v = 1\n")
    install.chmod(0o555)  # root ignores it, but nothing may try: the stamp must not be written here
    monkeypatch.setattr(jitcache, "ENGINE_DIR", install)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "volume"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "volume"))

    @numba.njit(cache=True)
    def f(x):
        return x + 1

    cache_dir = jitcache._cache_dir(f)
    assert cache_dir.is_relative_to(tmp_path / "volume")
    flushes = []
    monkeypatch.setattr(jitcache, "_flush", flushes.append)
    for start in range(3):
        jitcache._checked.discard("warm")
        jitcache.flush_if_engine_changed(f, "warm")
    assert flushes == [f]  # the first start only
    assert (cache_dir / "warm.engine.stamp").exists()
    assert not (install / "__pycache__").exists()


def test_a_cache_folder_that_cannot_be_written_is_one_line_at_the_command_line(tmp_path):
    """Numba raises at import when no cache folder is writable; the CLI says so first."""
    import subprocess
    import sys

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(blocked / "numba")}
    r = subprocess.run([sys.executable, "-m", "tickbook", "engine", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr == f"tickbook: NUMBA_CACHE_DIR={blocked / 'numba'} is not writable (Not a directory): Numba " \
                       "keeps compiled code there; point it at a writable folder (in a pod, a volume)\n"
