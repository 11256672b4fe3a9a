"""`python -m pipeline.config` prints the option reference (docs/CONFIG.md is generated from it)."""

import sys

from pipeline.config.reference import config_reference_markdown

sys.stdout.write(config_reference_markdown())
