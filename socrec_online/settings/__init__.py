"""The one settings object, composed of sections. Every field: env var ``SOCREC_<NAME>``, default, bounds, why.

Each section (``kafka.py``, ``text.py``, ``serving.py``, ``scoring.py``, ``limits.py``,
``retention.py``, ``trainer.py``, ``api.py``, ``ops.py``) is a plain pydantic model that declares its fields and the
validators that only read them. ``Settings`` inherits every section, so each field stays a flat
attribute (``settings.kafka_bootstrap``) read from a flat env var (``SOCREC_KAFKA_BOOTSTRAP``),
and ``SECTIONS`` lists them for the generated reference (``socrec config --table``, docs/settings.md).

Frozen so a running worker can never drift from what it logged at start; secrets are
``SecretStr`` so they never reach a log line or a repr.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from socrec_online.settings.api import ApiSettings
from socrec_online.settings.kafka import KafkaSettings
from socrec_online.settings.limits import LimitsSettings
from socrec_online.settings.ops import OpsSettings
from socrec_online.settings.retention import RetentionSettings
from socrec_online.settings.scoring import ScoringSettings
from socrec_online.settings.serving import ServingSettings
from socrec_online.settings.table import markdown_table
from socrec_online.settings.text import TextSettings
from socrec_online.settings.trainer import TrainerSettings

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("Kafka", KafkaSettings),
    ("Text tower and model", TextSettings),
    ("Serving", ServingSettings),
    ("Scoring", ScoringSettings),
    ("Input limits and state bounds", LimitsSettings),
    ("Retention", RetentionSettings),
    ("Trainer", TrainerSettings),
    ("Read API", ApiSettings),
    ("Operations", OpsSettings),
)
"""(heading, section) in the order of docs/settings.md; every field of Settings is in exactly one."""


# Bases in the reverse of SECTIONS: pydantic collects fields from the last base first, so this
# keeps the fields (``socrec config``, model_dump, repr) in section order, Kafka first.
class Settings(
    OpsSettings,
    ApiSettings,
    TrainerSettings,
    RetentionSettings,
    LimitsSettings,
    ScoringSettings,
    ServingSettings,
    TextSettings,
    KafkaSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(env_prefix="SOCREC_", frozen=True, extra="ignore")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """Markdown reference of every setting, a heading and a table per section, for docs/settings.md."""
    return markdown_table(SECTIONS)


__all__ = [
    "SECTIONS",
    "ApiSettings",
    "KafkaSettings",
    "LimitsSettings",
    "OpsSettings",
    "RetentionSettings",
    "ScoringSettings",
    "ServingSettings",
    "Settings",
    "TextSettings",
    "TrainerSettings",
    "get_settings",
    "settings_table",
]
