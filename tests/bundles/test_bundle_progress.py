"""Progress of bundle runs: the run's bar (RunProgressBar), inference case by case, the first line of ``run``."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

from ignite.engine import Engine, Events

from monai_iunet.bundle import RunProgressBar, infer_case_by_case
from monai_iunet.cli import main
from monai_iunet.progress import PROGRESS_ENV

ETA = r"\[\d\d:\d\d<\d\d:\d\d"  # tqdm's [elapsed<remaining]: the time left


def _trainer(epoch_length: int = 3) -> Engine:
    engine = Engine(lambda engine, batch: [{"loss": 0.25}])  # MONAI's output: one dict per sample
    engine.state.epoch_length = epoch_length
    return engine


def test_training_bar_counts_the_whole_run_with_epoch_and_loss(capsys, progress_drawn):
    trainer = _trainer()
    RunProgressBar(desc="train", unit="batch").attach(trainer)
    trainer.run(range(3), max_epochs=2)
    err = capsys.readouterr().err
    assert re.search(rf"train: .*6/6 {ETA}.*(batch/s|s/batch), epoch 2/2, loss 0.2500", err)  # one bar over both epochs
    assert re.search(rf"train: .*3/6 {ETA}.*epoch 1/2", err)


def test_a_resumed_run_counts_what_is_left(capsys, progress_drawn):
    trainer = _trainer()
    trainer.load_state_dict({"epoch": 1, "max_epochs": 3, "epoch_length": 3})
    RunProgressBar(desc="train").attach(trainer)
    trainer.run(range(3))
    err = capsys.readouterr().err
    assert re.search(rf"6/6 {ETA}.*epoch 3/3", err) and "/9" not in err


def test_no_bar_and_no_handler_where_stderr_is_no_terminal(capsys):  # pytest's stderr is no terminal
    trainer = _trainer()
    bar = RunProgressBar(desc="train")
    bar.attach(trainer)
    assert not trainer.has_event_handler(bar._open, Events.STARTED)
    trainer.run(range(3), max_epochs=2)
    assert capsys.readouterr().err == ""


class _Evaluator:
    """What infer_case_by_case uses of a MONAI evaluator: set_data, state, run, logger."""

    def __init__(self) -> None:
        self.state = SimpleNamespace(epoch_length=None)
        self.logger = logging.getLogger("test_bundle_progress.evaluator")
        self.cases: list[int] = []

    def set_data(self, loader) -> None:
        self.loader = loader

    def run(self) -> None:
        self.cases += [int(item) for item in self.loader]


def test_inference_shows_a_bar_over_the_cases(capsys, monkeypatch):
    evaluator = _Evaluator()
    assert infer_case_by_case(evaluator, [10, 11, 12]) == [] and evaluator.cases == [10, 11, 12]
    assert capsys.readouterr().err == ""  # no terminal: no bar
    monkeypatch.setenv(PROGRESS_ENV, "on")
    infer_case_by_case(_Evaluator(), [10, 11, 12])
    assert re.search(rf"infer: .*3/3 {ETA}.*(case/s|s/case)", capsys.readouterr().err)


def test_run_says_what_it_loads_before_loading_it(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"run": ["$print(\'ran\')"]}')
    assert main(["run", "--config_file", str(config)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("monai-iunet run run: loading PyTorch, MONAI and the bundle's configs") and "ran" in out
