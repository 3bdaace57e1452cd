"""Invertible layers (``blocks``) and the networks built from them (``nets``), shaped like ``monai.networks``."""
