"""User-facing errors: each says what is wrong and with what, in one line.

The CLI prints any `MaskstreamError` as `maskstream CMD: error: MESSAGE` and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class MaskstreamError(Exception):
    """A problem the user can fix (bad input, bad config, unreachable service)."""


class ConfigError(MaskstreamError):
    """Invalid configuration; the message names the field path and the bad value."""


class SourceError(MaskstreamError):
    """A video source that cannot be opened or decoded; the message names the (redacted) source."""


class WeightsError(MaskstreamError):
    """Model weights that are missing, of another architecture, truncated or not safetensors."""


class DatasetError(MaskstreamError):
    """A dataset (COCO file, synth clip directory) that is missing, empty or malformed."""


def config_error(*parts: object) -> ConfigError:
    """The one format of config errors: `config error: FILE: field.path: what is wrong`, parts joined by `: `."""
    return ConfigError("config error: " + ": ".join(str(part) for part in parts if part not in (None, "")))
