"""Connectors that read findings and asset context straight from AWS accounts (``hotpath aws ...``).

The choices and defaults the commands offer live here, not in the modules that need boto3 (the ``aws``
extra), so ``hotpath --help`` shows them without it.
"""

SOURCES = ("securityhub", "config")
DEFAULT_INTERVAL_S = 300.0
MAX_PAGE_SIZE = 100  # GetFindings' limit
ASSET_FIELDS = ("service", "criticality", "data_classification", "owner", "environment", "internet_facing")
