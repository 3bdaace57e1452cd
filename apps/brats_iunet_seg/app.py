"""MONAI Deploy App SDK application: a folder of DICOM files of one MR study in, a brain-tumour segmentation out.

The graph::

    DICOMDataLoaderOperator ─► BratsIUNetSegmentOperator
      (all studies/series         (monai_iunet.clinical.identify_series: T1, T1ce, T2, FLAIR from DICOM tags first,
       in the input folder)        descriptions second; then monai_iunet.clinical.segment: register to the T1ce,
                                   run the bundle, write the results)

The operator uses the same identification and the same library function as ``monai-iunet segment --study``, so the
app chooses and writes what the command does, on the T1ce series' grid: ``segmentation.dcm`` (DICOM-SEG referencing
the T1ce instances), ``segmentation.nii.gz``, ``report.json`` and ``overview.png``. An ambiguous study (two T1ce
candidates, say) is refused with the candidates listed.

Run locally::

    python apps/brats_iunet_seg/app.py -i DICOM_DIR -o OUT

The bundle (with trained ``models/model.pt``) is ``bundles/brats_iunet`` unless ``MONAI_IUNET_BUNDLE`` names
another; ``MONAI_IUNET_DEVICE`` may set ``cpu`` or ``cuda``. Whole-head series are brain-extracted (deepbet).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from holoscan.conditions import CountCondition
from monai.deploy.core import Application, Fragment, Operator, OperatorSpec
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

__all__ = ["BratsIUNetSegApp", "BratsIUNetSegmentOperator", "series_of_study"]


def series_of_study(study) -> list:
    """The :class:`~monai_iunet.clinical.series.SeriesInfo` of every series of a Deploy ``DICOMStudy``, with files."""
    from monai_iunet.clinical.series import SeriesInfo

    infos = []
    for series in study.get_all_series():
        sops = series.get_sop_instances()
        if not sops:
            continue
        header = sops[0].get_native_sop_instance()
        files = tuple(str(sop.get_native_sop_instance().filename) for sop in sops)
        infos.append(SeriesInfo.from_dataset(header, n_instances=len(sops)).replace(files=files))
    return infos


class BratsIUNetSegmentOperator(Operator):
    """Segments the selected T1, T1ce, T2 and FLAIR series with :func:`monai_iunet.clinical.segment`.

    Named input:
        dicom_study_list: the loader's ``DICOMStudy`` list (the first study is segmented).

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
        self.input_name = "dicom_study_list"
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name)

    def compute(self, op_input, op_output, context):
        from monai_iunet.clinical import segment
        from monai_iunet.clinical.series import choice_table, identify_series

        studies = op_input.receive(self.input_name) or []
        if not studies:
            raise ValueError("no DICOM study found in the input folder.")
        infos = series_of_study(studies[0])
        chosen = identify_series(infos)
        self._logger.info("series of the study:\n" + choice_table(infos, chosen))
        files = {m.value: list(info.files) for m, info in chosen.items()}
        report = segment(
            **files,
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
        segmenter = BratsIUNetSegmentOperator(
            self,
            output_folder=output_path,
            bundle=bundle,
            device=os.environ.get("MONAI_IUNET_DEVICE") or None,
            name="brats_iunet_segment",
        )
        self.add_flow(loader, segmenter, {("dicom_study_list", "dicom_study_list")})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    BratsIUNetSegApp().run()
