"""udun benchmarks: `make bench` runs bench/run.py, which prints `name value unit` lines."""
