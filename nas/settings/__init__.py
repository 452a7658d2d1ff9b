"""Every setting of nas, defined once: one tree of pydantic models, three views of it.

* **The YAML file** of a search space is :class:`SpaceSchema`; its ``proxy:`` and ``reward:``
  blocks are :class:`ProxySettings` and :class:`RewardSettings`.
* **The command line**: each command derives its flags from the fields marked with :func:`flag`
  (:mod:`nas.settings.flags`); a flag's help is the field's text.
* **A run's stored settings** are :class:`SearchSettings` (or another command's model) as JSON, with
  the proxy and reward *resolved* (the space's blocks plus the flags), beside a copy of the space
  file's text, so a resumed run never re-reads files that may have changed.

A value is validated here and nowhere else: bounds are the fields' own (they appear in the errors),
and the error of any view names the key as that view spells it (:func:`describe_error`). This package
imports no torch and no Ray."""

from nas.settings.base import (
    MISSING,
    Finite,
    Settings,
    SettingsError,
    SpaceError,
    describe_error,
    error_line,
    error_parts,
    flag,
    short,
    yaml_key,
)
from nas.settings.commands import (
    DEFAULT_SCALING_BASE,
    DEFAULT_SPACE,
    FULL_TRAINING,
    EvaluateSettings,
    Phi,
    ProxyCheckSettings,
    ReproduceSettings,
    ScaleSettings,
    SearchSettings,
    TrainSettings,
    for_space,
    seed_flag,
)
from nas.settings.proxy import DATASETS, LR_PER_256, ProxySettings, RewardSettings, resolve_dataset
from nas.settings.run import RESUMABLE, Device, Resources, RunName, RunPlace, SchedulerSettings, SupernetSettings
from nas.settings.space_file import (
    BlockSpec,
    Channels,
    ChoiceDefaults,
    FilterRatio,
    HeadSpec,
    Int,
    Kernel,
    LayerDelta,
    Layers,
    Op,
    SeRatio,
    Skip,
    SpaceSchema,
    StemSpec,
)

__all__ = ["SettingsError", "flag", "Finite", "Settings", "describe_error", "error_line", "SpaceError", "error_parts", "MISSING", "short", "yaml_key", "DATASETS", "LR_PER_256", "RewardSettings", "resolve_dataset", "ProxySettings", "Int", "Op", "Kernel", "Channels", "Layers", "SeRatio", "Skip", "FilterRatio", "LayerDelta", "ChoiceDefaults", "BlockSpec", "StemSpec", "HeadSpec", "SpaceSchema", "Resources", "RunName", "RunPlace", "Device", "SchedulerSettings", "SupernetSettings", "RESUMABLE", "DEFAULT_SPACE", "seed_flag", "EvaluateSettings", "SearchSettings", "for_space", "Phi", "ProxyCheckSettings", "FULL_TRAINING", "TrainSettings", "ReproduceSettings", "DEFAULT_SCALING_BASE", "ScaleSettings"]
