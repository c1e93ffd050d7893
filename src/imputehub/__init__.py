"""imputehub: one hub in front of many genotype imputation services."""

__version__ = "0.1.0"
