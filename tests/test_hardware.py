"""Reading the CPU: model name and flags from /proc/cpuinfo, and sane answers where there is none."""

from __future__ import annotations

from e5kit import hardware


def test_parse_takes_the_first_processor():
    text = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu amx_bf16 avx512f\n\n"
            "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n")
    model, flags = hardware.parse_cpuinfo(text)
    assert model == "Intel(R) Xeon(R) Processor" and flags == {"fpu", "amx_bf16", "avx512f"}


def test_parse_of_nothing_or_garbage():
    assert hardware.parse_cpuinfo("") == ("", frozenset())
    assert hardware.parse_cpuinfo("\x00\x01 no colon here\n:::\n") == ("", frozenset())


def test_this_machine_has_a_model_and_a_set_of_flags():
    model, flags = hardware.cpu()
    assert isinstance(model, str) and model
    assert isinstance(flags, frozenset) and hardware.cpu_flags() == flags
