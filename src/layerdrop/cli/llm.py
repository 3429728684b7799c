"""`layerdrop perplexity` and `heal`: what a cut costs a language model, and getting it back."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from layerdrop.cli import app
from layerdrop.cli.options import ModelArg, Output, Overwrite, ResultFile, settings_options
from layerdrop.settings import HealSettings, PerplexitySettings, TextSource

Device = Annotated[str, typer.Option(help="cpu, cuda or cuda:N")]
TEXT_PANEL = "Text (one of --text-file, --corpus, --dataset)"


def _text_source(values: dict[str, Any]) -> TextSource:
    """The text source, its corpus name checked before any model loads."""
    from layerdrop.corpora import parse_corpus

    source = TextSource.model_validate(values)
    if source.corpus is not None:
        parse_corpus(source.corpus)
    return source


def _causal_lm_and_tokens(model: str, source: TextSource, device: str) -> tuple[Any, Any, Any]:
    """`model` as a causal LM on `device`, its tokenizer, and `source` read with it as one token stream."""
    from layerdrop.checkpoint import load_model, load_tokenizer
    from layerdrop.corpora import load_tokens
    from layerdrop.errors import LayerDropError

    tokenizer = load_tokenizer(model)
    if tokenizer is None:
        raise LayerDropError(f"{model!r} has no tokenizer to read the text with")
    tokens = load_tokens(source, tokenizer)
    return load_model(model, head="causal-lm", trained_head=True).to(device), tokenizer, tokens


@app.command()
@settings_options(PerplexitySettings, into="window", panel="Sliding window")
@settings_options(TextSource, into="text", panel=TEXT_PANEL)
def perplexity(
    model: ModelArg,
    device: Device = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    overwrite: Overwrite = False,
    result: ResultFile = None,
    text: dict[str, Any] | None = None,
    window: dict[str, Any] | None = None,
) -> None:
    """Token-level perplexity of a causal LM on a text, with the standard sliding window; tokens/s."""
    from layerdrop.experiment import versions
    from layerdrop.outputs import check_output, write_json
    from layerdrop.perplexity import perplexity as measure

    source, settings = _text_source(text), PerplexitySettings.model_validate(window)
    if result is not None:
        check_output(result, "file", overwrite, what="--result")
    loaded, _, tokens = _causal_lm_and_tokens(model, source, device)
    measured = measure(loaded, tokens, settings)
    record = {
        "model": model,
        "text": source.model_dump(exclude_defaults=True),
        **measured.to_dict(),
        "layer_dropping": getattr(loaded.config, "layer_dropping", None),
        "versions": versions(),
    }
    if result is not None:
        write_json(result, record, overwrite, what="--result")
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        typer.echo(
            f"perplexity {measured.perplexity:.3f} over {measured.tokens_scored:,} tokens "
            f"({measured.windows} windows of {measured.context}, stride {measured.stride}; "
            f"{measured.tokens_per_second:,.0f} tokens/s)"
        )


@app.command()
@settings_options(HealSettings, into="healing", panel="Healing")
@settings_options(TextSource, into="text", panel=TEXT_PANEL)
def heal(
    model: ModelArg,
    output: Output,
    teacher: Annotated[
        str | None, typer.Option(help="the uncut model the layers were dropped from (needed by --method distill)")
    ] = None,
    device: Device = "cpu",
    overwrite: Overwrite = False,
    result: ResultFile = None,
    text: dict[str, Any] | None = None,
    healing: dict[str, Any] | None = None,
) -> None:
    """Heal a causal LM with dropped layers on running text and save a plain checkpoint to --output.

    Healing is LoRA merged into the weights, or logit distillation from --teacher.
    """
    from layerdrop.checkpoint import load_model, save_model
    from layerdrop.errors import LayerDropError
    from layerdrop.experiment import versions
    from layerdrop.healing import heal as heal_model
    from layerdrop.outputs import check_output, write_json

    source, settings = _text_source(text), HealSettings.model_validate(healing)
    if settings.method == "distill" and teacher is None:
        raise LayerDropError("--method distill needs --teacher, the uncut model")
    check_output(output, "dir", overwrite, what="--output")
    if result is not None:
        check_output(result, "file", overwrite, what="--result")
    student, tokenizer, tokens = _causal_lm_and_tokens(model, source, device)
    uncut = (
        load_model(teacher, head="causal-lm", trained_head=True).to(device) if settings.method == "distill" else None
    )
    healed, stats = heal_model(student, tokens, settings, teacher=uncut)
    healed.config.layer_healing = {
        "method": settings.method,
        "steps": stats.steps,
        "tokens": stats.tokens_seen,
        "text": source.model_dump(exclude_defaults=True),
        "teacher": teacher,
    }
    healed.name_or_path = model
    save_model(healed, output, tokenizer=tokenizer, overwrite=overwrite)
    record = {
        "model": model,
        "teacher": teacher,
        "settings": settings.model_dump(),
        **stats.to_dict(),
        "versions": versions(),
    }
    if result is not None:
        write_json(result, record, overwrite, what="--result")
    typer.echo(
        f"healed with {settings.method} for {stats.steps} steps ({stats.tokens_seen:,} tokens, {stats.seconds:.0f} s); "
        f"saved to {output}"
    )
