"""portmargin benchmarks: ``python -m benchmarks`` (or ``make bench``) prints a table and
writes BENCHMARKS.md. Timings are medians over repeats; ratios are against a baseline
measured in the same run. Benchmarks are never unit tests."""
