"""MONAI Deploy App SDK application: a folder of DICOM files of one MR study in, a brain-tumour segmentation out.

The graph::

    DICOMDataLoaderOperator ─► DICOMSeriesSelectorOperator ─► BratsIUNetSegmentOperator
      (all studies/series         (T1, T1ce, T2, FLAIR by           (monai_iunet.clinical.segment: register to
       in the input folder)        rules on SeriesDescription)        the T1ce, run the bundle, write the results)

The last operator calls the same library function as ``monai-iunet segment``, so the app writes what the command
writes, on the T1ce series' grid: ``segmentation.dcm`` (DICOM-SEG referencing the T1ce instances),
``segmentation.nii.gz``, ``report.json`` and ``overview.png``.

Run locally::

    python apps/brats_iunet_seg/app.py -i DICOM_DIR -o OUT

The bundle (with trained ``models/model.pt``) is ``bundles/brats_iunet`` unless ``MONAI_IUNET_BUNDLE`` names
another; ``MONAI_IUNET_DEVICE`` may set ``cpu`` or ``cuda``. The inputs must be skull-stripped.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from holoscan.conditions import CountCondition
from monai.deploy.core import Application, Fragment, Operator, OperatorSpec
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

from monai_iunet.brats import Modality

__all__ = ["SELECTION_RULES", "BratsIUNetSegApp", "BratsIUNetSegmentOperator"]

SELECTION_RULES = {
    "selections": [
        {
            "name": Modality.T1CE.value,
            "conditions": {"Modality": "(?i)MR", "SeriesDescription": "(?i)(post|contrast|gd|t1c|\\+c)"},
        },
        {
            "name": Modality.T1.value,
            "conditions": {"Modality": "(?i)MR", "SeriesDescription": "(?i)^t1w?( pre[- ]?contrast| native)?$"},
        },
        {"name": Modality.T2.value, "conditions": {"Modality": "(?i)MR", "SeriesDescription": "(?i)^t2w?$"}},
        {"name": Modality.FLAIR.value, "conditions": {"Modality": "(?i)MR", "SeriesDescription": "(?i)flair"}},
    ]
}
"""Which series is which modality: rules of :class:`DICOMSeriesSelectorOperator` on SeriesDescription."""


class BratsIUNetSegmentOperator(Operator):
    """Segments the selected T1, T1ce, T2 and FLAIR series with :func:`monai_iunet.clinical.segment`.

    Named input:
        study_selected_series_list: the selector's ``StudySelectedSeries`` list (selections t1, t1ce, t2, flair).

    Args:
        fragment: the application.
        output_folder: where the results go.
        bundle: the MONAI bundle folder with trained weights.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (the bundle's choice).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: Path, bundle: str, device: str | None, **kwargs):
        self.output_folder = Path(output_folder)
        self.bundle = bundle
        self.device = device
        self.input_name = "study_selected_series_list"
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name)

    def compute(self, op_input, op_output, context):
        from monai_iunet.brats import MODALITY_ORDER
        from monai_iunet.clinical import segment

        studies = op_input.receive(self.input_name) or []
        if not studies:
            raise ValueError("no DICOM study with MR series found in the input folder.")
        chosen = {s.selection_name: s.series for s in studies[0].selected_series}
        missing = [str(m) for m in MODALITY_ORDER if m not in chosen]
        if missing:
            found = [s.series.SeriesDescription for s in studies[0].selected_series]
            raise ValueError(
                f"no series matched {missing} (selected: {found}); check the SeriesDescription rules in "
                "SELECTION_RULES."
            )
        files = {m: [sop.get_native_sop_instance().filename for sop in chosen[m].get_sop_instances()] for m in chosen}
        for m in MODALITY_ORDER:
            self._logger.info(f"{m}: series {chosen[m].SeriesInstanceUID} ({chosen[m].SeriesDescription!r})")
        report = segment(
            **{str(m): files[m] for m in MODALITY_ORDER},
            output=self.output_folder,
            bundle=self.bundle,
            device=self.device,
            overwrite=True,
        )
        self._logger.info(f"volumes (mL): {json.dumps(report['volumes_ml'])}")


class BratsIUNetSegApp(Application):
    """Brain-tumour segmentation (TC, WT, ET) from four unregistered MR series, with the BraTS iUNet bundle."""

    def compose(self):
        from monai_iunet.clinical import DEFAULT_BUNDLE

        app_context = Application.init_app_context(self.argv)
        input_path, output_path = Path(app_context.input_path), Path(app_context.output_path)
        bundle = os.environ.get("MONAI_IUNET_BUNDLE", DEFAULT_BUNDLE)
        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=input_path, name="dicom_loader")
        selector = DICOMSeriesSelectorOperator(self, rules=json.dumps(SELECTION_RULES), name="series_selector")
        segmenter = BratsIUNetSegmentOperator(
            self,
            output_folder=output_path,
            bundle=bundle,
            device=os.environ.get("MONAI_IUNET_DEVICE") or None,
            name="brats_iunet_segment",
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, segmenter, {("study_selected_series_list", "study_selected_series_list")})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    BratsIUNetSegApp().run()
