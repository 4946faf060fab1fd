"""The benchmarks' shared helpers."""

from __future__ import annotations

from pathlib import Path

from bench.common import cpu_model, machine


def test_cpu_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n"
    )
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Processor"


def test_cpu_model_without_cpuinfo_is_still_a_name(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "absent")


def test_reports_name_this_machines_cpu() -> None:
    assert cpu_model() in machine()
