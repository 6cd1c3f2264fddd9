"""Connectors that read findings and asset context straight from AWS accounts (``hotpath aws ...``)."""
