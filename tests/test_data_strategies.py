"""Data-driven layer selection: hook-based scores, thresholds, identity layers found first, greedy reuse."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli import assert_one_line_error, layerdrop
from tiny_models import DECODER, TINY, tiny_inputs, tiny_model
from transformers import AutoConfig, BertForSequenceClassification, BertTokenizer, LlamaForSequenceClassification

from layerdrop.architectures import final_norm, layer_modules
from layerdrop.errors import LayerDropError
from layerdrop.glue import get_task
from layerdrop.calibration import make_batches
from layerdrop.strategies import STRATEGIES, choose_layers
from layerdrop.strategies.angular import best_block
from layerdrop.strategies.base import extremes
from layerdrop.strategies.contribution import above_threshold
from layerdrop.strategies.greedy_search import greedy_search
from layerdrop.strategies.parameter import parameter_scores
from layerdrop.strategies.similarity import layer_similarity
from layerdrop.surgery import drop_layers

IDENTITY = 2  # the layer made (near) identity in the tests below
WORDS = "the a movie film plot acting was is not very really good bad great dull boring fun i liked it".split()


def batches(count: int = 3, size: int = 8, length: int = 10, seed: int = 0, labels: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """Random token ids (away from the pad id 0) with right padding of varying length."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for b in range(count):
        ids = torch.randint(5, 99, (size, length), generator=generator)
        mask = torch.ones_like(ids)
        for row in range(0, size, 2):
            mask[row, length - 1 - row % 5 :] = 0
        ids[mask == 0] = 0
        batch = {"input_ids": ids, "attention_mask": mask}
        if labels is not None:
            batch["labels"] = labels[b * size : (b + 1) * size]
        result.append(batch)
    return result


def tiny_llama(num_labels: int = 1, identity: int | None = None) -> LlamaForSequenceClassification:
    """Pre-norm decoder: zeroing a layer's o_proj and down_proj makes it an exact identity."""
    config = AutoConfig.for_model("llama", initializer_range=0.2, pad_token_id=0, num_labels=num_labels, **DECODER)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    if identity is not None:
        layer = layer_modules(model)[identity]
        with torch.no_grad():
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def tiny_bert(identity: int | None = None) -> BertForSequenceClassification:
    """Post-norm encoder: with both output projections zeroed a layer returns LayerNorm(x), and x
    comes out of a LayerNorm with the same (initial) gain and bias, so the layer is the identity
    up to the norm's epsilon."""
    model = tiny_model("bert")
    if identity is not None:
        layer = layer_modules(model)[identity]
        with torch.no_grad():
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
    return model


def save_tiny_bert(path: Path, identity: int | None = None) -> Path:
    """A tiny BERT with a word-level tokenizer, saved as a checkpoint directory."""
    tiny_bert(identity).save_pretrained(path)
    BertTokenizer(vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}).save_pretrained(path)
    return path


def write_texts(path: Path, count: int = 12) -> Path:
    generator = torch.Generator().manual_seed(1)
    lines = [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (3 + n % 6,), generator=generator)) for n in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def select(name: str, model, data=None, task: str | None = None, **options) -> tuple[list[int], dict]:
    """The layers and record strategy `name` chooses on tokenized `data`."""
    chosen = choose_layers(name, model, options, batches=data, task=get_task(task) if task else None)
    return chosen.layers, chosen.record


# --- registry and pure selection rules ---------------------------------------------------------


def test_every_data_strategy_is_registered_with_a_description() -> None:
    for name in ("contribution", "block-influence", "angular", "parameter", "greedy"):
        assert STRATEGIES[name].needs != "position" and STRATEGIES[name].description and STRATEGIES[name].reference


def test_thresholds_select_exactly_the_layers_above_them() -> None:
    scores = [0.96, 0.93, 0.91, 0.5, 0.95]
    assert above_threshold(scores, 0.95, range(5)) == [0]  # strictly above: 0.95 itself stays
    assert above_threshold(scores, 0.925, range(5)) == [0, 1, 4]
    assert above_threshold(scores, 0.9, range(5)) == [0, 1, 2, 4]
    assert above_threshold(scores, 0.9, [1, 2, 3]) == [1, 2]  # protected layers are never chosen
    for bad in (1.5, -1.0, -3):
        with pytest.raises(LayerDropError, match="threshold"):
            select("contribution", tiny_bert(), batches(), threshold=bad)


def test_rankings_and_blocks() -> None:
    scores = [0.3, 0.1, 0.2, 0.1]
    assert extremes(scores, 2, range(4), highest=False) == [1, 3]
    assert extremes(scores, 1, range(4), highest=False) == [3]  # ties go to the higher layer
    assert extremes(scores, 2, range(4), highest=True) == [0, 2]
    assert best_block([0.5, 0.2, 0.4], 2, range(4)) == [1, 2]
    assert best_block([0.5, 0.2, 0.4], 2, [0, 1]) == [0, 1]  # the block must avoid protected layers


# --- hook-based scores -------------------------------------------------------------------------


def _reference_cosines(hidden_states: tuple[torch.Tensor, ...], index: torch.Tensor) -> list[float]:
    rows = torch.arange(len(index))
    return [float(F.cosine_similarity(a[rows, index], b[rows, index], dim=-1).mean()) for a, b in zip(hidden_states, hidden_states[1:])]


def test_hook_scores_match_output_hidden_states_on_an_encoder() -> None:
    model = tiny_bert()
    (batch,) = batches(count=1)
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
    scores = layer_similarity(model, [batch], progress=False)
    assert scores.contribution("first") == pytest.approx(_reference_cosines(states, torch.zeros(8, dtype=torch.long)), abs=1e-5)
    mask = batch["attention_mask"].bool()
    tokens = [float(F.cosine_similarity(a, b, dim=-1)[mask].mean()) for a, b in zip(states, states[1:])]
    assert scores.block_influence() == pytest.approx([1 - t for t in tokens], abs=1e-5)


def test_hooks_see_the_decoders_last_layer_before_the_final_norm() -> None:
    model = tiny_llama()
    with torch.no_grad():  # a trained norm's gains differ per channel (unit gains would leave cosines alone)
        final_norm(model).weight.uniform_(0.2, 2.0, generator=torch.Generator().manual_seed(0))
    (batch,) = batches(count=1)
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
    last = batch["attention_mask"].sum(1) - 1
    reference = _reference_cosines(states, last)
    scores = layer_similarity(model, [batch], progress=False).contribution("last")
    assert scores[:-1] == pytest.approx(reference[:-1], abs=1e-5)
    assert abs(scores[-1] - reference[-1]) > 1e-3  # output_hidden_states' last entry is after the norm


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_every_architecture_is_scored_and_greedy_reuse_agrees(model_type: str) -> None:
    model = tiny_model(model_type)
    data = [dict(tiny_inputs(batch=4, length=9, seed=seed), labels=torch.tensor([0, 1, 1, 0])) for seed in range(2)]
    scores = layer_similarity(model, data)
    assert len(scores.contribution("first")) == 4 and all(-1 <= c <= 1 for c in scores.contribution("mean"))
    if type(model).__name__.endswith("ForSequenceClassification") and model_type != "albert":
        runs = [greedy_search(model, data, range(4), max_steps=2, objective="loss", reuse=reuse, progress=False) for reuse in (True, False)]
        assert runs[0].removed == runs[1].removed and runs[0].trace == runs[1].trace


def test_greedy_refuses_albert_whose_layers_are_one() -> None:
    with pytest.raises(LayerDropError, match="ALBERT"):
        greedy_search(tiny_model("albert"), batches(labels=torch.zeros(24, dtype=torch.long)), range(4), max_steps=1, objective="loss", progress=False)


# --- an identity layer is the first choice -----------------------------------------------------


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_an_identity_decoder_layer_is_chosen_first(pooling: str) -> None:
    model, data = tiny_llama(identity=IDENTITY), batches()
    assert select("contribution", model, data=data, num_drop=1, pooling=pooling)[0] == [IDENTITY]
    assert select("angular", model, data=data, num_drop=1, pooling=pooling)[0] == [IDENTITY]


def test_an_identity_layer_has_no_block_influence_and_is_removed_first_by_loss() -> None:
    model = tiny_llama(identity=IDENTITY)
    indices, record = select("block-influence", model, data=batches(), num_drop=1)
    assert indices == [IDENTITY] and record["scores"][IDENTITY] == pytest.approx(0, abs=1e-6)
    with torch.inference_mode():  # regression on the model's own outputs: removing the identity costs nothing
        targets = torch.cat([model(**b).logits.squeeze(-1) for b in batches()])
    indices, record = select("greedy", model, data=batches(labels=targets), num_drop=1, objective="loss")
    assert indices == [IDENTITY] and record["greedy"]["steps"][0]["loss"] == 0


def test_a_near_identity_encoder_layer_is_chosen_first() -> None:
    model, data = tiny_bert(identity=IDENTITY), batches()
    for name in ("contribution", "block-influence", "angular"):
        assert select(name, model, data=data, num_drop=1)[0] == [IDENTITY], name
    indices, record = select("contribution", model, data=data, threshold=0.999)
    assert indices == [IDENTITY] and record["threshold"] == 0.999


# --- greedy search -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["bert", "mistral"])
def test_greedy_by_score_with_reuse_matches_the_naive_search(model_type: str) -> None:
    model = tiny_model(model_type)
    data = batches(labels=torch.randint(0, 2, (24,), generator=torch.Generator().manual_seed(3)))
    runs = [greedy_search(model, data, range(4), max_steps=3, task=get_task("rte"), reuse=reuse, progress=False) for reuse in (True, False)]
    assert runs[0].removed == runs[1].removed
    assert runs[0].trace == runs[1].trace and runs[0].baseline == runs[1].baseline


def test_greedy_scores_equal_those_of_the_model_with_the_layers_really_dropped() -> None:
    model = tiny_model("mistral")
    data = batches(labels=torch.randint(0, 2, (24,), generator=torch.Generator().manual_seed(3)))
    result = greedy_search(model, data, [0, 1, 2], max_steps=2, objective="loss", progress=False)
    assert 3 not in result.removed  # protected
    smaller = drop_layers(copy.deepcopy(model), result.removed)
    assert greedy_search(smaller, data, [], max_steps=0, objective="loss", progress=False).baseline.loss == pytest.approx(result.trace[-1].loss, rel=1e-5)


def test_greedy_stops_before_the_score_falls_too_far() -> None:
    model = tiny_model("mistral")
    with torch.inference_mode():  # labels the full model gets all right: accuracy 1.0 to lose
        labels = torch.cat([model(**b).logits.argmax(-1) for b in batches()])
    indices, record = select("greedy", model, data=batches(labels=labels), task="rte", max_drop_percent=20)
    trace = record["greedy"]
    assert trace["baseline"]["score"] == 1.0 and indices == [3] and trace["steps"][0]["score"] == 0.875
    assert trace["stop_reason"].startswith("removing layer 2 next would cost more than 20%")
    _, record = select("greedy", model, data=batches(labels=labels), task="rte", num_drop=2, max_drop_percent=100)
    assert [step["num_layers"] for step in record["greedy"]["steps"]] == [3, 2] and record["num_drop"] == 2


# --- parameters and bad input ------------------------------------------------------------------


def test_parameter_scores_are_the_rms_weight_of_each_layers_matrices() -> None:
    model = tiny_bert()
    with torch.no_grad():
        for p in layer_modules(model)[1].parameters():
            p.mul_(0.1)
    layer = layer_modules(model)[0]
    matrices = torch.cat([p.detach().flatten() for p in layer.parameters() if p.ndim == 2]).double()
    assert parameter_scores(model, "norm")[0] == pytest.approx(float(matrices.square().mean().sqrt()))
    assert parameter_scores(model, "variance")[0] == pytest.approx(float(matrices.var(unbiased=False)))
    assert select("parameter", model, num_drop=1)[0] == [1]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("contribution", dict(threshold=1.2), "threshold"),
        ("contribution", dict(threshold=0.9, num_drop=1), "exactly one"),
        ("angular", dict(num_drop=4), "num_drop must be between 1 and 3"),
        ("block-influence", dict(num_drop=1, threshold=0.5), "threshold does not go with strategy 'block-influence'"),
        ("parameter", dict(num_drop=1, statistic="mean"), "statistic: input should be 'norm' or 'variance'"),
        ("greedy", dict(num_drop=1, task="rte"), "labelled data"),
        ("greedy", dict(num_drop=1), "needs a task"),
        ("angular", dict(num_drop=1, pooling="cls"), "pooling: input should be 'first', 'last' or 'mean'"),
    ],
)
def test_bad_input_is_a_layerdrop_error(name: str, options: dict, message: str) -> None:
    with pytest.raises(LayerDropError, match=message):
        select(name, tiny_model("bert"), data=batches(), **options)


def test_texts_and_pairs_are_tokenized_shortest_first(tmp_path: Path) -> None:
    tokenizer = BertTokenizer.from_pretrained(save_tiny_bert(tmp_path / "m"))
    texts = ["the movie was good", "i liked it", "a very very dull boring plot"]
    result = make_batches(texts, tokenizer, batch_size=2)
    assert [b["input_ids"].shape[0] for b in result] == [2, 1]
    assert result[0]["attention_mask"].sum(1).tolist() == [5, 6]
    pairs = make_batches([("the movie", "was good")], tokenizer)
    assert pairs[0]["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1]]


# --- command line ------------------------------------------------------------------------------


def test_drop_by_contribution_from_a_text_file(tmp_path: Path) -> None:
    model = save_tiny_bert(tmp_path / "model", identity=IDENTITY)
    texts = write_texts(tmp_path / "texts.txt")
    result = layerdrop("drop", model, "--strategy", "contribution", "--threshold", "0.999", "--text-file", texts, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "config.json").read_text())["layer_dropping"]
    assert record["dropped_layers"] == [IDENTITY]
    assert record["strategy"]["name"] == "contribution" and record["strategy"]["data"]["num_examples"] == 12


def test_drop_with_a_bad_threshold_fails_in_one_line(tmp_path: Path) -> None:
    model = save_tiny_bert(tmp_path / "model")
    texts = write_texts(tmp_path / "texts.txt")
    result = layerdrop("drop", model, "--strategy", "contribution", "--threshold", "1.5", "--text-file", texts, "-o", tmp_path / "out")
    assert_one_line_error(result, "--threshold: input should be less than or equal to 1")
    assert not (tmp_path / "out").exists()
