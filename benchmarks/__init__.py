"""agrideploy.benchmarks"""
