"""Model sources: the embedded tiny models built from config (`lib.models.embedded`) and their offline tokenizers."""
