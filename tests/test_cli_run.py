"""``monai-iunet run``: MONAI's bundle runner, with our errors in a line or two and everything else as a traceback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle.scripts import run as monai_run
from torch.utils.data import DataLoader, Dataset

from monai_iunet.cli import build_parser, main
from monai_iunet.data.checks import BrokenCaseError
from monai_iunet.errors import InputNotFoundError, OutputExistsError, UserInputError, find_user_error, user_message

# MONAI warns that a config is code every time one is parsed (explained in the README); these configs are ours
pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

REPO = Path(__file__).resolve().parents[1]
BRATS = REPO / "bundles" / "brats_iunet"


def _chain(inner: BaseException, *outer: BaseException, cause: bool = True) -> BaseException:
    """``inner`` wrapped by each of ``outer`` in turn, as ``raise outer from inner`` (or during handling) does."""
    error = inner
    for wrapper in outer:
        if cause:
            wrapper.__cause__ = error
        else:
            wrapper.__context__ = error
        error = wrapper
    return error


def _write_config(folder: Path, **items) -> str:
    config = {"imports": ["$import monai_iunet.data"], **items}
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_errors_keep_their_builtin_types():
    assert issubclass(UserInputError, ValueError)
    assert issubclass(InputNotFoundError, FileNotFoundError) and issubclass(InputNotFoundError, UserInputError)
    assert issubclass(OutputExistsError, FileExistsError) and issubclass(OutputExistsError, UserInputError)


@pytest.mark.parametrize("cause", [True, False])
def test_find_user_error_follows_monai_wrappers(cause):
    ours = InputNotFoundError("dataset folder 'x' does not exist")
    assert find_user_error(ours) is ours
    wrapped = _chain(
        ours, RuntimeError("applying transform"), RuntimeError("Failed to instantiate component"), cause=cause
    )
    assert find_user_error(wrapped) is ours


def test_find_user_error_ignores_other_errors():
    assert find_user_error(ValueError("not ours")) is None
    assert find_user_error(_chain(ValueError("not ours"), RuntimeError("Failed to instantiate component"))) is None
    # a bug raised while handling one of our errors is not hidden behind it
    assert find_user_error(_chain(UserInputError("ours"), KeyError("bug"), RuntimeError("wrapper"))) is None
    assert find_user_error(RuntimeError("no cause")) is None


class _Broken(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise BrokenCaseError("case 7: its FLAIR holds NaN voxels\nFix the file.")


def test_user_message_of_an_error_from_a_dataloader_worker():
    with pytest.raises(BrokenCaseError) as info:
        next(iter(DataLoader(_Broken(), num_workers=1)))
    assert "Original Traceback" in str(info.value)  # torch puts the worker's traceback into the message
    assert user_message(info.value) == "case 7: its FLAIR holds NaN voxels\nFix the file."
    assert user_message(UserInputError("plain")) == "plain"


def test_run_parser_passes_every_argument_through():
    argv = ["run", "train", "--config_file", "['a.json','b.json']", "--epochs", "2", "--help", "-h"]
    args = build_parser().parse_args(argv)
    assert args.command == "run" and args.args == argv[1:]
    assert build_parser().parse_args(["run", "--config_file", "a.json"]).args == ["--config_file", "a.json"]


def test_run_prints_our_error_in_two_lines(tmp_path, capsys):
    missing = tmp_path / "missing"
    config = _write_config(
        tmp_path,
        dataset_dir="/not/this/one",
        datalist={"_target_": "monai_iunet.data.build_datalist", "dataset_dir": "@dataset_dir"},
        run=["$@datalist"],
    )
    # the override reaches the config exactly as with `python -m monai.bundle run`
    assert main(["run", "--config_file", config, "--dataset_dir", str(missing)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    error_lines = lines[next(i for i, line in enumerate(lines) if "error:" in line) :]
    assert len(error_lines) <= 2, lines
    assert str(missing) in error_lines[0] and "does not exist" in error_lines[0]
    assert not any("Traceback" in line for line in lines)
    # MONAI's own runner is unchanged: the same run raises its wrapper, with our error in the chain
    with pytest.raises(RuntimeError, match="Failed to instantiate") as info:
        monai_run(config_file=config, dataset_dir=str(missing))
    assert isinstance(find_user_error(info.value), InputNotFoundError)


def test_errors_in_an_engine_are_logged_without_traceback(tmp_path, caplog):
    """Ignite and MONAI's ``StatsHandler`` log an exception in ``engine.run()``; ours keep their message only."""
    config = _write_config(
        tmp_path,
        imports=["$from monai_iunet.data.layouts import find_cases"],
        engine={
            "_target_": "ignite.engine.Engine",
            "process_function": f"$lambda engine, batch, find=find_cases: find({str(tmp_path / 'gone')!r})",
        },
        stats={"_target_": "StatsHandler", "name": "StatsHandler"},
        run=["$@stats.attach(@engine)", "$@engine.run([0, 1])"],
    )
    factory = logging.getLogRecordFactory()
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--config_file", config]) == 2
    logged = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert logged and all(r.exc_info is None for r in logged)
    assert logging.getLogRecordFactory() is factory


def test_run_keeps_the_traceback_of_unexpected_errors(tmp_path, capsys):
    config = _write_config(tmp_path, run=["$int('not a number')"])
    assert main(["run", "--config_file", config]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "invalid literal for int()" in err


def test_run_succeeds_and_help_is_monai_s(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    config = _write_config(tmp_path, out=str(marker), run=["$open(@out, 'w').write(str(@epochs))"], epochs=1)
    assert main(["run", "--config_file", config, "--epochs", "3"]) == 0
    assert marker.read_text() == "3"
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    help_text = "".join(capsys.readouterr())
    assert "config_file" in help_text and "override" in help_text


def test_bundle_with_missing_dataset_folder_exits_2(tmp_path):
    """The real BraTS bundle, run as a user runs it: the sentence, not MONAI's 60-line traceback."""
    missing = tmp_path / "no_such_dataset"
    command = [sys.executable, "-m", "monai_iunet.cli", "run"]
    command += ["--config_file", str(BRATS / "configs" / "inference.json"), "--bundle_root", str(BRATS)]
    command += ["--dataset_dir", str(missing), "--output_dir", str(tmp_path / "predictions")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    error_lines = lines[next(i for i, line in enumerate(lines) if line.startswith("monai-iunet run: error:")) :]
    assert len(error_lines) <= 2 and str(missing) in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr and "Failed to instantiate" not in result.stderr
    assert not (tmp_path / "predictions").exists()
