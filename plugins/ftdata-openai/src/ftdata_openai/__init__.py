"""ftdata-openai: fine-tune on the OpenAI fine-tuning API (OpenAI, Azure OpenAI, compatible providers)."""

__version__ = "0.1.0"
