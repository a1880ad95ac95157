"""The results schema: valid documents load, each kind of damage is refused naming the field."""

from __future__ import annotations

import copy
import json

import pytest
from agrideploy.benchmarks import schema
from conftest import DATA

from agrideploy.errors import AgrideployError

SYNTHETIC = DATA / "results"


@pytest.fixture(scope="module")
def doc():
    return json.loads((SYNTHETIC / "synthetic-cpu.json").read_text())


def test_synthetic_documents_load_from_a_folder():
    docs = schema.load_results([SYNTHETIC])
    assert len(docs) == len(list(SYNTHETIC.glob("*.json"))) >= 3
    assert all(d["schema_version"] == schema.SCHEMA_VERSION for d in docs)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("runs", 0, "precision"), "fp8", "runs[0].precision: 'fp8' is not one of fp32, fp16, int8"),
        (("runs", 0, "latency_ms", "host", "p95"), "fast", "runs[0].latency_ms.host.p95: expected a number, got string"),
        (("runs", 0, "batch"), 1.5, "runs[0].batch: expected an integer, got number"),
        (("runs", 0, "latency_ms", "host", "count"), 999, "runs[0].latency_ms.host.count: 999 but"),
        (("device", "kind"), "tpu", "device.kind: 'tpu' is not one of cpu, gpu, jetson"),
        (("runs", 0, "latency_ms", "host"), None, "runs[0].latency_ms.host: must not be null"),
        (("software",), [], "software: expected an object, got list"),
    ],
)
def test_damage_is_named(doc, path, value, message):
    bad = copy.deepcopy(doc)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(schema.SchemaError) as err:
        schema.validate(bad, where="r.json")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_key_is_named(doc):
    bad = copy.deepcopy(doc)
    del bad["runs"][1]["memory"]["host_peak_rss_bytes"]
    with pytest.raises(schema.SchemaError, match=r"r\.json\.runs\[1\]\.memory\.host_peak_rss_bytes: missing"):
        schema.validate(bad, where="r.json")


def test_versions(doc):
    newer = dict(doc, schema_version=schema.SCHEMA_VERSION + 1)
    with pytest.raises(schema.SchemaError, match="newer than this agrideploy understands"):
        schema.validate(newer)
    with pytest.raises(schema.SchemaError, match="not an agrideploy bench results document"):
        schema.validate(dict(doc, schema="something-else"))


def test_unknown_keys_are_kept(doc):
    extended = copy.deepcopy(doc)
    extended["runs"][0]["future_field"] = {"x": 1}
    assert schema.validate(extended)["runs"][0]["future_field"] == {"x": 1}


def test_load_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AgrideployError, match="broken.json: not valid JSON"):
        schema.load_results([broken])
    with pytest.raises(AgrideployError, match="no such file"):
        schema.load_results([tmp_path / "absent.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AgrideployError, match="no .json results"):
        schema.load_results([tmp_path / "empty"])


def test_write_round_trip_and_refuses_nan(doc, tmp_path):
    out = schema.write_results(doc, tmp_path / "r.json")
    assert schema.load_results([out]) == [doc]
    nan = copy.deepcopy(doc)
    nan["runs"][0]["throughput"]["images_per_s"] = float("nan")
    with pytest.raises(AgrideployError, match="NaN"):
        schema.write_results(nan, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


def test_new_document_fills_header(doc):
    made = schema.new_document(doc["device"], doc["software"], doc["runs"])
    assert made["schema"] == schema.SCHEMA and made["created"].endswith("Z")
    with pytest.raises(schema.SchemaError, match=r"new results\.runs\[0\]\.backend"):
        schema.new_document(doc["device"], doc["software"], [dict(doc["runs"][0], backend="tflite")])
