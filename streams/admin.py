"""Topic provisioning before the worker starts: create what is absent, refuse what does not fit.

Done with a plain admin client before Faust runs, because Faust silently accepts existing
topics of any shape, and Tansu auto-creates a topic (with its own default partition count)
when a client merely asks for its metadata, so absence is judged from the full topic list.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from socrec_online.settings import Settings
from streams.app import kafka_client_kwargs


class TopicMismatchError(RuntimeError):
    """Existing topics do not fit what the worker needs (e.g. co-partitioned inputs disagree)."""


async def topic_partitions(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each *existing* topic among ``names``."""
    existing = set(await admin.list_topics())
    present = [n for n in names if n in existing]
    if not present:
        return {}
    described = await admin.describe_topics(present)
    return {d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0}


async def ensure_topics(settings: Settings, wanted: dict[str, int]) -> dict[str, str]:
    """Create the absent topics of ``wanted`` (name -> partitions); check the present ones.

    Returns name -> "created" | "exists". Raises TopicMismatchError naming every topic whose
    partition count differs, and how to fix it.
    """
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings), client_id="socrec-admin")
    await admin.start()
    try:
        have = await topic_partitions(admin, list(wanted))
        wrong = {n: (have[n], p) for n, p in wanted.items() if n in have and have[n] != p}
        if wrong:
            detail = ", ".join(f"{n} has {h} partitions (want {w})" for n, (h, w) in sorted(wrong.items()))
            raise TopicMismatchError(
                f"existing topics do not fit this worker: {detail}. Input topics are co-partitioned "
                f"(keyed by user id) and must all have SOCREC_PARTITIONS={settings.partitions} partitions: "
                "set SOCREC_PARTITIONS to match, use another SOCREC_TOPIC_PREFIX, or recreate the topics."
            )
        missing = [n for n in wanted if n not in have]
        if missing:
            resp = await admin.create_topics(
                [NewTopic(n, wanted[n], settings.replication_factor) for n in missing]
            )
            for name, code, msg in getattr(resp, "topic_errors", []):
                if code not in (0, 36):  # 36 = already exists (a concurrent creator won the race)
                    raise RuntimeError(f"cannot create topic {name}: error {code} {msg or ''}".strip())
        return {n: ("created" if n in missing else "exists") for n in wanted}
    finally:
        await admin.close()
