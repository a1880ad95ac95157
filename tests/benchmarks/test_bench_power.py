"""tegrastats parsing on recorded lines of each Jetson generation; the sampler, nvpmodel and
jetson_clocks readers against fake executables and fake sysfs trees (jtop's way of testing on x86)."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest
from agrideploy.benchmarks import power, tegrastats
from conftest import DATA

LINES = DATA / "tegrastats"


def recorded(name: str) -> str:
    return (LINES / name).read_text().strip()


@pytest.mark.parametrize(
    "name, rails, watts, ram, gpu",
    [
        ("nano_jp4.txt", ["POM_5V_IN"], 2.545, (1766, 3964), 0),
        ("tx2_xavier.txt", ["VDD_IN"], 5.297, (None, None), 0),
        ("xavier_nx_assembled.txt", ["VDD_IN"], 4.532, (2231, 7772), 0),
        ("agx_xavier_jp4.txt", ["CPU", "CV", "GPU", "SOC", "SYS5V", "VDDRQ"], (463 + 618 + 2936 + 0 + 309 + 3306) / 1000,
         (14700, 15692), 0),
        ("orin_nx_jp6.txt", ["VDD_IN"], 3.913, (3162, 7620), 1),
        ("agx_orin_jp6.txt", ["VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0"], (1995 + 0 + 2524) / 1000, (1313, 30697), 0),
        ("thor_assembled.txt", ["VDD_CPU_SOC_MSS", "VDD_GPU", "VIN_SYS_5V0"], (0 + 6510 + 6520) / 1000, (8931, 125772), 0),
    ],
)
def test_module_power_of_each_generation(name, rails, watts, ram, gpu):
    sample = tegrastats.parse_line(recorded(name))
    assert sorted(sample.module_rails()) == rails
    assert sample.module_w() == pytest.approx(watts)
    assert (sample.ram_used_mb, sample.ram_total_mb) == ram
    assert sample.gpu_load_pct == gpu


def test_rails_and_temperatures_in_detail():
    nano = tegrastats.parse_line(recorded("nano_jp4.txt"))
    assert nano.rails_mw == {"POM_5V_IN": (2545, 2547), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (549, 529)}
    assert nano.temps_c == {"PLL": 21.0, "CPU": 25.0}
    orin = tegrastats.parse_line(recorded("orin_nx_jp6.txt"))
    assert orin.rails_mw["VDD_SOC"] == (1238, 1237)  # the mW suffix of JetPack 5+
    assert orin.temps_c == {"cpu": 62.843, "gpu": 61.687, "tj": 62.843}
    tx2 = tegrastats.parse_line(recorded("tx2_xavier.txt"))
    assert set(tx2.rails_mw) == {"VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_IN", "VDD_SYS_CPU", "VDD_SYS_DDR"}
    assert "RAM" not in nano.rails_mw and "SWAP" not in nano.rails_mw  # RAM 1766/3964MB is not a rail


def test_agx_orin_is_never_its_5v_rail_alone_and_vdd_in_wins():
    orin = tegrastats.parse_line(recorded("agx_orin_jp6.txt"))
    assert orin.module_rails() != ["VIN_SYS_5V0"] and orin.module_w() > orin.rails_mw["VIN_SYS_5V0"][0] / 1000
    with_input = tegrastats.parse_line(recorded("agx_orin_jp6.txt") + " VDD_IN 9000mW/9000mW NC 0mW/0mW")
    assert with_input.module_rails() == ["VDD_IN"] and with_input.module_w() == 9.0
    thor = tegrastats.parse_line(recorded("thor_assembled.txt"))
    assert "VIN" in thor.rails_mw and "VIN" not in thor.module_rails()  # the carrier board's input, not the module
    assert tegrastats.parse_line("tegrastats: some warning") is None
    line = recorded("nano_jp4.txt")
    assert tegrastats.parse_lines(["", line, "nothing"]) == [tegrastats.parse_line(line)]


def test_power_block_maths():
    samples = [tegrastats.parse_line(f"VDD_IN {mw}mW/{mw}mW VDD_SOC 1mW/1mW") for mw in (4000, 5000, 6000)]
    block = power.power_block(samples, window_s=2.0, images=40)
    assert block["rail"] == "VDD_IN" and block["rails"] == ["VDD_IN"]
    xavier = power.power_block([tegrastats.parse_line(recorded("agx_xavier_jp4.txt"))], window_s=1.0, images=10)
    assert xavier["rails"] == ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"] and xavier["rail"] == "+".join(xavier["rails"])
    assert xavier["mean_w"] == pytest.approx(7.632)
    assert block["samples_w"] == [4.0, 5.0, 6.0]
    assert block["mean_w"] == pytest.approx(5.0)
    assert block["mj_per_image"] == pytest.approx(5.0 * 2.0 * 1000 / 40)  # 250 mJ
    assert power.power_block([tegrastats.parse_line("RAM 1/2MB")], 1.0, 1) is None
    assert power.power_block(samples, 1.0, 0) is None


def fake_exe(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_sampler_with_fake_tegrastats(tmp_path):
    lines = [recorded("orin_nx_jp6.txt"), recorded("nano_jp4.txt")]
    exe = fake_exe(
        tmp_path, "tegrastats",
        "import sys, time\n"
        "assert sys.argv[1:] == ['--interval', '20'], sys.argv\n"
        f"lines = {lines!r}\n"
        "i = 0\n"
        "while True:\n"
        "    print(lines[i % 2], flush=True); i += 1; time.sleep(0.02)\n",
    )
    sampler = power.TegrastatsSampler(exe, interval_ms=20)
    with sampler:
        start = time.perf_counter()
        deadline = start + 20
        while len(sampler.samples) < 4 and time.perf_counter() < deadline:
            time.sleep(0.01)
        end = time.perf_counter()
    assert len(sampler.samples) >= 4
    assert [line for _, line in sampler.raw[:2]] == lines
    inside = sampler.window(start, end)
    assert 0 < len(inside) <= len(sampler.samples)
    assert {tuple(s.module_rails()) for s in inside} <= {("VDD_IN",), ("POM_5V_IN",)}
    assert sampler.window(end + 100, end + 200) == [] == sampler.raw_window(end + 100, end + 200)
    assert len(sampler.raw_window(start, end)) == len(inside)


def test_sampler_without_tegrastats(tmp_path):
    sampler = power.TegrastatsSampler(str(tmp_path / "absent"))
    assert sampler.start() is False
    sampler.stop()
    assert sampler.samples == []


def test_power_mode_from_fake_nvpmodel(tmp_path):
    exe = fake_exe(tmp_path, "nvpmodel", "import sys\nassert sys.argv[1] == '-q'\nprint('NV Power Mode: MODE_15W_6CORE')\nprint('2')\n")
    assert power.power_mode(exe) == "MODE_15W_6CORE"
    silent = fake_exe(tmp_path, "nvpmodel2", "print('NVPM ERROR: failed to read PARAM')\n")
    assert power.power_mode(silent) is None
    assert power.power_mode(str(tmp_path / "absent")) is None


def make_sysfs(root: Path, cpu_limits, gpu_limits=None, gpu_name="17000000.ga10b"):
    for i, (lo, hi, cur) in enumerate(cpu_limits):
        d = root / "sys" / "devices" / "system" / "cpu" / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_min_freq").write_text(f"{lo}\n")
        (d / "scaling_max_freq").write_text(f"{hi}\n")
        (d / "scaling_cur_freq").write_text(f"{cur}\n")
    if gpu_limits is not None:
        g = root / "sys" / "class" / "devfreq" / gpu_name
        g.mkdir(parents=True)
        for key, value in zip(("min_freq", "max_freq", "cur_freq"), gpu_limits):
            (g / key).write_text(f"{value}\n")
        (root / "sys" / "class" / "devfreq" / "15340000.vic").mkdir()
    return root


def test_jetson_clocks_state_and_clocks(tmp_path):
    pinned = make_sysfs(tmp_path / "on", [(1984000, 1984000, 1984000)] * 2, (1300500000, 1300500000, 1300500000))
    assert power.jetson_clocks_on(pinned) is True
    assert power.clocks(pinned) == {"cpu_mhz": 1984, "gpu_mhz": 1300}
    floating = make_sysfs(tmp_path / "off", [(729600, 1984000, 729600)] * 2, (306000000, 1300500000, 306000000))
    assert power.jetson_clocks_on(floating) is False
    gpu_only_floating = make_sysfs(tmp_path / "gpu", [(1984000, 1984000, 1984000)], (306000000, 1300500000, 306000000))
    assert power.jetson_clocks_on(gpu_only_floating) is False
    assert power.jetson_clocks_on(tmp_path / "empty") is None
    assert power.clocks(tmp_path / "empty") == {}



def test_a_window_shorter_than_the_interval_takes_the_sample_that_closes_it():
    sampler = power.TegrastatsSampler("tegrastats", interval_ms=100)
    first, second = (tegrastats.parse_line(f"VDD_IN {mw}mW/{mw}mW") for mw in (4000, 7000))
    sampler.samples = [(1.0, first), (1.25, second)]
    sampler.raw = [(1.0, "a"), (1.25, "b")]
    assert sampler.window(0.9, 1.1) == [first]  # inside
    assert sampler.window(1.05, 1.2) == [second] and sampler.raw_window(1.05, 1.2) == ["b"]  # arrives 50 ms after
    assert sampler.window(1.05, 1.1) == []  # the next line is more than one interval away
