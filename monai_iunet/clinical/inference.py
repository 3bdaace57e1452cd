"""Running a bundle's own network, preprocessing, inferer and postprocessing on registered series.

Nothing of the bundle is copied here: :class:`BundleSegmenter` reads ``configs/inference.json`` with
:class:`monai.bundle.ConfigParser` and instantiates its ``network_def``, ``preprocessing``, ``inferer`` and
``postprocessing`` (dropping only the postprocessing's ``SaveImaged``, since the pipeline writes its own outputs,
and giving ``datalist`` the channel names and label values, since there is no dataset folder here). The channel
order is the bundle's (``metadata.json`` → ``network_data_format.inputs.image.channel_def``), the label convention
of the label maps too (its ``label_convention``; :data:`~monai_iunet.brats.BRATS2021` where it names none or
``"auto"``, which follows a datastore and a study has none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_iunet.brats import BRATS2021, MODALITY_ORDER, LabelConvention, label_convention
from monai_iunet.bundle.checkpoints import load_model_weights
from monai_iunet.errors import InputNotFoundError

__all__ = ["BundleSegmenter"]


class BundleSegmenter:
    """A bundle's trained network and its inference chain, applied to one case given as per-modality image files.

    Args:
        bundle: the bundle folder (with ``configs/inference.json`` and ``models/model.pt``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; default: the bundle's own choice.
        checkpoint: the weights (default ``<bundle>/models/model.pt``).
        config_file: the inference config, relative to the bundle (default ``configs/inference.json``).
        overrides: further config values, ``{"inferer#overlap": 0.25, ...}``.

    Raises:
        FileNotFoundError: no config or no trained weights in the bundle.
    """

    def __init__(
        self,
        bundle: str | os.PathLike,
        device: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        config_file: str = "configs/inference.json",
        overrides: Mapping[str, object] | None = None,
    ) -> None:
        self.bundle = Path(bundle)
        config = self.bundle / config_file
        self.checkpoint = Path(checkpoint) if checkpoint is not None else self.bundle / "models" / "model.pt"
        if not config.is_file():
            raise InputNotFoundError(f"bundle {self.bundle}: no {config_file}; give the folder of a MONAI bundle.")
        if not self.checkpoint.is_file():
            raise InputNotFoundError(
                f"bundle {self.bundle}: no trained weights at {self.checkpoint}; train the bundle first (README, "
                "command 1, in a clone; or `monai-iunet bundle copy brats_iunet DIR`, train it there and pass "
                "--bundle DIR) or give the weights."
            )
        self.channels = self._channel_names()
        parser = ConfigParser()
        parser.read_config(str(config))
        parser["bundle_root"] = str(self.bundle)
        if device is not None:
            parser["device"] = f"$torch.device({device!r})"
            parser["amp"] = device.startswith("cuda")
        post = parser["postprocessing"]
        post["transforms"] = [t for t in post["transforms"] if not str(t.get("_target_", "")).endswith("SaveImaged")]
        overrides = dict(overrides or {})
        name = str(overrides.get("label_convention", parser.get("label_convention", BRATS2021.name)))
        # "auto" follows a datastore's own convention; a scanner study has none: BraTS 2018-2021 labels
        self.labels: LabelConvention = label_convention(BRATS2021.name if name.lower() == "auto" else name)
        parser["label_convention"] = self.labels.name
        parser["datalist"] = {
            "modalities": list(self.channels),
            "labels": {str(part): value for part, value in self.labels.part_values.items()},
        }
        for key, value in overrides.items():
            parser[key] = value
        self.device = parser.get_parsed_content("device")
        self.amp = bool(parser.get_parsed_content("amp"))
        self.network = parser.get_parsed_content("network")
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.inferer = parser.get_parsed_content("inferer")
        self.postprocessing = parser.get_parsed_content("postprocessing")
        load_model_weights(self.network, self.checkpoint, map_location=self.device)
        self.network.eval()

    def _channel_names(self) -> tuple[str, ...]:
        """Modality names in the network's channel order, lower-case (``("flair", "t1", "t1ce", "t2")``)."""
        metadata = self.bundle / "configs" / "metadata.json"
        default = tuple(str(m) for m in MODALITY_ORDER)
        if not metadata.is_file():
            return default
        channel_def = (
            json.loads(metadata.read_text())
            .get("network_data_format", {})
            .get("inputs", {})
            .get("image", {})
            .get("channel_def", {})
        )
        names = tuple(str(channel_def[k]).lower() for k in sorted(channel_def, key=int))
        return names or default

    def __call__(self, files: Mapping[str, str] | Sequence[str]) -> np.ndarray:
        """Segment one case.

        Args:
            files: one image file per modality (all on one grid), by name (``{"t1ce": ...}``) or in channel order.

        Returns:
            the label map on the files' grid, in the files' voxel order ``(x, y, z)`` (as nibabel reads them),
            uint8, in the bundle's label convention :attr:`labels` (BraTS 2018–2021: 1 necrosis, 2 edema, 4 enhancing).
        """
        if isinstance(files, Mapping):
            files = [str(files[name]) for name in self.channels]
        data = self.preprocessing({"image": list(files)})
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.amp):
            pred = self.inferer(data["image"][None].to(self.device), self.network)
        data["pred"] = pred[0].float().cpu()
        data = self.postprocessing(data)
        return np.asarray(data["pred"]).squeeze(0).astype(np.uint8)
