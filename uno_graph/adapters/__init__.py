"""LoRA adapters: training them (Expert: SFT, DPO, DPO+SFT or KTO; Critic: SFT) and publishing them into a work directory.

Importing this package is cheap: torch, TRL and PEFT are imported only when training starts.
"""

from uno_graph.adapters.registry import (
    ROLES,
    adapter_path,
    build_manifest,
    list_adapters,
    load_manifest,
    publish_adapter,
    validate_adapter,
)
from uno_graph.adapters.train import (
    LEARNS_FROM_NEGATIVES,
    OBJECTIVES,
    TrainExample,
    TrainJob,
    TrainResult,
    examples_fingerprint,
    train_adapter,
)

__all__ = [
    "LEARNS_FROM_NEGATIVES",
    "OBJECTIVES",
    "ROLES",
    "TrainExample",
    "TrainJob",
    "TrainResult",
    "adapter_path",
    "build_manifest",
    "examples_fingerprint",
    "list_adapters",
    "load_manifest",
    "publish_adapter",
    "train_adapter",
    "validate_adapter",
]
