"""MONAI-style transforms the BraTS bundle needs beyond MONAI's own.

- :class:`CheckCased` stops a case with unusable voxels (NaN/Inf, an all-zero modality, unexpected label values,
  the wrong number of modalities, an image and label of different shapes) with a message that says what is wrong,
  instead of letting it train silently or fail deep inside a later transform.
- :class:`ConvertBratsChannelsToLabels` / :class:`ConvertBratsChannelsToLabelsd` are the inverse of MONAI's
  ``ConvertToMultiChannelBasedOnBratsClasses``: they turn the three binary channels (tumour core, whole tumour,
  enhancing tumour) back into one label map in the dataset's own label convention, for saving predictions.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.transforms import Spacingd as MonaiSpacingd
from monai.utils import convert_to_dst_type

from monai_iunet.brats import BRATS2021, MODALITY_ORDER, LabelConvention
from monai_iunet.brats import label_convention as find_convention
from monai_iunet.brats.case_convention import case_label_convention, check_label_convention
from monai_iunet.data.checks import array_problems
from monai_iunet.errors import UserInputError

__all__ = [
    "Spacingd",
    "CheckCased",
    "CheckCaseD",
    "CheckCaseDict",
    "ConvertBratsChannelsToLabels",
    "ConvertBratsChannelsToLabelsd",
    "ConvertBratsChannelsToLabelsD",
    "ConvertBratsChannelsToLabelsDict",
    "SpacingD",
    "SpacingDict",
]


class CheckCased(MapTransform):
    """Raise a ``ValueError`` naming the problem when a loaded case cannot be used for training or inference.

    Checks, after ``LoadImaged`` with ``ensure_channel_first=True``: the image has ``num_channels`` channels, none of
    which holds NaN/Inf voxels or is all zero; the label (if present) has the image's spatial shape and only the
    values ``label_values`` and 0. The data pass through unchanged. The message names the file from the image's
    metadata; :class:`~monai_iunet.data.CaseDataset` adds the case name and the file of the failing modality.

    Args:
        image_key: key of the image.
        label_key: key of the label; a missing label is allowed (inference).
        num_channels: number of image channels (modalities) the network takes.
        label_values: values the label may hold besides 0.
        channel_names: names of the image channels, for the messages.
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        num_channels: int = 4,
        label_values: Sequence[int] = BRATS2021.values,
        channel_names: Sequence[str] = tuple(m.title for m in MODALITY_ORDER),
    ) -> None:
        super().__init__(keys=(image_key, label_key), allow_missing_keys=True)
        self.image_key = image_key
        self.label_key = label_key
        self.num_channels = num_channels
        self.label_values = tuple(label_values)
        self.channel_names = tuple(channel_names)

    @staticmethod
    def _name(data: NdarrayOrTensor, key: str) -> str:
        meta = getattr(data, "meta", {})
        return str(meta.get("filename_or_obj", key)) or key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        image = d[self.image_key]
        name = self._name(image, self.image_key)
        if image.shape[0] != self.num_channels:
            raise UserInputError(
                f"{name}: the image has {image.shape[0]} channels but the network takes {self.num_channels} "
                f"({', '.join(self.channel_names)}); give every case all modalities, or change the network's "
                "in_channels and num_channels together."
            )
        problems = array_problems(np.asarray(image), name, channel_names=self.channel_names)
        if self.label_key in d:
            label = d[self.label_key]
            label_name = self._name(label, self.label_key)
            if tuple(label.shape[-3:]) != tuple(image.shape[-3:]):
                problems.append(
                    f"{label_name} has spatial shape {tuple(label.shape[-3:])} but the image {tuple(image.shape[-3:])}"
                )
            else:
                check_label_convention(np.asarray(label), self.label_values, label_name)
                problems += array_problems(np.asarray(label), label_name, label_values=self.label_values)
        if problems:
            raise UserInputError("; ".join(problems) + ".")
        return d


class ConvertBratsChannelsToLabels(Transform):
    """Turn binary tumour-core / whole-tumour / enhancing-tumour channels into one BraTS label map.

    The inverse of ``monai.transforms.ConvertToMultiChannelBasedOnBratsClasses``: enhancing tumour where the ET channel
    is set; else necrotic core where TC is set; else edema where WT is set; else background. The label values are
    those of the dataset's convention (:mod:`monai_iunet.brats.labels`; BraTS 2018–2021: 1, 2, 4; BraTS 2023: 1, 2, 3;
    MSD Task01: 2, 1, 3).

    Args:
        necrosis: label value of the necrotic / non-enhancing tumour core.
        edema: label value of the edema.
        enhancing: label value of the enhancing tumour.
        label_convention: a :class:`~monai_iunet.brats.LabelConvention` or the name of one of
            :data:`~monai_iunet.brats.CONVENTIONS`; if given, its values replace the three above.

    Shapes:
        ``(3, *spatial)`` (channels TC, WT, ET; bool or 0/1) → ``(1, *spatial)``.
    """

    def __init__(
        self,
        necrosis: int = BRATS2021.necrosis,
        edema: int = BRATS2021.edema,
        enhancing: int = BRATS2021.enhancing,
        label_convention: str | LabelConvention | None = None,
    ) -> None:
        if label_convention is not None:
            necrosis, edema, enhancing = find_convention(label_convention).values
        self.necrosis = necrosis
        self.edema = edema
        self.enhancing = enhancing

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if img.shape[0] != 3:
            raise ValueError(f"expected 3 channels (TC, WT, ET), got shape {tuple(img.shape)}.")
        x = torch.as_tensor(img) > 0
        out = torch.zeros_like(x[:1], dtype=torch.uint8)
        out[x[1:2]] = self.edema
        out[x[0:1]] = self.necrosis
        out[x[2:3]] = self.enhancing
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class ConvertBratsChannelsToLabelsd(MapTransform):
    """Dictionary-based wrapper of :class:`ConvertBratsChannelsToLabels`.

    Args:
        keys: keys of the items to convert.
        necrosis: label value of the necrotic / non-enhancing tumour core.
        edema: label value of the edema.
        enhancing: label value of the enhancing tumour.
        label_convention: a :class:`~monai_iunet.brats.LabelConvention` or the name of one of
            :data:`~monai_iunet.brats.CONVENTIONS`; if given, its values replace the three above.
            ``"auto"``: the convention of each case, from its image (``image_key``), as training reads that
            case's labels (:func:`~monai_iunet.brats.case_convention.case_label_convention`).
        image_key: the loaded image, for ``"auto"``.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = [torch.Tensor.__name__, np.ndarray.__name__]

    def __init__(
        self,
        keys: KeysCollection,
        necrosis: int = BRATS2021.necrosis,
        edema: int = BRATS2021.edema,
        enhancing: int = BRATS2021.enhancing,
        label_convention: str | LabelConvention | None = None,
        image_key: str = "image",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.auto = str(label_convention).lower() == "auto"
        self.image_key = image_key
        self.converter = ConvertBratsChannelsToLabels(
            necrosis, edema, enhancing, None if self.auto else label_convention
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        converter = self.converter
        if self.auto:
            convention = case_label_convention(d.get(self.image_key))
            converter = ConvertBratsChannelsToLabels(*convention.values)
        for key in self.key_iterator(d):
            d[key] = converter(d[key])
        return d


class Spacingd(MonaiSpacingd):
    """MONAI's ``Spacingd`` that touches only its own keys and their metadata dictionaries.

    MONAI 1.6's ``Spacingd`` updates every entry whose name starts with ``"<key>_"`` as a metadata dictionary, so
    a string such as MONAI Label's ``image_path`` beside ``image`` fails with ``'str' object has no attribute
    'update'``. This one sets such entries (anything that is not a dictionary) aside while MONAI's transform runs
    and puts them back unchanged; everything else, inversion included, is MONAI's.
    """

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor], lazy: bool | None = None) -> dict:
        d = dict(data)
        prefixes = tuple(f"{key}_" for key in self.keys)
        aside = {
            k: d.pop(k)
            for k, v in data.items()
            if isinstance(k, str) and k.startswith(prefixes) and not isinstance(v, Mapping)
        }
        out = super().__call__(d, lazy=lazy)
        out.update(aside)
        return out


SpacingD = SpacingDict = Spacingd
CheckCaseD = CheckCaseDict = CheckCased
ConvertBratsChannelsToLabelsD = ConvertBratsChannelsToLabelsDict = ConvertBratsChannelsToLabelsd
