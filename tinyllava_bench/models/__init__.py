"""The TinyLLaVA architecture: vision tower, connectors, LLM, templates, preprocessing, checkpoint layouts."""
