from bnbench.cli import main
from bnbench.harness.records import read_records


def test_run_prints_table_and_writes_records(tmp_path, capsys):
    output = tmp_path / "run.jsonl"
    code = main(
        ["run", "-n", "asia", "-N", "10", "100", "-e", "mle", "-e", "oracle", "-e", "pgmpy-mle", "--seeds", "0",
         "--episodes", "2", "--test-rows", "20", "--generated-rows", "50", "--no-memory", "--no-progress", "-o", str(output)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "| network" in printed
    assert "KL (nats)" in printed
    assert "fit (ms)" in printed
    for name in ("mle", "oracle", "pgmpy-mle"):
        assert f"| {name}" in printed
    assert len(read_records(output)) == 6
    assert "6 cells ok" in printed


def test_rerun_reports_resumed_cells(tmp_path, capsys):
    arguments = ["run", "-n", "cancer", "-N", "5", "-e", "mle", "--seeds", "0", "--episodes", "1", "--test-rows", "5",
                 "--generated-rows", "5", "--no-memory", "--no-progress", "-o", str(tmp_path / "r.jsonl")]
    assert main(arguments) == 0
    capsys.readouterr()
    assert main(arguments) == 0
    assert "1 already finished" in capsys.readouterr().out


def test_unknown_network_exits_with_message(tmp_path, capsys):
    code = main(["run", "-n", "asai", "--no-progress", "-o", str(tmp_path / "r.jsonl")])
    error = capsys.readouterr().err
    assert code == 2
    assert "unknown network 'asai'" in error
    assert "'asia'" in error


def test_list_estimators(capsys):
    assert main(["list", "estimators"]) == 0
    printed = capsys.readouterr().out
    for name in ("mle", "oracle", "pgmpy-mle"):
        assert name in printed


def test_report_formats(tmp_path, capsys):
    output = tmp_path / "r.jsonl"
    main(["run", "-n", "cancer", "-N", "5", "-e", "mle", "--seeds", "0", "--episodes", "1", "--test-rows", "5",
          "--generated-rows", "5", "--no-memory", "--no-progress", "-o", str(output)])
    capsys.readouterr()
    assert main(["report", str(output), "--format", "csv"]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.splitlines()[0].startswith("network,tables,task,N,estimator")
    assert main(["report", str(output), "--format", "latex"]) == 0
    assert "\\toprule" in capsys.readouterr().out


def test_report_of_missing_file(tmp_path, capsys):
    assert main(["report", str(tmp_path / "absent.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err
