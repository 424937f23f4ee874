"""Online learning: replay buffer, drift-triggered fine-tuning, evaluation gate, snapshots."""

from socrec_online.online.buffer import BufferConfig, Pair, ReplayBuffer, TrainingData
from socrec_online.online.drift import PrequentialMonitor, TriggerPolicy
from socrec_online.online.finetune import GATE_METRIC, FinetuneConfig, FinetuneResult, fine_tune
from socrec_online.online.learner import FinetuneOutcome, OnlineConfig, OnlineLearner

__all__ = [
    "GATE_METRIC",
    "BufferConfig",
    "FinetuneConfig",
    "FinetuneOutcome",
    "FinetuneResult",
    "OnlineConfig",
    "OnlineLearner",
    "Pair",
    "PrequentialMonitor",
    "ReplayBuffer",
    "TrainingData",
    "TriggerPolicy",
    "fine_tune",
]
