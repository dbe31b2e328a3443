"""A tiny BERT and WordPiece tokenizer whose vocabulary covers the synthetic dataset: fast real models for tests."""

from __future__ import annotations

from pathlib import Path

from workloads.training.synthetic import COMPANIES, METRICS, TEMPLATES

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def template_words() -> list[str]:
    """Every word the synthetic sentences use, so the tiny vocabulary has no unknown tokens."""
    sentences = [*COMPANIES, *METRICS, *(template for group in TEMPLATES.values() for template in group)]
    words = {word.strip("{}").lower() for sentence in sentences for word in sentence.split()}
    return sorted(words - {"company", "metric"})


def save_tiny_bert(directory: Path) -> Path:
    """A 2-layer, 32-wide BERT and its tokenizer, saved as a Hugging Face model directory."""
    # In transformers 5 BertTokenizer is the fast, tokenizers-backed one (BertTokenizerFast is its alias).
    from transformers import BertConfig, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab-source.txt"
    vocab.write_text("\n".join(SPECIAL_TOKENS + template_words()) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(vocab), do_lower_case=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    vocab.unlink()
    return directory
