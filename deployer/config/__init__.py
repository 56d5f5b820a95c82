"""What to deploy: the frozen Config, how it is loaded, and every resource name derived from it.

Validation runs when a Config is built, so a bad Config cannot exist and every error surfaces
before any API call. The package follows the order a value travels, bottom up:

- ``rules``: patterns, limits, allowed values, the one error shape;
- ``schema``: one frozen dataclass per table ([service], [database], [media], ...);
- ``names``: every resource name and label, and the ownership rule;
- ``model``: the Config itself and its cross-field rules;
- ``load``: defaults < file < ``DJDEPLOY_*`` environment variables < flags.
- ``starter``: the djdeploy.toml ``djdeploy init`` writes (imported by the command alone).

This package runs on the ``--help`` and bad-input paths: it imports nothing from google.* and
nothing heavy.
"""

from __future__ import annotations

from deployer.config.load import (
    CONFIG_FILE,
    EMULATOR_PROJECT,
    find_config_file,
    load_config,
    load_file,
    load_project_and_region,
    misspelt_variables,
)
from deployer.config.model import Config
from deployer.config.names import Names
from deployer.config.rules import (
    CLOUD_RUN_RESERVED_ENV,
    CPUS,
    EDITIONS,
    EGRESS,
    INGRESS,
    RESERVED_LABELS,
    FrozenDict,
)
from deployer.config.schema import (
    BuildConfig,
    CiConfig,
    CronEntry,
    DatabaseConfig,
    MediaConfig,
    MonitoringConfig,
    ProbeConfig,
    SecretRef,
    ServiceConfig,
    SuperuserConfig,
    VpcConfig,
    WorkerConfig,
)

__all__ = [
    "CLOUD_RUN_RESERVED_ENV",
    "CONFIG_FILE",
    "CPUS",
    "EDITIONS",
    "EGRESS",
    "EMULATOR_PROJECT",
    "INGRESS",
    "RESERVED_LABELS",
    "BuildConfig",
    "CiConfig",
    "Config",
    "CronEntry",
    "DatabaseConfig",
    "FrozenDict",
    "MediaConfig",
    "MonitoringConfig",
    "Names",
    "ProbeConfig",
    "SecretRef",
    "ServiceConfig",
    "SuperuserConfig",
    "VpcConfig",
    "WorkerConfig",
    "find_config_file",
    "load_config",
    "load_file",
    "load_project_and_region",
    "misspelt_variables",
]
