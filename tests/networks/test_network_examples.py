"""The ``Examples::`` of the public layers and networks run as written and print what they say (doctest)."""

import doctest
import inspect
import re

import pytest
import torch

from monai_iunet import InvertibleChannelMixing, InvertibleDownsampling, InvertibleUNet, InvertibleUpsampling, IUNet


@pytest.mark.parametrize("obj", [InvertibleDownsampling, InvertibleChannelMixing, InvertibleUNet, IUNet])
def test_class_docstring_examples_run(obj):
    tests = doctest.DocTestFinder(recurse=False).find(obj, globs={"torch": torch, obj.__name__: obj})
    assert len(tests) == 1 and tests[0].examples, f"{obj.__name__} has no Examples:: to run"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    result = runner.run(tests[0], out=print)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {obj.__name__} failed (see output)"


@pytest.mark.parametrize(
    "obj", [InvertibleDownsampling, InvertibleUpsampling, InvertibleChannelMixing, InvertibleUNet, IUNet]
)
def test_args_section_lists_every_argument(obj):
    doc = inspect.getdoc(obj)
    args = doc.split("Args:")[1].split("\n\n")[0]
    documented = set(re.findall(r"^    (\w+):", args, flags=re.MULTILINE))
    expected = set(inspect.signature(obj.__init__).parameters) - {"self"}
    assert documented == expected, (
        f"{obj.__name__}: undocumented {expected - documented}, stale {documented - expected}"
    )
