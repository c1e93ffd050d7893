"""Workflows shipped with imputehub for workflow services (GA4GH WES): `impute.cwl`."""

from __future__ import annotations

from pathlib import Path

IMPUTE_CWL = Path(__file__).with_name("impute.cwl")
