"""Benchmark scripts run as modules (python -m agrideploy.benchmarks.scripts.<name>)."""
