"""Text -> token batches: sources (files, TFDS), tokenizer (SentencePiece), packing, loader (Grain)."""
