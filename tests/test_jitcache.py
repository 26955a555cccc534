"""engine/jitcache.py: a caller that inlines the matcher loses its Numba cache when the
engine's hot-path sources change, and only then."""

from engine import jitcache


class _FakeDispatcher:
    class _Cache:
        def __init__(self):
            self.flushes = 0

        def flush(self):
            self.flushes += 1

    def __init__(self):
        self._cache = self._Cache()


def test_flushes_once_per_change_of_the_engine_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(jitcache, "ENGINE_DIR", tmp_path)
    matcher = tmp_path / "matcher.py"
    matcher.write_text("v = 1\n")
    d = _FakeDispatcher()

    def check():
        jitcache._checked.discard("fn")  # a new process
        assert jitcache.flush_if_engine_changed(d, "fn") is d
        return d._cache.flushes

    assert check() == 1  # no stamp yet: the cache may predate it
    assert check() == 1  # same sources: the cache stands
    matcher.write_text("v = 2\n")
    assert check() == 2
    assert check() == 2
    assert (tmp_path / "__pycache__" / "fn.engine.stamp").read_text() == jitcache.engine_stamp()


def test_the_engine_flushes_its_own_functions_when_another_engine_file_changes(tmp_path, monkeypatch):
    """process_batch (matcher.py) holds book.py's helpers: an edit of book.py alone must
    drop its cache too, not only the caches of callers in other parts."""
    import types

    monkeypatch.setattr(jitcache, "ENGINE_DIR", tmp_path)
    (tmp_path / "book.py").write_text("v = 1\n")
    mod = types.ModuleType("fake_engine_module")
    d = _FakeDispatcher()
    d.py_func = types.SimpleNamespace(__module__="fake_engine_module")
    mod.fn = d
    mod.imported = _FakeDispatcher()  # defined elsewhere: its own module flushes it
    mod.imported.py_func = types.SimpleNamespace(__module__="elsewhere")

    def check():
        jitcache._checked.discard("engine")
        jitcache.flush_engine_if_changed([mod])
        return d._cache.flushes, mod.imported._cache.flushes

    assert check() == (1, 0)
    assert check() == (1, 0)
    (tmp_path / "book.py").write_text("v = 2\n")
    assert check() == (2, 0)
