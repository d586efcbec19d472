"""`python -m benchmarks run` options: `--persons` takes the person-growth curve's points."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.run import main, person_points


def test_person_points_are_ascending_positive_counts():
    assert person_points("10000,100000,1000000,10000000") == (10_000, 100_000, 1_000_000, 10_000_000)
    assert person_points("10_000,1_000_000") == (10_000, 1_000_000)
    assert person_points("5") == (5,)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "whole numbers"),
        ("10k,100k", "whole numbers"),
        ("1000,,2000", "whole numbers"),
        ("1.5", "whole numbers"),
        ("0,1000", "positive"),
        ("-5", "positive"),
        ("100000,10000", "ascending"),
        ("1000,1000", "ascending"),
    ],
)
def test_malformed_person_points_are_refused_with_the_reason(text, says):
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        person_points(text)


def test_the_command_refuses_bad_points_before_starting_anything(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--quick", "--persons", "100000,10000"])
    assert exit_.value.code == 2
    assert "ascending" in capsys.readouterr().err
