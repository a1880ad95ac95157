"""agrideploy.benchmarks: measuring (bench, latency, memory, power, accuracy, device) and reporting.

`bench` turns models into one results document (schema: `schema`, documented in
docs/results-schema.md); `report` turns any number of documents into the report people read.
Nothing heavy is imported here: each module imports what it needs when it is used.
"""
