"""The built-in local imputation engine: demo data, accuracy scoring."""
