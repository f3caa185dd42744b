"""The bottom layer: the shared vocabulary and records (precision, guard mode, backend and
status enums; the problem; Candidate, Task, the run's state and Result; EvalResult). Every
other layer imports it; it imports nothing else of kernelwright."""

VERSION = "0.1.0"
