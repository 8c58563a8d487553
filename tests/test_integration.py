"""Integration tests on the real embedded model (SmolLM2-135M) and embedder: slower, but real."""

import pytest

from uno_graph.adapters.train import TrainExample, train_adapter
from uno_graph.config import LoraSettings, TrainSettings

pytestmark = pytest.mark.integration

QUESTIONS = ["What should I pack for a weekend in Lisbon?", "How do I get from Rome to Florence?",
             "Is Kyoto worth visiting in winter?", "What is a good day trip from Paris?",
             "How many days do I need in Prague?", "Where should I stay in Barcelona?"]


@pytest.fixture(scope="module")
def real():
    from uno_graph.chat_model import UnoChatModel
    from uno_graph.models import load_model

    lm = load_model()
    return lm, UnoChatModel(loaded=lm, max_new_tokens=24)


def test_default_model_answers_offline(real):
    lm, chat = real
    assert lm.model_id == "smollm2-135m-instruct"
    assert "quantization_config" not in lm.model.config.to_dict()  # the Trainer refuses GGUF-tagged models
    reply = chat.invoke("What is the capital of France?")
    assert reply.content.strip() and reply.usage_metadata["output_tokens"] > 0


def test_expert_adapter_learns_the_preference(real, tmp_path):
    lm, chat = real
    examples = [TrainExample(prompt=[{"role": "user", "content": q}],
                             chosen=f"TL;DR: short answer.\n{q.split()[-1]} is easy.", rejected="Well, it depends.")
                for q in QUESTIONS]
    result = train_adapter(lm.path, examples, "dpo_sft", tmp_path / "expert", lora=LoraSettings(),
                           settings=TrainSettings(epochs=6, learning_rate=2e-3, sft_weight=0.8, max_prompt_tokens=64,
                                                  max_answer_tokens=32), progress=False)
    assert result.losses[-1] < result.losses[0]
    chat.load_adapter("tldr", result.epoch_dirs[-1])
    question = [("user", "What should I see in Vienna?")]
    base = chat.invoke(question, adapter=None).content
    tuned = chat.invoke(question, adapter="tldr").content
    assert tuned != base
    assert tuned.lstrip().startswith("TL;DR")  # the preference was learned, not just any change
    assert chat.invoke(question, adapter=None).content == base  # switching back restores the base model


def test_gap_scorer_and_embedder_are_real(real):
    from uno_graph.embeddings import shared_embedder
    from uno_graph.gap import YesNoScorer, calibrate

    lm, _ = real
    cal = calibrate(YesNoScorer(lm.model, lm.tokenizer), QUESTIONS, per_anchor=3)
    assert 0.0 < cal.covered_novelty < 1.0 and 0.0 < cal.novel_novelty < 1.0
    vectors = shared_embedder().encode(["boil an egg", "cook an egg", "capital of Peru"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_likelihood_gap_separates_its_anchors_on_the_embedded_model(real):
    """The default gap signal decides on the embedded model: its calibration anchors are told apart."""
    from uno_graph.gap import LikelihoodScorer, calibrate_likelihood, likelihood_gap

    lm, chat = real
    logs = [{"prompt": [{"role": "user", "content": q}], "answer": chat.invoke(q).content} for q in QUESTIONS]
    scorer = LikelihoodScorer(lm.model, lm.tokenizer)
    cal = calibrate_likelihood(scorer, logs, per_anchor=6)
    assert cal.auc >= 0.9 and cal.covered_gap < cal.threshold < cal.novel_gap
    same = likelihood_gap(scorer, [logs[0]["prompt"]], [logs[0]["answer"]], [logs[0]["answer"]])
    assert abs(same[0]) < 1e-5
