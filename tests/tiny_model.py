"""A tiny BERT and WordPiece tokenizer whose vocabulary covers the synthetic dataset: fast real models for tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.workloads.training.synthetic import COMPANIES, METRICS, TEMPLATES

if TYPE_CHECKING:
    from transformers import BertConfig

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def template_words() -> list[str]:
    """Every word the synthetic sentences use, so the tiny vocabulary has no unknown tokens."""
    sentences = [*COMPANIES, *METRICS, *(template for group in TEMPLATES.values() for template in group)]
    words = {word.strip("{}").lower() for sentence in sentences for word in sentence.split()}
    return sorted(words - {"company", "metric"})


def tiny_bert_config(vocab_size: int, **overrides: Any) -> BertConfig:
    """The tiny BERT's shape: 2 layers, 32 wide, 64 positions; `overrides` sets other config fields."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **overrides,
    )


def save_tiny_bert(directory: Path) -> Path:
    """A 2-layer, 32-wide BERT and its tokenizer, saved as a Hugging Face model directory."""
    # In transformers 5 BertTokenizer is the fast one, and it ignores `vocab_file`: pass the vocabulary as `vocab`.
    from transformers import BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab-source.txt"
    vocab.write_text("\n".join(SPECIAL_TOKENS + template_words()) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    BertModel(tiny_bert_config(tokenizer.vocab_size)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    vocab.unlink()
    return directory
