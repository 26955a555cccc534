"""The latency gate: the change and a baseline commit measured side by side, interleaved, in one
run (cli: run, prove, calibrate, report). docs/benchmarks.md#the-gate."""
